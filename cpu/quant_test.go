package cpu

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/tensor"
)

// TestQuantizeRows checks the 8-bit weight against the definition,
// computed here in float64: each row's largest magnitude maps to ±127,
// every value is within half a step of its source, a zero row stays zero,
// and the result reports I8.
func TestQuantizeRows(t *testing.T) {
	b := New()
	w := tensor.FromData([]float32{
		0.5, -1, 0.25, 0.126, // row 0: scale 1/127
		0, 0, 0, 0, // a zero row
		3, 2.9, -0.0118, 1e-4, // row 2: scale 3/127
	}, 3, 4)
	wt := b.Upload(w)
	qt := b.QuantizeRows(wt)
	if qt.DType() != tensor.I8 {
		t.Fatalf("dtype %v, want I8", qt.DType())
	}
	got, err := b.ReadBack(qt)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 3; r++ {
		m := 0.0
		for j := 0; j < 4; j++ {
			m = math.Max(m, math.Abs(float64(w.Data[r*4+j])))
		}
		step := m / 127
		for j := 0; j < 4; j++ {
			x, y := float64(w.Data[r*4+j]), float64(got.Data[r*4+j])
			if m == 0 {
				if y != 0 {
					t.Errorf("zero row: element %d = %g", j, y)
				}
				continue
			}
			if d := math.Abs(x - y); d > step/2*(1+1e-6) {
				t.Errorf("row %d element %d: %g quantised to %g, more than half a step (%g) away", r, j, x, y, step/2)
			}
			if k := y / step; math.Abs(k-math.Round(k)) > 1e-4 {
				t.Errorf("row %d element %d: %g is not a whole number of steps %g", r, j, y, step)
			}
		}
	}
	// The largest magnitude of each row is exact (±127 steps).
	if got.Data[1] != -1 || got.Data[8] != 3 {
		t.Errorf("row maxima %g and %g, want -1 and 3", got.Data[1], got.Data[8])
	}
}
