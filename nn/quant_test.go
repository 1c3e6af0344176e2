package nn_test

import (
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// hostSource serves host tensors by name.
type hostSource map[string]*tensor.Host

func (s hostSource) Lookup(name string) (tensor.DType, tensor.Shape, bool) {
	h, ok := s[name]
	if !ok {
		return 0, nil, false
	}
	return tensor.F32, h.Shape, true
}

func (s hostSource) Load(b backend.Backend, name string) (backend.Tensor, error) {
	return b.Upload(s[name]), nil
}

// TestQuantized8 binds through Quantized8: the Linear weight and the 1×1
// convolution become 8-bit, the bias and the embedding table stay F32,
// and a Linear layer built on it computes with the quantised values.
func TestQuantized8(t *testing.T) {
	src := hostSource{
		"proj.weight":            tensor.FromData([]float32{1, -0.503, 0.3, 2, 0.01, -2}, 2, 3),
		"proj.bias":              tensor.FromData([]float32{0.5, -1}, 2),
		"conv.weight":            tensor.FromData([]float32{1, 2, 3, 4}, 2, 2, 1, 1),
		"token_embedding.weight": tensor.FromData([]float32{1, 2, 3, 4}, 2, 2),
	}
	b := cpu.New()
	q := nn.Quantized8(src, nn.LinearOrConvWeight)
	for name, want := range map[string]tensor.DType{"proj.weight": tensor.I8, "proj.bias": tensor.F32,
		"conv.weight": tensor.I8, "token_embedding.weight": tensor.F32} {
		x, err := q.Load(b, name)
		if err != nil {
			t.Fatal(err)
		}
		if x.DType() != want {
			t.Errorf("%s: dtype %v, want %v", name, x.DType(), want)
		}
		b.Free(x)
	}

	s := nn.NewScope(b, q)
	lin := nn.NewLinear(s, "proj", 3, 2, true)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	x := b.Upload(tensor.FromData([]float32{1, 1, 1}, 1, 3))
	y, err := b.ReadBack(lin.Forward(b, x))
	if err != nil {
		t.Fatal(err)
	}
	// Row 0 has scale 1/127: 1, -0.503 → -63.9 steps → -64/127,
	// 0.3 → 38.1 → 38/127. Row 1 has scale 2/127: 2, 0.01 → 0.635 → 1 step,
	// -2.
	want := []float64{1 - 64.0/127 + 38.0/127 + 0.5, 2 + 2.0/127 - 2 - 1}
	for i, w := range want {
		if d := float64(y.Data[i]) - w; d > 1e-6 || d < -1e-6 {
			t.Errorf("output %d = %g, want %g", i, y.Data[i], w)
		}
	}
}
