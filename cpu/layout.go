package cpu

import (
	"fmt"
	"math"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// Permute returns a copy of t whose dimension i is t's dimension perm[i].
func (b *Backend) Permute(tt backend.Tensor, perm ...int) backend.Tensor {
	t := get("Permute", tt)
	r := t.shape.Rank()
	bad := len(perm) != r
	seen := make([]bool, r)
	for _, p := range perm {
		if p < 0 || p >= r || seen[p] {
			bad = true
			break
		}
		seen[p] = true
	}
	if bad {
		panic(fmt.Sprintf("cpu: Permute: %v is not a permutation of the dimensions of %v", perm, t.shape))
	}
	os := make(tensor.Shape, r)
	for i, p := range perm {
		os[i] = t.shape[p]
	}
	out := b.alloc(os)
	od, td := out.data(), t.data()
	if len(od) == 0 {
		return out
	}
	if r == 0 {
		od[0] = td[0]
		return out
	}
	// Source strides, listed in output order.
	src := make([]int, r)
	s := 1
	for i := r - 1; i >= 0; i-- {
		src[i] = s
		s *= t.shape[i]
	}
	st := make([]int, r)
	for i, p := range perm {
		st[i] = src[p]
	}
	inner := os[r-1]
	is := st[r-1]
	rows := len(od) / inner
	parallelFor(rows, inner, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			off, rem := 0, row
			for d := r - 2; d >= 0; d-- {
				off += rem % os[d] * st[d]
				rem /= os[d]
			}
			dst := od[row*inner : (row+1)*inner]
			for j := range dst {
				dst[j] = td[off+j*is]
			}
		}
	})
	return out
}

// normAxis resolves a possibly negative axis of a rank-r tensor.
func normAxis(op string, axis int, s tensor.Shape) int {
	a := axis
	if a < 0 {
		a += s.Rank()
	}
	if a < 0 || a >= s.Rank() {
		panic(fmt.Sprintf("cpu: %s: axis %d out of range for %v", op, axis, s))
	}
	return a
}

// Concat joins tensors along axis; the other dimensions must agree.
func (b *Backend) Concat(axis int, ts ...backend.Tensor) backend.Tensor {
	if len(ts) == 0 {
		panic("cpu: Concat: no tensors")
	}
	xs := make([]*Tensor, len(ts))
	shapes := make([]tensor.Shape, len(ts))
	for i, t := range ts {
		xs[i] = get("Concat", t)
		shapes[i] = xs[i].shape
	}
	ax := normAxis("Concat", axis, xs[0].shape)
	os := xs[0].shape.Clone()
	os[ax] = 0
	for _, x := range xs {
		ok := x.shape.Rank() == os.Rank()
		for d := 0; ok && d < os.Rank(); d++ {
			ok = d == ax || x.shape[d] == os[d]
		}
		if !ok {
			panic(fmt.Sprintf("cpu: Concat: shapes %v do not agree off axis %d", shapes, axis))
		}
		os[ax] += x.shape[ax]
	}
	out := b.alloc(os)
	od := out.data()
	outer := os[:ax].Numel()
	inner := os[ax+1:].Numel()
	rowOut := os[ax] * inner
	off := 0
	for _, x := range xs {
		n := x.shape[ax] * inner
		xd := x.data()
		for o := 0; o < outer; o++ {
			copy(od[o*rowOut+off:o*rowOut+off+n], xd[o*n:(o+1)*n])
		}
		off += n
	}
	return out
}

// Slice returns a copy of the elements with start ≤ index < end along axis.
func (b *Backend) Slice(tt backend.Tensor, axis, start, end int) backend.Tensor {
	t := get("Slice", tt)
	ax := normAxis("Slice", axis, t.shape)
	if start < 0 || end < start || end > t.shape[ax] {
		panic(fmt.Sprintf("cpu: Slice: [%d, %d) out of range for axis %d of %v", start, end, axis, t.shape))
	}
	os := t.shape.Clone()
	os[ax] = end - start
	out := b.alloc(os)
	od, td := out.data(), t.data()
	outer := os[:ax].Numel()
	inner := os[ax+1:].Numel()
	n := (end - start) * inner
	rowIn := t.shape[ax] * inner
	for o := 0; o < outer; o++ {
		copy(od[o*n:(o+1)*n], td[o*rowIn+start*inner:])
	}
	return out
}

// ResizeNearest resizes x [B, C, H, W] to [B, C, outH, outW] with PyTorch's
// "nearest" rule: src = min(floor(dst·(in/out)), in−1), the ratio and the
// product rounded to float32 (aten/src/ATen/native/UpSample.h,
// nearest_idx).
func (b *Backend) ResizeNearest(xt backend.Tensor, outH, outW int) backend.Tensor {
	x := get("ResizeNearest", xt)
	if x.shape.Rank() != 4 || outH < 0 || outW < 0 {
		panic(fmt.Sprintf("cpu: ResizeNearest: x %v to %d×%d: need a 4-D x and sizes ≥ 0", x.shape, outH, outW))
	}
	B, C, H, W := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	if (H == 0 || W == 0) && outH*outW > 0 {
		panic(fmt.Sprintf("cpu: ResizeNearest: empty x %v to %d×%d", x.shape, outH, outW))
	}
	out := b.alloc(tensor.Shape{B, C, outH, outW})
	ys, xs := nearestIndex(H, outH), nearestIndex(W, outW)
	xd, od := x.data(), out.data()
	parallelFor(B*C, outH*outW, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			src := xd[p*H*W : (p+1)*H*W]
			dst := od[p*outH*outW : (p+1)*outH*outW]
			for oy, iy := range ys {
				line := src[iy*W : (iy+1)*W]
				row := dst[oy*outW : (oy+1)*outW]
				for ox, ix := range xs {
					row[ox] = line[ix]
				}
			}
		}
	})
	return out
}

// nearestIndex returns the source index of each of the out destination
// indices: src = min(floor(float32(dst)·float32(in/out)), in−1).
func nearestIndex(in, out int) []int {
	idx := make([]int, out)
	scale := float32(in) / float32(out)
	for d := range idx {
		p := float32(d) * scale
		idx[d] = min(int(math.Floor(float64(p))), in-1)
	}
	return idx
}

// Gather returns the rows of table [V, D] selected by ids: [len(ids), D].
func (b *Backend) Gather(tableT backend.Tensor, ids []int32) backend.Tensor {
	t := get("Gather", tableT)
	if t.shape.Rank() != 2 {
		panic(fmt.Sprintf("cpu: Gather: table %v is not 2-D", t.shape))
	}
	V, D := t.shape[0], t.shape[1]
	for i, id := range ids {
		if id < 0 || int(id) >= V {
			panic(fmt.Sprintf("cpu: Gather: id %d at position %d out of range for table %v", id, i, t.shape))
		}
	}
	out := b.alloc(tensor.Shape{len(ids), D})
	od, td := out.data(), t.data()
	for i, id := range ids {
		copy(od[i*D:(i+1)*D], td[int(id)*D:(int(id)+1)*D])
	}
	return out
}
