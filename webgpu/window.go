//go:build js && wasm

package webgpu

import (
	"fmt"

	"github.com/tgate-web/tgate/tensor"
)

// LimitError reports a tensor that an op cannot fit within a device limit
// (the largest storage binding or the largest buffer). It becomes the
// backend's sticky Err: the op returns a tensor of the right shape whose
// contents are undefined, later ops record nothing, and every ReadBack
// returns the error. Callers can test for it with errors.As to choose a
// smaller image or another backend.
type LimitError struct {
	Op    string       // the backend op, such as "Conv2D"
	DType tensor.DType // the tensor's dtype
	Shape tensor.Shape // the tensor's shape
	Bytes uint64       // the tensor's size
	Limit string       // the WebGPU limit: "maxStorageBufferBindingSize" or "maxBufferSize"
	Max   uint64       // the device's value of the limit
}

func (e *LimitError) Error() string {
	how := "and the op cannot split it into windows"
	if e.Limit == "maxBufferSize" {
		how = "so it cannot be allocated"
	}
	return fmt.Sprintf("webgpu: %s: %v tensor %v of %d bytes is above the device's %s of %d bytes, %s",
		e.Op, e.DType, e.Shape, e.Bytes, e.Limit, e.Max, how)
}

// bindable reports whether every tensor of ts fits one storage binding.
// If one does not, it records a LimitError for op naming the largest.
func (b *Backend) bindable(op string, ts ...*Tensor) bool {
	var big *Tensor
	for _, t := range ts {
		if t != nil && bindSize(t) > b.maxBinding && (big == nil || t.bytes() > big.bytes()) {
			big = t
		}
	}
	if big == nil {
		return true
	}
	b.limitErr(op, big)
	return false
}

// limitErr records that op cannot bind t within maxStorageBufferBindingSize.
func (b *Backend) limitErr(op string, t *Tensor) {
	b.setErr(&LimitError{Op: op, DType: t.dtype, Shape: t.shape.Clone(), Bytes: t.bytes(),
		Limit: "maxStorageBufferBindingSize", Max: b.maxBinding})
}

// fitter checks the windows an op is split into and remembers the tensor
// whose window did not fit, to name it when even one unit does not.
type fitter struct {
	b   *Backend
	bad *Tensor
}

// fits reports whether the elements s of t fit one storage binding.
func (f *fitter) fits(t *Tensor, s span) bool {
	if f.b.fitsWin(t, s) {
		return true
	}
	f.bad = t
	return false
}

// span is the element range [lo, hi) of a tensor, or of an op's index
// space.
type span struct{ lo, hi int }

// winRange returns the byte range a binding of the elements s of t covers:
// from the storage-offset alignment at or below s.lo to the end of s
// rounded up to 4 bytes, and at least 4 bytes.
func (b *Backend) winRange(t *Tensor, s span) (off, size uint64) {
	es := uint64(t.dtype.Size())
	off = uint64(s.lo) * es &^ (b.align - 1)
	end := (uint64(s.hi)*es + 3) &^ 3
	return off, max(4, end-off)
}

// fitsWin reports whether the elements s of t fit one storage binding.
func (b *Backend) fitsWin(t *Tensor, s span) bool {
	_, size := b.winRange(t, s)
	return size <= b.maxBinding
}

// window binds the elements s of t from an aligned offset and returns the
// binding and the element index where it starts, which the kernel
// subtracts from its indices into t. The alignment is a whole number of
// F16 pairs, so a packed element keeps its half of the word.
func (b *Backend) window(t *Tensor, s span) (binding, uint32) {
	off, size := b.winRange(t, s)
	return binding{t, off, size}, uint32(off / uint64(t.dtype.Size()))
}

// split cuts [0, n) into consecutive spans, each a whole number of units
// (the last may be shorter) and as long as fits allows. It returns false
// when a single unit does not fit. fits must be monotone: a span that
// fits stays fitting when shortened.
func split(n, unit int, fits func(span) bool) ([]span, bool) {
	var out []span
	for lo := 0; lo < n; {
		if fits(span{lo, n}) {
			return append(out, span{lo, n}), true
		}
		if !fits(span{lo, min(n, lo+unit)}) {
			return nil, false
		}
		// The largest k with fits(lo, lo+k·unit): k1 fits, k2+1 does not.
		k1, k2 := 1, (n-lo+unit-1)/unit-1
		for k1 < k2 {
			mid := (k1 + k2 + 1) / 2
			if fits(span{lo, min(n, lo+mid*unit)}) {
				k1 = mid
			} else {
				k2 = mid - 1
			}
		}
		hi := min(n, lo+k1*unit)
		out = append(out, span{lo, hi})
		lo = hi
	}
	return out, true
}

// strideRange returns the elements of a tensor that positions s of an
// index space read or write, where position i, unravelled over dims
// (outermost first), maps to Σ idx_k·strides[k] + off. When that map
// never decreases (each stride at least the reach of the dimensions inside
// it, as for slices, concatenation parts and broadcasting over leading
// dimensions), the range runs from the first position's element to the
// last one's; otherwise it is the whole tensor of numel elements.
func strideRange(dims, strides []int, off, numel int, s span) span {
	reach := 0
	for k := len(dims) - 1; k >= 0; k-- {
		if strides[k] < reach {
			return span{0, numel}
		}
		reach += strides[k] * (dims[k] - 1)
	}
	at := func(i int) int {
		e := off
		for k := len(dims) - 1; k >= 0; k-- {
			e += i % dims[k] * strides[k]
			i /= dims[k]
		}
		return e
	}
	return span{at(s.lo), at(s.hi-1) + 1}
}

// noteWindows counts an op of kernel k that ran in n windows.
func (b *Backend) noteWindows(k kernel, n int) {
	ks := b.kstat(k)
	if n > 1 {
		ks.Windowed++
	}
	ks.MaxWindows = max(ks.MaxWindows, n)
}
