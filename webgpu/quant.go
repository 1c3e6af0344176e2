//go:build js && wasm

package webgpu

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// Kernels of quantize.wgsl.
var (
	kRowScales = kernel{file: "quantize.wgsl", entry: "row_scales", inputs: 2, flat: true}
	kPack8     = kernel{file: "quantize.wgsl", entry: "pack", inputs: 2, flat: true}
)

// quantWG is the workgroup size of quantize.wgsl.
const quantWG = 64

// qParams mirrors QParams in quantize.wgsl.
type qParams struct {
	Base       [4]uint32
	Rows, K, N uint32
	_          uint32
}

// QuantizeRows implements backend.Quantizer on the GPU: one pass finds
// each row's scale, a second packs the integers four to a word. The
// result holds N bytes plus four per row, against 2N for F16; its scales
// live with it and are freed with it.
func (b *Backend) QuantizeRows(wt backend.Tensor) backend.Tensor {
	w := get("QuantizeRows", wt)
	if len(w.shape) < 2 || !w.dtype.IsFloat() {
		panic(fmt.Sprintf("webgpu: QuantizeRows: want a float weight of at least two dimensions, got %v %v", w.dtype, w.shape))
	}
	rows := w.shape[0]
	n := w.shape.Numel()
	scale := b.alloc("QuantizeRows", tensor.Shape{rows}, tensor.F32, false)
	out := b.alloc("QuantizeRows", w.shape, tensor.I8, false)
	out.st.scale = scale
	if n == 0 {
		return out
	}
	p := qParams{Rows: uint32(rows), K: uint32(n / rows), N: uint32(n)}
	consts := map[string]float64{"DT_A": dtCode(w.dtype), "WG": quantWG}
	b.run(kRowScales, consts, &p, [3]int{rows, 1, 1}, scale, w, w)
	b.run(kPack8, consts, &p, [3]int{groups((n+3)/4, quantWG), 1, 1}, out, w, scale)
	return out
}

// weightCode is the dtype code of a weight operand of MatMul or Conv2D,
// which may also be quantised (code 3), and the binding of its scales
// (dummy, the tensor itself, when it is not quantised).
func weightCode(op string, w *Tensor) (float64, *Tensor) {
	if w.dtype != tensor.I8 {
		return dtCode(w.dtype), w
	}
	if w.st.scale == nil {
		panic(fmt.Sprintf("webgpu: %s: an I8 tensor %v without scales (only QuantizeRows makes I8 weights)", op, w.shape))
	}
	return 3, w.st.scale
}
