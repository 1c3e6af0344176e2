package backendtest

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// edgeSizes are the lengths that cross vector (4) and workgroup (64, 256)
// boundaries.
var edgeSizes = []int{0, 1, 3, 4, 5, 63, 64, 65, 255, 256, 257}

// unaryInput returns inputs in the domain where op is tested: positive for
// Sqrt, within ±10 for Exp, and a spread of ±3σ·3 otherwise.
func unaryInput(e *env, op backend.UnaryOp, shape ...int) *tensor.Host {
	switch op {
	case backend.Sqrt:
		return e.uniform(0, 9, shape...)
	case backend.Exp:
		return e.uniform(-10, 10, shape...)
	}
	return e.randn(3, shape...)
}

func testUnary(t *testing.T, s *suite) {
	shapes := [][]int{{3, 5, 65}, {2, 1, 257}, {65, 77}}
	for _, n := range edgeSizes {
		shapes = append(shapes, []int{n})
	}
	for _, op := range backend.UnaryOps() {
		t.Run(op.String(), func(t *testing.T) {
			for _, sh := range shapes {
				s.run(t, name("%v", tensor.Shape(sh)), numel(sh), func(e *env) {
					x := unaryInput(e, op, sh...)
					got := e.b.Unary(op, e.in(x))
					e.check(name("Unary %v %v", op, tensor.Shape(sh)), got, refMap(arr(x), func(v float64) float64 { return refUnary(op, v) }), tolElementwise)
				})
			}
			// Saturating arguments must give finite, correct limits (no
			// Inf/Inf or Inf·0 in sigmoid- and tanh-based formulas).
			if op != backend.Exp && op != backend.Sqrt && op != backend.Square {
				s.run(t, "extremes", 16, func(e *env) {
					x := tensor.FromData([]float32{0, 1e-3, -1e-3, 8, -8, 15, -15, 20, -20, 44, -44, 90, -90, 100, -100, 0.5}, 16)
					got := e.b.Unary(op, e.in(x))
					e.check(name("Unary %v extremes", op), got, refMap(arr(x), func(v float64) float64 { return refUnary(op, v) }), tolElementwise)
				})
			}
		})
	}
}

func testAffine(t *testing.T, s *suite) {
	for _, sh := range [][]int{{0}, {1}, {257}, {3, 65}, {2, 4, 64}} {
		s.run(t, name("%v", tensor.Shape(sh)), numel(sh), func(e *env) {
			x := e.randn(2, sh...)
			scale, shift := float32(e.rng.NormFloat64()), float32(e.rng.NormFloat64())
			got := e.b.Affine(e.in(x), scale, shift)
			e.check("Affine", got, refMap(arr(x), func(v float64) float64 { return v*float64(scale) + float64(shift) }), tolElementwise)
		})
	}
	s.run(t, "scale0", 65, func(e *env) {
		x := e.randn(2, 65)
		got := e.b.Affine(e.in(x), 0, 0.25)
		e.check("Affine scale 0", got, refMap(arr(x), func(float64) float64 { return 0.25 }), tolElementwise)
	})
}

func testClamp(t *testing.T, s *suite) {
	for _, sh := range [][]int{{0}, {1}, {63}, {257}, {4, 65}} {
		s.run(t, name("%v", tensor.Shape(sh)), numel(sh), func(e *env) {
			x := e.randn(2, sh...)
			lo, hi := float32(-1.5), float32(0.75)
			got := e.b.Clamp(e.in(x), lo, hi)
			e.check("Clamp", got, refMap(arr(x), func(v float64) float64 { return math.Min(math.Max(v, float64(lo)), float64(hi)) }), tolElementwise)
		})
	}
}

func testBinary(t *testing.T, s *suite) {
	pairs := [][2][]int{
		{{257}, {257}},               // same shape
		{{3, 65}, {3, 65}},           // same shape, 2-D
		{{0}, {0}},                   // empty
		{{0, 5}, {5}},                // empty with a broadcast row
		{{4, 5}, {1}},                // scalar-like
		{{3, 4}, {}},                 // rank-0 scalar
		{{1}, {63}},                  // scalar-like on the left
		{{63, 65}, {65}},             // row vs matrix
		{{64}, {255, 64}},            // row on the left
		{{2, 3, 5, 9}, {2, 3, 1, 1}}, // per-channel (NCHW bias)
		{{2, 3, 1, 1}, {2, 3, 5, 9}},
		{{3, 1, 5}, {1, 4, 1}},   // both sides broadcast
		{{64, 1}, {1, 256}},      // outer product shape
		{{5, 1, 3}, {4, 1}},      // ranks differ, both broadcast
		{{2, 1, 257}, {2, 3, 1}}, // both broadcast at the edge size
		{{2, 17000}, {17000}},    // long rows
	}
	for _, op := range backend.BinaryOps() {
		t.Run(op.String(), func(t *testing.T) {
			for _, p := range pairs {
				as, bs := p[0], p[1]
				n := numel(as) + numel(bs)
				s.run(t, name("%v_%v", tensor.Shape(as), tensor.Shape(bs)), 2*n, func(e *env) {
					a := e.randn(2, as...)
					b := e.randn(2, bs...)
					if op == backend.Div {
						// Keep divisors away from zero: |b| in [0.5, 2.5).
						for i, v := range b.Data {
							b.Data[i] = float32(math.Copysign(0.5+math.Abs(float64(v)), float64(v)))
						}
					}
					got := e.b.Binary(op, e.in(a), e.in(b))
					e.check(name("Binary %v %v %v", op, a.Shape, b.Shape), got, refBinary(op, arr(a), arr(b)), tolElementwise)
				})
			}
		})
	}
}

func testLinComb(t *testing.T, s *suite) {
	for _, sh := range [][]int{{257}, {2, 3, 5}, {1}, {3, 4097}} {
		for n := 1; n <= 4; n++ {
			s.run(t, name("%dx%v", n, tensor.Shape(sh)), n*numel(sh), func(e *env) {
				coeffs := make([]float32, n)
				ts := make([]backend.Tensor, n)
				xs := make([]*array, n)
				for i := range ts {
					coeffs[i] = float32(e.rng.NormFloat64())
					h := e.randn(1, sh...)
					ts[i], xs[i] = e.in(h), arr(h)
				}
				got := e.b.LinComb(coeffs, ts...)
				e.check(name("LinComb of %d", n), got, refLinComb(coeffs, xs...), tolElementwise)
			})
		}
	}
}
