package backendtest

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/backend"
)

// The references are checked here against values worked out by hand or
// published (PyTorch's documented outputs), so that the suite does not
// share a misreading with the backends it judges.

func vals(shape []int, data ...float64) *array { return &array{shape: shape, data: data} }

func expectArray(t *testing.T, what string, got *array, shape []int, want ...float64) {
	t.Helper()
	if len(got.shape) != len(shape) {
		t.Fatalf("%s: shape %v, want %v", what, got.shape, shape)
	}
	for i := range shape {
		if got.shape[i] != shape[i] {
			t.Fatalf("%s: shape %v, want %v", what, got.shape, shape)
		}
	}
	for i, w := range want {
		if math.Abs(got.data[i]-w) > 1e-12*math.Max(1, math.Abs(w)) {
			t.Errorf("%s: element %d is %.15g, want %.15g", what, i, got.data[i], w)
		}
	}
}

func TestRefMatMul(t *testing.T) {
	a := vals([]int{2, 2}, 1, 2, 3, 4)
	b := vals([]int{2, 2}, 5, 6, 7, 8)
	expectArray(t, "a·b", refMatMul(a, b, nil, false, false), []int{2, 2}, 19, 22, 43, 50)
	at := vals([]int{2, 2}, 1, 3, 2, 4)
	bt := vals([]int{2, 2}, 5, 7, 6, 8)
	expectArray(t, "aᵀ stored, bᵀ stored", refMatMul(at, bt, vals([]int{2}, 1, -1), true, true), []int{2, 2}, 20, 21, 44, 49)
	// A batch of two a's against one b.
	a2 := vals([]int{2, 1, 2}, 1, 0, 0, 1)
	expectArray(t, "batched a", refMatMul(a2, b, nil, false, false), []int{2, 1, 2}, 5, 6, 7, 8)
	// Both batched: b's batch follows a's.
	b2 := vals([]int{2, 2, 1}, 1, 1, 2, 3)
	expectArray(t, "both batched", refMatMul(a2, b2, nil, false, false), []int{2, 1, 1}, 1, 3)
}

func TestRefConv2D(t *testing.T) {
	x := vals([]int{1, 1, 3, 3}, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	w := vals([]int{1, 1, 3, 3}, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	// Box sums of the zero-padded image.
	expectArray(t, "3×3 pad 1", refConv2D(x, w, nil, 1, 1), []int{1, 1, 3, 3}, 12, 21, 16, 27, 45, 33, 24, 39, 28)
	expectArray(t, "3×3 pad 1 stride 2", refConv2D(x, w, vals([]int{1}, 0.5), 2, 1), []int{1, 1, 2, 2}, 12.5, 16.5, 24.5, 28.5)
	// Cross-correlation, not convolution: a kernel picking the top-left
	// neighbour shifts the image down and right.
	k := vals([]int{1, 1, 3, 3}, 1, 0, 0, 0, 0, 0, 0, 0, 0)
	expectArray(t, "top-left tap", refConv2D(x, k, nil, 1, 1), []int{1, 1, 3, 3}, 0, 0, 0, 0, 1, 2, 0, 4, 5)
	// 1×1 mixes channels: out = 2·c0 − c1.
	x2 := vals([]int{1, 2, 1, 2}, 1, 2, 10, 20)
	expectArray(t, "1×1", refConv2D(x2, vals([]int{1, 2, 1, 1}, 2, -1), nil, 1, 0), []int{1, 1, 1, 2}, -8, -16)
}

func TestRefNorms(t *testing.T) {
	x := vals([]int{1, 2, 2}, 1, 2, 3, 4) // one group: mean 2.5, variance 1.25
	s := 1 / math.Sqrt(1.25)
	expectArray(t, "GroupNorm 1 group", refGroupNorm(x, nil, nil, 1, 0, false), []int{1, 2, 2}, -1.5*s, -0.5*s, 0.5*s, 1.5*s)
	// Two groups (one channel each): mean 1.5 and 3.5, variance 0.25.
	expectArray(t, "GroupNorm 2 groups, γ, β", refGroupNorm(x, vals([]int{2}, 1, 2), vals([]int{2}, 0, 1), 2, 0, false), []int{1, 2, 2}, -1, 1, -1, 3)
	silu1 := 1 / (1 + math.Exp(-1)) // silu(1) = σ(1); silu(−1) = −σ(−1) = −σ(1)·e⁻¹
	expectArray(t, "GroupNorm silu", refGroupNorm(x, nil, nil, 2, 0, true), []int{1, 2, 2}, -silu1*math.Exp(-1), silu1, -silu1*math.Exp(-1), silu1)
	expectArray(t, "LayerNorm", refLayerNorm(vals([]int{1, 2}, 1, 3), nil, vals([]int{2}, 0, 1), 0), []int{1, 2}, -1, 2)
	// RMS of [3, 4] is √12.5.
	r := math.Sqrt(12.5)
	expectArray(t, "RMSNorm", refRMSNorm(vals([]int{1, 2}, 3, 4), vals([]int{2}, 1, 2), 0), []int{1, 2}, 3/r, 8/r)
}

func TestRefSoftmaxAndAttention(t *testing.T) {
	expectArray(t, "Softmax", refSoftmax(vals([]int{1, 3}, 0, math.Log(2), math.Log(3))), []int{1, 3}, 1.0/6, 2.0/6, 3.0/6)
	expectArray(t, "Softmax shift", refSoftmax(vals([]int{1, 2}, 1e4, 1e4)), []int{1, 2}, 0.5, 0.5)
	// One query, two keys with equal scores and one masked key: the
	// average of the first two value rows.
	q := vals([]int{1, 1, 2}, 1, 0)
	k := vals([]int{1, 3, 2}, 2, 5, 2, -5, 9, 9)
	v := vals([]int{1, 3, 1}, 10, 20, 1000)
	bias := vals([]int{1, 1, 1, 3}, 0, 0, float32Min)
	expectArray(t, "Attention mask", refAttention(q, k, v, bias, 1, 1), []int{1, 1, 1}, 15)
	// Scale 1/√D by default: scores 0 and 1/√2, so the second value row
	// gets weight e/(1+e) with e = exp(1/√2).
	q2 := vals([]int{1, 1, 2}, 1, 1)
	k2 := vals([]int{1, 2, 2}, 0, 0, 1, 0)
	v2 := vals([]int{1, 2, 1}, 0, 1)
	e := math.Exp(1 / math.Sqrt(2))
	expectArray(t, "Attention scale", refAttention(q2, k2, v2, nil, 1, 0), []int{1, 1, 1}, e/(1+e))
	// Two heads: head 1 reads channel 1 of q and k and of v.
	q3 := vals([]int{1, 1, 2}, 0, 1)
	k3 := vals([]int{1, 2, 2}, 0, 0, 0, 50)
	v3 := vals([]int{1, 2, 2}, 1, 2, 3, 4)
	got := refAttention(q3, k3, v3, nil, 2, 1)
	if math.Abs(got.data[0]-2) > 1e-12 || math.Abs(got.data[1]-4) > 1e-12 {
		t.Errorf("two heads: %v, want [2 ~4]", got.data)
	}
}

func TestRefElementwise(t *testing.T) {
	// Published values at x = 1: Φ(1) = 0.841344746068543, the tanh
	// approximation 0.841191990608277, σ(1) = 0.731058578630005.
	for _, c := range []struct {
		op   backend.UnaryOp
		x, y float64
	}{
		{backend.GELU, 1, 0.841344746068543},
		{backend.GELU, -1, -0.158655253931457},
		{backend.GELUTanh, 1, 0.841191990608277},
		{backend.SiLU, 1, 0.731058578630005},
		{backend.QuickGELU, 1, 1 / (1 + math.Exp(-1.702))},
		{backend.Sigmoid, 0, 0.5},
		{backend.ReLU, -2, 0},
		{backend.Tanh, 0.5, 0.46211715726001},
		{backend.Exp, 1, math.E},
		{backend.Neg, 3, -3},
		{backend.Sqrt, 9, 3},
		{backend.Square, -3, 9},
	} {
		if got := refUnary(c.op, c.x); math.Abs(got-c.y) > 1e-13 {
			t.Errorf("%v(%g) = %.15g, want %.15g", c.op, c.x, got, c.y)
		}
	}
	a := vals([]int{2, 1}, 1, 2)
	b := vals([]int{3}, 10, 20, 30)
	expectArray(t, "broadcast add", refBinary(backend.Add, a, b), []int{2, 3}, 11, 21, 31, 12, 22, 32)
	expectArray(t, "broadcast sub", refBinary(backend.Sub, b, a), []int{2, 3}, 9, 19, 29, 8, 18, 28)
	expectArray(t, "rank-0", refBinary(backend.Max, a, vals(nil, 1.5)), []int{2, 1}, 1.5, 2)
}

func TestRefLayout(t *testing.T) {
	x := vals([]int{2, 3}, 0, 1, 2, 3, 4, 5)
	expectArray(t, "transpose", refPermute(x, []int{1, 0}), []int{3, 2}, 0, 3, 1, 4, 2, 5)
	y := vals([]int{2, 1}, 9, 8)
	expectArray(t, "concat axis 1", refConcat(1, x, y), []int{2, 4}, 0, 1, 2, 9, 3, 4, 5, 8)
	expectArray(t, "slice axis 1", refSlice(x, 1, 1, 3), []int{2, 2}, 1, 2, 4, 5)
	expectArray(t, "gather", refGather(x, []int32{1, 0, 1}), []int{3, 3}, 3, 4, 5, 0, 1, 2, 3, 4, 5)
	expectArray(t, "lincomb", refLinComb([]float32{2, -1}, x, x), []int{2, 3}, 0, 1, 2, 3, 4, 5)
	// torch.nn.functional.interpolate(mode="nearest") source indices.
	for _, c := range []struct {
		in, out int
		src     []int
	}{
		{3, 5, []int{0, 0, 1, 1, 2}},
		{3, 6, []int{0, 0, 1, 1, 2, 2}},
		{8, 3, []int{0, 2, 5}},
		{5, 9, []int{0, 0, 1, 1, 2, 2, 3, 3, 4}},
	} {
		for d, want := range c.src {
			if got := nearestSrc(d, c.in, c.out); got != want {
				t.Errorf("nearest %d→%d: dst %d reads %d, want %d", c.in, c.out, d, got, want)
			}
		}
	}
}
