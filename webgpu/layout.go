//go:build js && wasm

package webgpu

import (
	"encoding/binary"
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// Kernels of copy.wgsl.
var (
	kStrided = kernel{file: "copy.wgsl", entry: "strided", inputs: 1, flat: true}
	kResize  = kernel{file: "copy.wgsl", entry: "resize_nearest", inputs: 1, flat: true}
	kGather  = kernel{file: "copy.wgsl", entry: "gather", inputs: 2, flat: true}
)

// copyParams mirrors CopyParams in copy.wgsl.
type copyParams struct {
	Base                    [4]uint32
	N, Rank, SrcOff, DstOff uint32
	Start, OutOff, AOff, _  uint32
	Shape, SS, DS           [8]uint32
}

// resizeParams mirrors ResizeParams.
type resizeParams struct {
	Base                    [4]uint32
	N, InH, InW, OutH, OutW uint32
	RatioH, RatioW          float32
	Start, OutOff, AOff     uint32
	_, _, _                 uint32
}

// gatherParams mirrors GatherParams.
type gatherParams struct {
	Base [4]uint32
	N, D uint32
	_, _ uint32
}

// copyRegion records a strided copy of the region shape from src (element
// strides ss, offset srcOff) into out (strides ds, offset dstOff).
// Dimensions of size 1 are dropped and contiguous runs merged so any rank
// fits the kernel. Above the storage binding limit the region is copied in
// windows, each binding the source and destination elements it touches
// when their indices grow with the region's (slices and concatenation
// parts); a permutation must fit one binding. It reports false, with a
// LimitError for op, when the copy cannot be windowed.
func (b *Backend) copyRegion(op string, out, src *Tensor, shape tensor.Shape, ss, ds []int, srcOff, dstOff int) bool {
	var dims, s1, d1 []int
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] == 1 {
			continue
		}
		if n := len(dims); n > 0 && ss[i] == s1[n-1]*dims[n-1] && ds[i] == d1[n-1]*dims[n-1] {
			dims[n-1] *= shape[i]
			continue
		}
		dims, s1, d1 = append(dims, shape[i]), append(s1, ss[i]), append(d1, ds[i])
	}
	for i, j := 0, len(dims)-1; i < j; i, j = i+1, j-1 {
		dims[i], dims[j] = dims[j], dims[i]
		s1[i], s1[j] = s1[j], s1[i]
		d1[i], d1[j] = d1[j], d1[i]
	}
	n := shape.Numel()
	if n == 0 {
		return true
	}
	ns, no := src.shape.Numel(), out.shape.Numel()
	ranges := func(s span) (span, span) {
		return strideRange(dims, s1, srcOff, ns, s), strideRange(dims, d1, dstOff, no, s)
	}
	fit := fitter{b: b}
	wins, ok := split(n, 1, func(s span) bool {
		rs, rd := ranges(s)
		return fit.fits(src, rs) && fit.fits(out, rd)
	})
	if !ok {
		b.limitErr(op, fit.bad)
		return false
	}
	p := copyParams{Rank: uint32(len(dims)), SrcOff: uint32(srcOff), DstOff: uint32(dstOff),
		Shape: pack8(op, dims), SS: pack8(op, s1), DS: pack8(op, d1)}
	consts := map[string]float64{"DT_A": dtCode(src.dtype)}
	for _, s := range wins {
		rs, rd := ranges(s)
		bo, oo := b.window(out, rd)
		ba, ao := b.window(src, rs)
		p.N, p.Start, p.OutOff, p.AOff = uint32(s.hi-s.lo), uint32(s.lo), oo, ao
		b.runBound(kStrided, consts, &p, [3]int{groups(s.hi-s.lo, elementwiseWG), 1, 1}, []binding{bo, ba})
	}
	b.noteWindows(kStrided, len(wins))
	return true
}

// Permute returns a copy of t whose dimension i is t's dimension perm[i].
func (b *Backend) Permute(tt backend.Tensor, perm ...int) backend.Tensor {
	t := get("Permute", tt)
	r := t.shape.Rank()
	if len(perm) != r {
		panic(fmt.Sprintf("webgpu: Permute %v by %v: need %d axes", t.shape, perm, r))
	}
	seen := make([]bool, r)
	outShape := make(tensor.Shape, r)
	in := contiguousStrides(t.shape)
	ss := make([]int, r)
	for i, p := range perm {
		if p < 0 || p >= r || seen[p] {
			panic(fmt.Sprintf("webgpu: Permute %v by %v: not a permutation", t.shape, perm))
		}
		seen[p] = true
		outShape[i] = t.shape[p]
		ss[i] = in[p]
	}
	out := b.alloc("Permute", outShape, tensor.F32, false)
	b.copyRegion("Permute", out, t, outShape, ss, contiguousStrides(outShape), 0, 0)
	return out
}

// normAxis resolves a possibly negative axis of a rank-r tensor.
func normAxis(op string, axis, r int) int {
	if axis < 0 {
		axis += r
	}
	if axis < 0 || axis >= r {
		panic(fmt.Sprintf("webgpu: %s: axis out of range for rank %d", op, r))
	}
	return axis
}

// Concat joins tensors along axis.
func (b *Backend) Concat(axis int, ts ...backend.Tensor) backend.Tensor {
	if len(ts) == 0 {
		panic("webgpu: Concat of no tensors")
	}
	xs := make([]*Tensor, len(ts))
	for i, t := range ts {
		xs[i] = get("Concat", t)
	}
	r := xs[0].shape.Rank()
	axis = normAxis("Concat", axis, r)
	outShape := xs[0].shape.Clone()
	outShape[axis] = 0
	for _, x := range xs {
		if x.shape.Rank() != r {
			panic(fmt.Sprintf("webgpu: Concat: ranks differ: %v and %v", xs[0].shape, x.shape))
		}
		for d := range r {
			if d != axis && x.shape[d] != xs[0].shape[d] {
				panic(fmt.Sprintf("webgpu: Concat on axis %d: shapes %v and %v differ off the axis", axis, xs[0].shape, x.shape))
			}
		}
		outShape[axis] += x.shape[axis]
	}
	out := b.alloc("Concat", outShape, tensor.F32, false)
	ds := contiguousStrides(outShape)
	pos := 0
	for _, x := range xs {
		if !b.copyRegion("Concat", out, x, x.shape, contiguousStrides(x.shape), ds, 0, pos*ds[axis]) {
			break
		}
		pos += x.shape[axis]
	}
	return out
}

// Slice copies the elements start ≤ index < end along axis.
func (b *Backend) Slice(tt backend.Tensor, axis, start, end int) backend.Tensor {
	t := get("Slice", tt)
	axis = normAxis("Slice", axis, t.shape.Rank())
	if start < 0 || end < start || end > t.shape[axis] {
		panic(fmt.Sprintf("webgpu: Slice %v axis %d [%d:%d]: out of range", t.shape, axis, start, end))
	}
	outShape := t.shape.Clone()
	outShape[axis] = end - start
	out := b.alloc("Slice", outShape, tensor.F32, false)
	ss := contiguousStrides(t.shape)
	b.copyRegion("Slice", out, t, outShape, ss, contiguousStrides(outShape), start*ss[axis], 0)
	return out
}

// ResizeNearest resizes x [B, C, H, W] with PyTorch's nearest rule.
// Above the storage binding limit it runs over windows of the output, each
// binding the input rows that window reads.
func (b *Backend) ResizeNearest(xt backend.Tensor, outH, outW int) backend.Tensor {
	x := get("ResizeNearest", xt)
	if x.shape.Rank() != 4 || outH <= 0 || outW <= 0 {
		panic(fmt.Sprintf("webgpu: ResizeNearest %v to %dx%d: need a 4-D input and a positive size", x.shape, outH, outW))
	}
	B, C, H, W := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	out := b.alloc("ResizeNearest", tensor.Shape{B, C, outH, outW}, tensor.F32, false)
	n := B * C * outH * outW
	if H == 0 || W == 0 {
		if n > 0 {
			panic(fmt.Sprintf("webgpu: ResizeNearest of empty %v to %dx%d", x.shape, outH, outW))
		}
		return out
	}
	if n == 0 {
		return out
	}
	p := resizeParams{InH: uint32(H), InW: uint32(W), OutH: uint32(outH), OutW: uint32(outW),
		RatioH: float32(H) / float32(outH), RatioW: float32(W) / float32(outW)}
	// The source row of output row oy is ⌊oy·ratio⌋ (in float32, clamped);
	// it never decreases, so a window of the output reads the input rows
	// from its first row's source to its last row's, taken here one row
	// wider on each side so that the kernel's rounding cannot leave them.
	inRows := func(s span) span {
		row := func(i, d int) int {
			plane, oy := i/(outH*outW), i/outW%outH
			sy := min(int(float32(oy)*p.RatioH), H-1) + d
			return plane*H + min(max(sy, 0), H-1)
		}
		return span{row(s.lo, -1) * W, (row(s.hi-1, 1) + 1) * W}
	}
	// Windows may end anywhere (unit 1): when downsampling, a few output
	// elements already read several input rows.
	fit := fitter{b: b}
	wins, ok := split(n, 1, func(s span) bool {
		return fit.fits(out, s) && fit.fits(x, inRows(s))
	})
	if !ok {
		b.limitErr("ResizeNearest", fit.bad)
		return out
	}
	consts := map[string]float64{"DT_A": dtCode(x.dtype)}
	for _, s := range wins {
		bo, oo := b.window(out, s)
		ba, ao := b.window(x, inRows(s))
		p.N, p.Start, p.OutOff, p.AOff = uint32(s.hi-s.lo), uint32(s.lo), oo, ao
		b.runBound(kResize, consts, &p, [3]int{groups(s.hi-s.lo, elementwiseWG), 1, 1}, []binding{bo, ba})
	}
	b.noteWindows(kResize, len(wins))
	return out
}

// Gather returns the rows ids of table [V, D].
func (b *Backend) Gather(tableT backend.Tensor, ids []int32) backend.Tensor {
	t := get("Gather", tableT)
	if t.shape.Rank() != 2 {
		panic(fmt.Sprintf("webgpu: Gather: table %v is not 2-D", t.shape))
	}
	V, D := t.shape[0], t.shape[1]
	for i, id := range ids {
		if id < 0 || int(id) >= V {
			panic(fmt.Sprintf("webgpu: Gather: id %d at position %d out of range for table %v", id, i, t.shape))
		}
	}
	out := b.alloc("Gather", tensor.Shape{len(ids), D}, tensor.F32, false)
	n := len(ids) * D
	if n == 0 || !b.bindable("Gather", t, out) {
		return out
	}
	idt := b.alloc("Gather", tensor.Shape{len(ids)}, tensor.I32, true)
	raw := make([]byte, 4*len(ids))
	for i, id := range ids {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(id))
	}
	b.write(idt, raw)
	p := gatherParams{N: uint32(n), D: uint32(D)}
	b.run(kGather, map[string]float64{"DT_A": dtCode(t.dtype)}, &p, [3]int{groups(n, elementwiseWG), 1, 1}, out, t, idt)
	b.Free(idt)
	return out
}
