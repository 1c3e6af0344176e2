//go:build js && wasm

package webgpu

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// Kernels of elementwise.wgsl.
var (
	kUnary   = kernel{file: "elementwise.wgsl", entry: "unary", inputs: 1, flat: true}
	kBinary  = kernel{file: "elementwise.wgsl", entry: "binary", inputs: 2, flat: true}
	kLinComb = kernel{file: "elementwise.wgsl", entry: "lincomb", inputs: 4, flat: true}
)

// elementwiseWG is the workgroup size (override WG) of the flat kernels.
const elementwiseWG = 256

// ewParams mirrors Params in elementwise.wgsl.
type ewParams struct {
	Base          [4]uint32
	N, Op, Rank   uint32
	_             uint32
	F             [4]float32
	Win           [4]uint32 // binary: first output index; out, a, b binding starts
	Shape, SA, SB [8]uint32
}

// Operation codes of unary_fn beyond the UnaryOp values.
const (
	opAffine = 100
	opClamp  = 101
)

// groups returns the workgroups covering n items, WG per workgroup.
func groups(n, wg int) int { return (n + wg - 1) / wg }

// flatWindows calls f for consecutive element ranges [start, start+cnt)
// covering n elements: one range when every tensor of ts fits a storage
// binding, else ranges of a multiple of 256 elements whose bytes fit (so
// every binding offset is 256-byte aligned and F16 pairs stay whole). When
// 256 elements do not fit it records a LimitError for op instead.
func (b *Backend) flatWindows(op string, k kernel, n int, ts []*Tensor, f func(start, cnt int)) {
	fit := fitter{b: b}
	wins, ok := split(n, 256, func(s span) bool {
		for _, t := range ts {
			if !fit.fits(t, s) {
				return false
			}
		}
		return true
	})
	if !ok {
		b.limitErr(op, fit.bad)
		return
	}
	for _, s := range wins {
		f(s.lo, s.hi-s.lo)
	}
	b.noteWindows(k, len(wins))
}

// winBind binds elements [start, start+cnt) of t.
func winBind(t *Tensor, start, cnt int) binding {
	es := t.dtype.Size()
	return binding{t, uint64(start * es), max(4, uint64(cnt*es+3)&^3)}
}

func (b *Backend) unaryLike(name string, xt backend.Tensor, op uint32, f [4]float32) backend.Tensor {
	x := get(name, xt)
	out := b.alloc(name, x.shape, tensor.F32, false)
	n := x.shape.Numel()
	consts := map[string]float64{"DT_A": dtCode(x.dtype)}
	b.flatWindows(name, kUnary, n, []*Tensor{x, out}, func(start, cnt int) {
		p := ewParams{N: uint32(cnt), Op: op, F: f}
		b.runBound(kUnary, consts, &p, [3]int{groups(cnt, elementwiseWG), 1, 1},
			[]binding{winBind(out, start, cnt), winBind(x, start, cnt)})
	})
	return out
}

// Unary applies op elementwise (formulas in backend.UnaryOp).
func (b *Backend) Unary(op backend.UnaryOp, x backend.Tensor) backend.Tensor {
	if int(op) < 0 || int(op) >= len(backend.UnaryOps()) {
		panic(fmt.Sprintf("webgpu: Unary: unknown op %d", int(op)))
	}
	return b.unaryLike("Unary "+op.String(), x, uint32(op), [4]float32{})
}

// Affine computes x·scale + shift.
func (b *Backend) Affine(x backend.Tensor, scale, shift float32) backend.Tensor {
	return b.unaryLike("Affine", x, opAffine, [4]float32{scale, shift, 0, 0})
}

// Clamp limits every element to [lo, hi].
func (b *Backend) Clamp(x backend.Tensor, lo, hi float32) backend.Tensor {
	return b.unaryLike("Clamp", x, opClamp, [4]float32{0, 0, lo, hi})
}

// contiguousStrides returns the row-major element strides of shape.
func contiguousStrides(shape tensor.Shape) []int {
	s := make([]int, len(shape))
	st := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = st
		st *= shape[i]
	}
	return s
}

// pack8 copies up to eight values into a uniform array.
func pack8(name string, vals []int) [8]uint32 {
	var a [8]uint32
	if len(vals) > 8 {
		panic(fmt.Sprintf("webgpu: %s: rank %d above 8", name, len(vals)))
	}
	for i, v := range vals {
		a[i] = uint32(v)
	}
	return a
}

// Binary applies op with NumPy broadcasting. Tensors above the storage
// binding limit are processed in windows of the output: an input of the
// output's shape, or one broadcast only along trailing dimensions (a
// [B, C, 1, 1] against [B, C, H, W]), is bound over just the elements the
// window reads; any other input must fit one binding whole.
func (b *Backend) Binary(op backend.BinaryOp, at, bt backend.Tensor) backend.Tensor {
	name := "Binary " + op.String()
	if int(op) < 0 || int(op) >= len(backend.BinaryOps()) {
		panic(fmt.Sprintf("webgpu: Binary: unknown op %d", int(op)))
	}
	x, y := get(name, at), get(name, bt)
	os, err := backend.BroadcastShape(x.shape, y.shape)
	if err != nil {
		panic(fmt.Sprintf("webgpu: %s: %v", name, err))
	}
	r := len(os)
	xs, ys := padShape(x.shape, r), padShape(y.shape, r)
	out := b.alloc(name, os, tensor.F32, false)
	n := os.Numel()
	if n == 0 {
		return out
	}
	// Merge runs of dimensions with the same broadcast pattern, so that any
	// rank fits the kernel's eight (same shapes merge into one dimension).
	var dims, sa, sb []int
	cx, cy := contiguousStrides(xs), contiguousStrides(ys)
	for i := r - 1; i >= 0; i-- {
		if os[i] == 1 {
			continue
		}
		stx, sty := cx[i], cy[i]
		if xs[i] == 1 {
			stx = 0
		}
		if ys[i] == 1 {
			sty = 0
		}
		if n := len(dims); n > 0 && (sa[n-1] == 0) == (stx == 0) && (sb[n-1] == 0) == (sty == 0) &&
			(stx == 0 || stx == sa[n-1]*dims[n-1]) && (sty == 0 || sty == sb[n-1]*dims[n-1]) {
			dims[n-1] *= os[i]
			continue
		}
		dims, sa, sb = append(dims, os[i]), append(sa, stx), append(sb, sty)
	}
	// dims were collected innermost first; the kernel wants outermost first.
	for i, j := 0, len(dims)-1; i < j; i, j = i+1, j-1 {
		dims[i], dims[j] = dims[j], dims[i]
		sa[i], sa[j] = sa[j], sa[i]
		sb[i], sb[j] = sb[j], sb[i]
	}
	nx, ny := x.shape.Numel(), y.shape.Numel()
	ranges := func(s span) (span, span) {
		return strideRange(dims, sa, 0, nx, s), strideRange(dims, sb, 0, ny, s)
	}
	fit := fitter{b: b}
	wins, ok := split(n, 1, func(s span) bool {
		ra, rb := ranges(s)
		return fit.fits(out, s) && fit.fits(x, ra) && fit.fits(y, rb)
	})
	if !ok {
		b.limitErr(name, fit.bad)
		return out
	}
	consts := map[string]float64{"DT_A": dtCode(x.dtype), "DT_B": dtCode(y.dtype)}
	p := ewParams{Op: uint32(op), Rank: uint32(len(dims)),
		Shape: pack8(name, dims), SA: pack8(name, sa), SB: pack8(name, sb)}
	for _, s := range wins {
		ra, rb := ranges(s)
		wo, oOff := b.window(out, s)
		wa, aOff := b.window(x, ra)
		wb, bOff := b.window(y, rb)
		p.N, p.Win = uint32(s.hi-s.lo), [4]uint32{uint32(s.lo), oOff, aOff, bOff}
		b.runBound(kBinary, consts, &p, [3]int{groups(s.hi-s.lo, elementwiseWG), 1, 1}, []binding{wo, wa, wb})
	}
	b.noteWindows(kBinary, len(wins))
	return out
}

// padShape left-pads s with ones to rank r.
func padShape(s tensor.Shape, r int) tensor.Shape {
	out := make(tensor.Shape, r)
	for i := range out {
		out[i] = 1
	}
	copy(out[r-len(s):], s)
	return out
}

// LinComb returns Σ coeffs[i]·ts[i]. Up to four terms go in one dispatch;
// longer sums continue from the partial result with coefficient 1.
func (b *Backend) LinComb(coeffs []float32, ts ...backend.Tensor) backend.Tensor {
	if len(ts) == 0 || len(coeffs) != len(ts) {
		panic(fmt.Sprintf("webgpu: LinComb: %d coefficients for %d tensors", len(coeffs), len(ts)))
	}
	xs := make([]*Tensor, len(ts))
	for i, t := range ts {
		xs[i] = get("LinComb", t)
		if !xs[i].shape.Equal(xs[0].shape) {
			panic(fmt.Sprintf("webgpu: LinComb: tensor %d has shape %v, tensor 0 has %v", i, xs[i].shape, xs[0].shape))
		}
	}
	shape := xs[0].shape
	n := shape.Numel()
	var acc *Tensor
	cs := coeffs
	for len(xs) > 0 {
		var in []*Tensor
		var f []float32
		if acc != nil {
			in, f = append(in, acc), append(f, 1)
		}
		k := min(4-len(in), len(xs))
		in, f = append(in, xs[:k]...), append(f, cs[:k]...)
		xs, cs = xs[k:], cs[k:]
		p := ewParams{N: uint32(n), Rank: uint32(len(in))}
		copy(p.F[:], f)
		consts := map[string]float64{}
		names := [4]string{"DT_A", "DT_B", "DT_C", "DT_D"}
		for len(in) < 4 {
			in = append(in, in[0])
		}
		for i, t := range in {
			consts[names[i]] = dtCode(t.dtype)
		}
		out := b.alloc("LinComb", shape, tensor.F32, false)
		b.flatWindows("LinComb", kLinComb, n, append([]*Tensor{out}, in...), func(start, cnt int) {
			q := p
			q.N = uint32(cnt)
			bs := []binding{winBind(out, start, cnt)}
			for _, t := range in {
				bs = append(bs, winBind(t, start, cnt))
			}
			b.runBound(kLinComb, consts, &q, [3]int{groups(cnt, elementwiseWG), 1, 1}, bs)
		})
		if acc != nil {
			b.Free(acc)
		}
		acc = out
	}
	return acc
}
