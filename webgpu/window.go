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
	how := "and the op does not split its work into windows"
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

// noteWindows counts an op of kernel k that ran in n windows.
func (b *Backend) noteWindows(k kernel, n int) {
	ks := b.kstat(k)
	if n > 1 {
		ks.Windowed++
	}
	ks.MaxWindows = max(ks.MaxWindows, n)
}
