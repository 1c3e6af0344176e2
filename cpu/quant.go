package cpu

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// QuantizeRows implements backend.Quantizer. The CPU backend holds every
// tensor as float32, so the result holds the dequantised values q·s
// (exactly what the WebGPU kernels read) and reports DType I8: it computes
// what an 8-bit weight computes, as the reference for the GPU kernels, but
// saves no memory here.
func (b *Backend) QuantizeRows(wt backend.Tensor) backend.Tensor {
	w := get("QuantizeRows", wt)
	if len(w.shape) < 2 || !w.dtype.IsFloat() {
		panic(fmt.Sprintf("cpu: QuantizeRows: want a float weight of at least two dimensions, got %v %v", w.dtype, w.shape))
	}
	out := b.alloc(w.shape)
	rows := w.shape[0]
	k := w.shape.Numel() / max(rows, 1)
	src, dst := w.data(), out.data()
	for r := range rows {
		row := src[r*k : (r+1)*k]
		s := backend.Q8Scale(row)
		for j, v := range row {
			dst[r*k+j] = backend.Q8Value(backend.Q8Round(v, s), s)
		}
	}
	out.dtype = tensor.I8
	return out
}
