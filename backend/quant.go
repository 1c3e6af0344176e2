package backend

import "math"

// Quantizer is implemented by backends that can hold weights as 8-bit
// integers, a quarter of their F32 size and half of F16.
//
// QuantizeRows returns w [R, ...] quantised per row (per output channel of
// a Linear weight [out, in] or a convolution filter [out, in, kh, kw]):
// with s_r = max_j |w_rj| / 127 (1 for an all-zero row),
// q_rj = clamp(round(w_rj / s_r), −127, 127), and the value the kernels
// read back is q_rj · s_r (Q8Value). The result reports DType I8; MatMul
// takes it as its b operand with TransB and Conv2D as its filter,
// dequantising inside the kernel. No other op accepts it. w is not freed.
type Quantizer interface {
	QuantizeRows(w Tensor) Tensor
}

// Q8Scale is the scale of one row of QuantizeRows: max |x| / 127, or 1 for
// a row of zeros. It is computed in float32, as the kernels do.
func Q8Scale(row []float32) float32 {
	var m float32
	for _, v := range row {
		m = max(m, float32(math.Abs(float64(v))))
	}
	if m == 0 {
		return 1
	}
	return m / 127
}

// Q8Round is the stored integer of x at scale s: x/s rounded half away
// from zero, clamped to [−127, 127].
func Q8Round(x, s float32) int8 {
	q := math.Round(float64(x / s))
	return int8(max(-127, min(127, q)))
}

// Q8Value is what the kernels read for the stored integer q at scale s.
func Q8Value(q int8, s float32) float32 { return float32(q) * s }
