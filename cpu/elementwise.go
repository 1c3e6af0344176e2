package cpu

import (
	"fmt"
	"math"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// unaryFunc returns op as a float64 function (formulas from
// backend.UnaryOp's documentation and §2 of the numerics spec).
func unaryFunc(op backend.UnaryOp) func(float64) float64 {
	switch op {
	case backend.SiLU:
		return func(x float64) float64 { return x / (1 + math.Exp(-x)) }
	case backend.GELU:
		// 0.5·x·(1+erf(x/√2)), via erfc so that large negative x keeps
		// its relative precision.
		return func(x float64) float64 { return 0.5 * x * math.Erfc(-x/math.Sqrt2) }
	case backend.GELUTanh:
		// 0.5·x·(1+tanh(u)) = x/(1+e^(−2u)) with u = √(2/π)·(x+0.044715·x³).
		c := math.Sqrt(2 / math.Pi)
		return func(x float64) float64 { return x / (1 + math.Exp(-2*c*(x+0.044715*x*x*x))) }
	case backend.QuickGELU:
		return func(x float64) float64 { return x / (1 + math.Exp(-1.702*x)) }
	case backend.ReLU:
		return func(x float64) float64 { return math.Max(x, 0) }
	case backend.Tanh:
		return math.Tanh
	case backend.Sigmoid:
		return func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	case backend.Exp:
		return math.Exp
	case backend.Neg:
		return func(x float64) float64 { return -x }
	case backend.Sqrt:
		return math.Sqrt
	case backend.Square:
		return func(x float64) float64 { return x * x }
	}
	panic(fmt.Sprintf("cpu: Unary: unknown op %d", int(op)))
}

// mapFloat64 returns a new tensor holding f(x) for every element of x,
// evaluated in float64 and rounded to float32.
func (b *Backend) mapFloat64(x *Tensor, f func(float64) float64) *Tensor {
	out := b.alloc(x.shape)
	xd, od := x.data(), out.data()
	parallelFor(len(xd), 16, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			od[i] = float32(f(float64(xd[i])))
		}
	})
	return out
}

// Unary applies op elementwise.
func (b *Backend) Unary(op backend.UnaryOp, xt backend.Tensor) backend.Tensor {
	x := get("Unary "+op.String(), xt)
	return b.mapFloat64(x, unaryFunc(op))
}

// Affine computes x·scale + shift elementwise.
func (b *Backend) Affine(xt backend.Tensor, scale, shift float32) backend.Tensor {
	x := get("Affine", xt)
	s, c := float64(scale), float64(shift)
	return b.mapFloat64(x, func(v float64) float64 { return v*s + c })
}

// Clamp limits every element to [lo, hi].
func (b *Backend) Clamp(xt backend.Tensor, lo, hi float32) backend.Tensor {
	x := get("Clamp", xt)
	l, h := float64(lo), float64(hi)
	return b.mapFloat64(x, func(v float64) float64 { return math.Min(math.Max(v, l), h) })
}

// binaryFunc returns op as a float64 function.
func binaryFunc(op backend.BinaryOp) func(x, y float64) float64 {
	switch op {
	case backend.Add:
		return func(x, y float64) float64 { return x + y }
	case backend.Sub:
		return func(x, y float64) float64 { return x - y }
	case backend.Mul:
		return func(x, y float64) float64 { return x * y }
	case backend.Div:
		return func(x, y float64) float64 { return x / y }
	case backend.Max:
		return math.Max
	case backend.Min:
		return math.Min
	}
	panic(fmt.Sprintf("cpu: Binary: unknown op %d", int(op)))
}

// Binary applies op elementwise with NumPy broadcasting. Dimensions are
// aligned at the right; adjacent dimensions that broadcast the same way
// are merged, so the inner loop runs over the longest possible run with
// each operand's stride either 1 or 0.
func (b *Backend) Binary(op backend.BinaryOp, at, bt backend.Tensor) backend.Tensor {
	name := "Binary " + op.String()
	x, y := get(name, at), get(name, bt)
	os, err := backend.BroadcastShape(x.shape, y.shape)
	if err != nil {
		panic(fmt.Sprintf("cpu: %s: %v", name, err))
	}
	r := len(os)
	xs, ys := padShape(x.shape, r), padShape(y.shape, r)
	out := b.alloc(os)
	f := binaryFunc(op)
	xd, yd, od := x.data(), y.data(), out.data()
	if len(od) == 0 {
		return out
	}
	// Merge dimensions into runs with the same broadcast pattern.
	var dims, sx, sy []int // merged sizes and element strides
	for i := 0; i < r; i++ {
		if os[i] == 1 {
			continue
		}
		bx, by := xs[i] == 1, ys[i] == 1
		if n := len(dims); n > 0 && (sx[n-1] == 0) == bx && (sy[n-1] == 0) == by {
			dims[n-1] *= os[i]
			continue
		}
		dims = append(dims, os[i])
		sx = append(sx, b2i(!bx))
		sy = append(sy, b2i(!by))
	}
	if len(dims) == 0 {
		od[0] = float32(f(float64(xd[0]), float64(yd[0])))
		return out
	}
	// Turn the 0/1 flags into element strides of each operand.
	stx, sty := 1, 1
	for i := len(dims) - 1; i >= 0; i-- {
		if sx[i] != 0 {
			sx[i] = stx
			stx *= dims[i]
		}
		if sy[i] != 0 {
			sy[i] = sty
			sty *= dims[i]
		}
	}
	n := len(dims)
	inner := dims[n-1]
	ix, iy := sx[n-1], sy[n-1]
	rows := len(od) / inner
	// Long rows are cut into segments so that even one row (two operands
	// of the same shape) spreads over the workers.
	seg := min(inner, 1<<14)
	segs := (inner + seg - 1) / seg
	parallelFor(rows*segs, seg, func(lo, hi int) {
		for task := lo; task < hi; task++ {
			row, j0 := task/segs, task%segs*seg
			j1 := min(j0+seg, inner)
			// Offsets of this row in x and y.
			ox, oy, rem := 0, 0, row
			for d := n - 2; d >= 0; d-- {
				idx := rem % dims[d]
				rem /= dims[d]
				ox += idx * sx[d]
				oy += idx * sy[d]
			}
			dst := od[row*inner : (row+1)*inner]
			for j := j0; j < j1; j++ {
				dst[j] = float32(f(float64(xd[ox+j*ix]), float64(yd[oy+j*iy])))
			}
		}
	})
	return out
}

// padShape returns s with leading 1s added up to rank r.
func padShape(s tensor.Shape, r int) tensor.Shape {
	p := make(tensor.Shape, r)
	for i := range p {
		p[i] = 1
	}
	copy(p[r-len(s):], s)
	return p
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

// LinComb returns Σ coeffs[i]·ts[i], accumulated in float64.
func (b *Backend) LinComb(coeffs []float32, ts ...backend.Tensor) backend.Tensor {
	if len(ts) == 0 || len(coeffs) != len(ts) {
		panic(fmt.Sprintf("cpu: LinComb: %d coefficients for %d tensors", len(coeffs), len(ts)))
	}
	xs := make([][]float32, len(ts))
	first := get("LinComb", ts[0])
	for i, t := range ts {
		x := get("LinComb", t)
		if !x.shape.Equal(first.shape) {
			panic(fmt.Sprintf("cpu: LinComb: tensor %d has shape %v, tensor 0 has %v", i, x.shape, first.shape))
		}
		xs[i] = x.data()
	}
	out := b.alloc(first.shape)
	od := out.data()
	parallelFor(len(od), 2*len(xs), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			var s float64
			for k, x := range xs {
				s += float64(coeffs[k]) * float64(x[i])
			}
			od[i] = float32(s)
		}
	})
	return out
}
