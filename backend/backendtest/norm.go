package backendtest

import (
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// offsetInput returns normal values with standard deviation 2 around
// mean 3: a mean far from zero catches one-pass variance formulas that
// cancel catastrophically.
func offsetInput(e *env, shape ...int) *tensor.Host {
	h := e.randn(2, shape...)
	for i := range h.Data {
		h.Data[i] += 3
	}
	return h
}

// affineParams uploads gamma and beta of n elements in the given encodings
// (-1: nil) and returns them with their reference values.
func affineParams(e *env, n int, gammaDT, betaDT tensor.DType) (g, b backend.Tensor, gr, br *array) {
	if gammaDT >= 0 {
		h := e.randn(1, n)
		for i := range h.Data {
			h.Data[i] += 1
		}
		var w *tensor.Host
		g, w = e.inAs(h, gammaDT)
		gr = arr(w)
	}
	if betaDT >= 0 {
		var w *tensor.Host
		b, w = e.inAs(e.randn(1, n), betaDT)
		br = arr(w)
	}
	return g, b, gr, br
}

// none marks an absent gamma or beta.
const none tensor.DType = -1

func paramName(gammaDT, betaDT tensor.DType) string {
	f := func(p string, dt tensor.DType) string {
		if dt == none {
			return "_no" + p
		}
		if dt != f32 {
			return "_" + p + dt.String()
		}
		return ""
	}
	return f("gamma", gammaDT) + f("beta", betaDT)
}

func testGroupNorm(t *testing.T, s *suite) {
	type gn struct {
		shape           []int
		groups          int
		eps             float32
		silu            bool
		gammaDT, betaDT tensor.DType
	}
	cases := []gn{
		{[]int{2, 64, 5, 3}, 32, 1e-5, true, f32, f32},
		{[]int{1, 64, 5, 3}, 32, 1e-6, false, none, none},
		{[]int{2, 4, 3, 3}, 1, 1e-5, true, none, f32},
		{[]int{2, 4, 3, 3}, 1, 1e-5, false, f32, none},
		{[]int{1, 32, 257}, 32, 1e-6, false, f16, bf16},
		{[]int{1, 6, 63}, 3, 1e-5, true, bf16, f16},
		{[]int{1, 32, 1, 1}, 32, 1e-5, false, f32, f32}, // one value per group
		{[]int{2, 64, 8, 8}, 1, 1e-6, true, f32, f32},
		{[]int{1, 128, 4, 4}, 32, 1e-5, true, f16, f16},
		{[]int{1, 64, 65}, 32, 1e-5, false, f32, f32},
		{[]int{2, 64, 16, 16}, 32, 1e-6, true, f32, f32},
	}
	for _, c := range cases {
		nm := name("%v_g%d_eps%g", tensor.Shape(c.shape), c.groups, c.eps)
		if c.silu {
			nm += "_silu"
		}
		nm += paramName(c.gammaDT, c.betaDT)
		s.run(t, nm, 4*numel(c.shape), func(e *env) {
			xh := offsetInput(e, c.shape...)
			g, b, gr, br := affineParams(e, c.shape[1], c.gammaDT, c.betaDT)
			got := e.b.GroupNorm(e.in(xh), g, b, c.groups, c.eps, c.silu)
			e.check("GroupNorm", got, refGroupNorm(arr(xh), gr, br, c.groups, float64(c.eps), c.silu), tolReduction)
		})
	}
}

func testLayerNorm(t *testing.T, s *suite) {
	type ln struct {
		shape           []int
		eps             float32
		gammaDT, betaDT tensor.DType
	}
	cases := []ln{
		{[]int{3, 64}, 1e-5, f32, f32},
		{[]int{2, 5, 257}, 1e-6, none, none},
		{[]int{1, 1}, 1e-5, f32, f32},
		{[]int{4, 255}, 1e-5, f16, none},
		{[]int{65}, 1e-6, none, f32},
		{[]int{2, 3, 256}, 1e-5, bf16, bf16},
		{[]int{7, 3}, 1e-5, f32, f16},
		{[]int{2, 4}, 1e-6, f32, f32},
		{[]int{1, 5}, 1e-6, f32, f32},
		{[]int{2, 63}, 1e-6, f32, f32},
		{[]int{64, 256}, 1e-5, f32, f32},
	}
	for _, c := range cases {
		nm := name("%v_eps%g", tensor.Shape(c.shape), c.eps) + paramName(c.gammaDT, c.betaDT)
		s.run(t, nm, 4*numel(c.shape), func(e *env) {
			xh := offsetInput(e, c.shape...)
			D := c.shape[len(c.shape)-1]
			g, b, gr, br := affineParams(e, D, c.gammaDT, c.betaDT)
			got := e.b.LayerNorm(e.in(xh), g, b, c.eps)
			e.check("LayerNorm", got, refLayerNorm(arr(xh), gr, br, float64(c.eps)), tolReduction)
		})
	}
}

func testRMSNorm(t *testing.T, s *suite) {
	type rn struct {
		shape   []int
		eps     float32
		gammaDT tensor.DType
	}
	cases := []rn{
		{[]int{3, 64}, 1e-6, f32},
		{[]int{2, 257}, 1e-6, f32},
		{[]int{1, 1}, 1e-6, f32},
		{[]int{4, 65}, 1e-6, none},
		{[]int{2, 3, 63}, 1e-5, f16},
		{[]int{5, 256}, 1e-6, bf16},
		{[]int{3, 4}, 1e-6, f32},
		{[]int{2, 5}, 1e-6, f32},
		{[]int{1, 3}, 1e-6, f32},
		{[]int{1, 255}, 1e-6, none},
		{[]int{65, 257}, 1e-6, f32},
	}
	for _, c := range cases {
		nm := name("%v_eps%g", tensor.Shape(c.shape), c.eps) + paramName(c.gammaDT, f32)
		s.run(t, nm, 3*numel(c.shape), func(e *env) {
			xh := offsetInput(e, c.shape...)
			g, _, gr, _ := affineParams(e, c.shape[len(c.shape)-1], c.gammaDT, none)
			got := e.b.RMSNorm(e.in(xh), g, c.eps)
			e.check("RMSNorm", got, refRMSNorm(arr(xh), gr, float64(c.eps)), tolReduction)
		})
	}
}

func testSoftmax(t *testing.T, s *suite) {
	for _, sh := range [][]int{{1, 1}, {3, 3}, {2, 4}, {3, 5}, {4, 63}, {4, 64}, {1, 65}, {3, 255}, {2, 256}, {2, 257}, {2, 3, 7}, {5}, {64, 257}} {
		s.run(t, name("%v", tensor.Shape(sh)), 4*numel(sh), func(e *env) {
			xh := e.randn(3, sh...)
			got := e.b.Softmax(e.in(xh))
			e.check("Softmax", got, refSoftmax(arr(xh)), tolReduction)
		})
	}
	// Large magnitudes: a naive exp overflows or underflows without the
	// max subtraction; float32 min entries (masks) must give exact zeros,
	// and a row made only of them a uniform distribution, never NaN.
	for _, D := range []int{5, 64, 257} {
		s.run(t, name("large_%d", D), 24*D, func(e *env) {
			xh := e.randn(30, 6, D)
			row := func(r int) []float32 { return xh.Data[r*D : (r+1)*D] }
			for i := range row(0) {
				row(0)[i] += 1e4
				row(1)[i] -= 1e4
				row(2)[i] *= 100
				if i%2 == 1 {
					row(3)[i] = float32Min
				}
				row(4)[i] = float32Min
				if i > 0 {
					row(5)[i] = float32Min
				}
			}
			got := e.b.Softmax(e.in(xh))
			e.check("Softmax of large magnitudes", got, refSoftmax(arr(xh)), tolReduction)
		})
	}
}
