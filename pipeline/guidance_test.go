package pipeline

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/tensor"
)

// TestGuidanceFormulas checks guide and rescaleNoiseCFG against float64
// evaluations of ε = ε_u + g(ε_c − ε_u) and of rescale_noise_cfg, per
// batch element, on a batch of two.
func TestGuidanceFormulas(t *testing.T) {
	b := cpu.New()
	const n = 24
	out := tensor.New(4, 2, 3, 4) // [uncond0, uncond1, cond0, cond1]
	for i := range out.Data {
		out.Data[i] = float32(math.Sin(float64(i)*0.7)*2 + float64(i%5)*0.1)
	}
	const g, phi = 7.5, 0.6
	ot := b.Upload(out)
	eps, cond := guide(b, ot, g)
	r, err := rescaleNoiseCFG(b, eps, cond, phi)
	if err != nil {
		t.Fatal(err)
	}
	he, _ := b.ReadBack(eps)
	hr, _ := b.ReadBack(r)
	for k := 0; k < 2; k++ {
		u := out.Data[k*n : (k+1)*n]
		c := out.Data[(2+k)*n : (3+k)*n]
		e := make([]float64, n)
		for j := range e {
			e[j] = float64(u[j]) + g*(float64(c[j])-float64(u[j]))
			if d := math.Abs(e[j] - float64(he.Data[k*n+j])); d > 1e-5*math.Abs(e[j])+1e-6 {
				t.Fatalf("guide[%d,%d] = %v, want %v", k, j, he.Data[k*n+j], e[j])
			}
		}
		ratio := std64(c) / std64f(e)
		for j := range e {
			want := phi*e[j]*ratio + (1-phi)*e[j]
			if d := math.Abs(want - float64(hr.Data[k*n+j])); d > 1e-5*math.Abs(want)+1e-6 {
				t.Fatalf("rescale[%d,%d] = %v, want %v", k, j, hr.Data[k*n+j], want)
			}
		}
	}
	b.Free(ot)
	b.Free(eps)
	b.Free(cond)
	b.Free(r)
	if live := b.Memory().Live; live != 0 {
		t.Errorf("%d bytes leaked", live)
	}
}
