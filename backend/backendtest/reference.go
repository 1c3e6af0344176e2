package backendtest

import (
	"math"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// This file holds the references the suite compares against: plain
// float64 loops written straight from each op's definition (PyTorch's
// semantics as given in backend.Backend's documentation and §2 of the
// numerics spec), with no attention to speed.

// array is a row-major float64 tensor.
type array struct {
	shape []int
	data  []float64
}

func newArray(shape ...int) *array {
	return &array{shape: append([]int(nil), shape...), data: make([]float64, numel(shape))}
}

// arr widens a host tensor (nil stays nil).
func arr(h *tensor.Host) *array {
	if h == nil {
		return nil
	}
	a := newArray(h.Shape...)
	for i, v := range h.Data {
		a.data[i] = float64(v)
	}
	return a
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// offset returns the flat index of idx in shape.
func offset(shape, idx []int) int {
	o := 0
	for d := range shape {
		o = o*shape[d] + idx[d]
	}
	return o
}

// next advances the multi-index idx over shape in row-major order and
// reports whether it wrapped around.
func next(idx, shape []int) bool {
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d]++
		if idx[d] < shape[d] {
			return false
		}
		idx[d] = 0
	}
	return true
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// refUnary evaluates op at x from its definition.
func refUnary(op backend.UnaryOp, x float64) float64 {
	switch op {
	case backend.SiLU:
		return x * sigmoid(x)
	case backend.GELU:
		// 0.5·x·(1+erf(x/√2)) written with erfc, which keeps its relative
		// precision where 1+erf cancels (x ≲ −5).
		return 0.5 * x * math.Erfc(-x/math.Sqrt(2))
	case backend.GELUTanh:
		// 0.5·x·(1+tanh(u)) = x/(1+e^(−2u)), exact in float64 for large |u|.
		u := math.Sqrt(2/math.Pi) * (x + 0.044715*x*x*x)
		return x / (1 + math.Exp(-2*u))
	case backend.QuickGELU:
		return x * sigmoid(1.702*x)
	case backend.ReLU:
		if x > 0 {
			return x
		}
		return 0
	case backend.Tanh:
		return math.Tanh(x)
	case backend.Sigmoid:
		return sigmoid(x)
	case backend.Exp:
		return math.Exp(x)
	case backend.Neg:
		return -x
	case backend.Sqrt:
		return math.Sqrt(x)
	case backend.Square:
		return x * x
	}
	panic("backendtest: no reference for " + op.String())
}

// refBinaryOp evaluates op at (x, y).
func refBinaryOp(op backend.BinaryOp, x, y float64) float64 {
	switch op {
	case backend.Add:
		return x + y
	case backend.Sub:
		return x - y
	case backend.Mul:
		return x * y
	case backend.Div:
		return x / y
	case backend.Max:
		return math.Max(x, y)
	case backend.Min:
		return math.Min(x, y)
	}
	panic("backendtest: no reference for " + op.String())
}

// refMap applies f to every element.
func refMap(x *array, f func(float64) float64) *array {
	out := newArray(x.shape...)
	for i, v := range x.data {
		out.data[i] = f(v)
	}
	return out
}

// refBinary applies op with NumPy broadcasting.
func refBinary(op backend.BinaryOp, a, b *array) *array {
	r := max(len(a.shape), len(b.shape))
	pad := func(s []int) []int {
		p := make([]int, r)
		for i := range p {
			p[i] = 1
		}
		copy(p[r-len(s):], s)
		return p
	}
	as, bs := pad(a.shape), pad(b.shape)
	os := make([]int, r)
	for d := range os {
		os[d] = max(as[d], bs[d])
		if as[d] == 0 || bs[d] == 0 {
			os[d] = 0
		}
	}
	out := newArray(os...)
	if len(out.data) == 0 {
		return out
	}
	idx, ai, bi := make([]int, r), make([]int, r), make([]int, r)
	for i := range out.data {
		for d := range idx {
			ai[d] = min(idx[d], as[d]-1)
			bi[d] = min(idx[d], bs[d]-1)
		}
		out.data[i] = refBinaryOp(op, a.data[offset(as, ai)], b.data[offset(bs, bi)])
		next(idx, os)
	}
	return out
}

// refMatMul computes a·b + bias with the layouts of backend.MatMulOpts;
// b's batch dimensions align with the last of a's.
func refMatMul(a, b, bias *array, transA, transB bool) *array {
	ra, rb := len(a.shape), len(b.shape)
	M, K := a.shape[ra-2], a.shape[ra-1]
	if transA {
		M, K = K, M
	}
	N := b.shape[rb-1]
	if transB {
		N = b.shape[rb-2]
	}
	batch := a.shape[:ra-2]
	bBatch := b.shape[:rb-2]
	out := newArray(append(append([]int(nil), batch...), M, N)...)
	nb := numel(batch)
	idx := make([]int, len(batch))
	for bi := 0; bi < nb; bi++ {
		bidx := idx[len(batch)-len(bBatch):]
		aOff := bi * M * K
		bOff := offset(bBatch, bidx) * K * N
		for m := 0; m < M; m++ {
			for n := 0; n < N; n++ {
				s := 0.0
				for k := 0; k < K; k++ {
					av := a.data[aOff+m*K+k]
					if transA {
						av = a.data[aOff+k*M+m]
					}
					bv := b.data[bOff+k*N+n]
					if transB {
						bv = b.data[bOff+n*K+k]
					}
					s += av * bv
				}
				if bias != nil {
					s += bias.data[n]
				}
				out.data[(bi*M+m)*N+n] = s
			}
		}
		next(idx, batch)
	}
	return out
}

// refConv2D is PyTorch's Conv2d: out[b][o][y][x] = bias[o] +
// Σ_{c,i,j} w[o][c][i][j]·x[b][c][y·s−p+i][x·s−p+j], zero outside x.
func refConv2D(x, w, bias *array, stride, pad int) *array {
	B, C, H, W := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	O, kh, kw := w.shape[0], w.shape[2], w.shape[3]
	Ho, Wo := (H+2*pad-kh)/stride+1, (W+2*pad-kw)/stride+1
	out := newArray(B, O, Ho, Wo)
	for b := 0; b < B; b++ {
		for o := 0; o < O; o++ {
			for y := 0; y < Ho; y++ {
				for xo := 0; xo < Wo; xo++ {
					s := 0.0
					if bias != nil {
						s = bias.data[o]
					}
					for c := 0; c < C; c++ {
						for i := 0; i < kh; i++ {
							iy := y*stride - pad + i
							if iy < 0 || iy >= H {
								continue
							}
							for j := 0; j < kw; j++ {
								ix := xo*stride - pad + j
								if ix < 0 || ix >= W {
									continue
								}
								s += w.data[offset(w.shape, []int{o, c, i, j})] * x.data[offset(x.shape, []int{b, c, iy, ix})]
							}
						}
					}
					out.data[offset(out.shape, []int{b, o, y, xo})] = s
				}
			}
		}
	}
	return out
}

// refGroupNorm is torch.nn.GroupNorm followed by an optional SiLU.
func refGroupNorm(x, gamma, beta *array, groups int, eps float64, silu bool) *array {
	B, C := x.shape[0], x.shape[1]
	S := numel(x.shape[2:])
	cpg := C / groups
	out := newArray(x.shape...)
	for b := 0; b < B; b++ {
		for g := 0; g < groups; g++ {
			lo, hi := (b*C+g*cpg)*S, (b*C+(g+1)*cpg)*S
			mean, variance := meanVar(x.data[lo:hi])
			for i := lo; i < hi; i++ {
				c := (i / S) % C
				y := (x.data[i] - mean) / math.Sqrt(variance+eps)
				if gamma != nil {
					y *= gamma.data[c]
				}
				if beta != nil {
					y += beta.data[c]
				}
				if silu {
					y *= sigmoid(y)
				}
				out.data[i] = y
			}
		}
	}
	return out
}

// meanVar returns the mean and the biased variance of v.
func meanVar(v []float64) (mean, variance float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		variance += (x - mean) * (x - mean)
	}
	return mean, variance / float64(len(v))
}

// refLayerNorm is torch.nn.LayerNorm over the last dimension.
func refLayerNorm(x, gamma, beta *array, eps float64) *array {
	D := x.shape[len(x.shape)-1]
	out := newArray(x.shape...)
	for r := 0; r < len(x.data)/D; r++ {
		row := x.data[r*D : (r+1)*D]
		mean, variance := meanVar(row)
		for i, v := range row {
			y := (v - mean) / math.Sqrt(variance+eps)
			if gamma != nil {
				y *= gamma.data[i]
			}
			if beta != nil {
				y += beta.data[i]
			}
			out.data[r*D+i] = y
		}
	}
	return out
}

// refRMSNorm is transformers' T5LayerNorm: gamma·x/√(mean(x²)+eps).
func refRMSNorm(x, gamma *array, eps float64) *array {
	D := x.shape[len(x.shape)-1]
	out := newArray(x.shape...)
	for r := 0; r < len(x.data)/D; r++ {
		row := x.data[r*D : (r+1)*D]
		ms := 0.0
		for _, v := range row {
			ms += v * v
		}
		ms /= float64(D)
		for i, v := range row {
			y := v / math.Sqrt(ms+eps)
			if gamma != nil {
				y *= gamma.data[i]
			}
			out.data[r*D+i] = y
		}
	}
	return out
}

// softmaxInto writes softmax(v) into dst, subtracting the maximum first so
// that large inputs do not overflow.
func softmaxInto(dst, v []float64) {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	s := 0.0
	for i, x := range v {
		dst[i] = math.Exp(x - m)
		s += dst[i]
	}
	for i := range dst {
		dst[i] /= s
	}
}

// refSoftmax is a softmax over the last dimension.
func refSoftmax(x *array) *array {
	D := x.shape[len(x.shape)-1]
	out := newArray(x.shape...)
	for r := 0; r < len(x.data)/D; r++ {
		softmaxInto(out.data[r*D:(r+1)*D], x.data[r*D:(r+1)*D])
	}
	return out
}

// refAttention is multi-head scaled dot-product attention with an additive
// bias [Bb, Hb, Nq, Nk] broadcast over batch and heads.
func refAttention(q, k, v, bias *array, heads int, scale float64) *array {
	B, Nq, Nk := q.shape[0], q.shape[1], k.shape[1]
	D, Dv := q.shape[2]/heads, v.shape[2]/heads
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(D))
	}
	out := newArray(B, Nq, heads*Dv)
	scores := make([]float64, Nk)
	p := make([]float64, Nk)
	for b := 0; b < B; b++ {
		for h := 0; h < heads; h++ {
			for i := 0; i < Nq; i++ {
				for j := 0; j < Nk; j++ {
					s := 0.0
					for d := 0; d < D; d++ {
						s += q.data[offset(q.shape, []int{b, i, h*D + d})] * k.data[offset(k.shape, []int{b, j, h*D + d})]
					}
					s *= scale
					if bias != nil {
						bb, bh := min(b, bias.shape[0]-1), min(h, bias.shape[1]-1)
						s += bias.data[offset(bias.shape, []int{bb, bh, i, j})]
					}
					scores[j] = s
				}
				softmaxInto(p, scores)
				for d := 0; d < Dv; d++ {
					s := 0.0
					for j := 0; j < Nk; j++ {
						s += p[j] * v.data[offset(v.shape, []int{b, j, h*Dv + d})]
					}
					out.data[offset(out.shape, []int{b, i, h*Dv + d})] = s
				}
			}
		}
	}
	return out
}

// refPermute returns x with out dimension i taken from x's dimension perm[i].
func refPermute(x *array, perm []int) *array {
	os := make([]int, len(perm))
	for i, p := range perm {
		os[i] = x.shape[p]
	}
	out := newArray(os...)
	if len(out.data) == 0 {
		return out
	}
	idx, src := make([]int, len(os)), make([]int, len(os))
	for i := range out.data {
		for d, p := range perm {
			src[p] = idx[d]
		}
		out.data[i] = x.data[offset(x.shape, src)]
		next(idx, os)
	}
	return out
}

// refConcat joins xs along a non-negative axis.
func refConcat(axis int, xs ...*array) *array {
	os := append([]int(nil), xs[0].shape...)
	os[axis] = 0
	for _, x := range xs {
		os[axis] += x.shape[axis]
	}
	out := newArray(os...)
	idx := make([]int, len(os))
	for i := range out.data {
		j := idx[axis]
		for _, x := range xs {
			if j < x.shape[axis] {
				src := append([]int(nil), idx...)
				src[axis] = j
				out.data[i] = x.data[offset(x.shape, src)]
				break
			}
			j -= x.shape[axis]
		}
		next(idx, os)
	}
	return out
}

// refSlice keeps indices [start, end) of a non-negative axis.
func refSlice(x *array, axis, start, end int) *array {
	os := append([]int(nil), x.shape...)
	os[axis] = end - start
	out := newArray(os...)
	idx := make([]int, len(os))
	src := make([]int, len(os))
	for i := range out.data {
		copy(src, idx)
		src[axis] += start
		out.data[i] = x.data[offset(x.shape, src)]
		next(idx, os)
	}
	return out
}

// nearestSrc is PyTorch's nearest_idx: min(floor(dst·(in/out)), in−1) with
// the ratio and the product in float32.
func nearestSrc(dst, in, out int) int {
	scale := float32(in) / float32(out)
	p := float32(dst) * scale
	return min(int(math.Floor(float64(p))), in-1)
}

// refResizeNearest resizes the last two dimensions of x [B, C, H, W].
func refResizeNearest(x *array, outH, outW int) *array {
	B, C, H, W := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	out := newArray(B, C, outH, outW)
	for b := 0; b < B; b++ {
		for c := 0; c < C; c++ {
			for y := 0; y < outH; y++ {
				for xo := 0; xo < outW; xo++ {
					sy, sx := nearestSrc(y, H, outH), nearestSrc(xo, W, outW)
					out.data[offset(out.shape, []int{b, c, y, xo})] = x.data[offset(x.shape, []int{b, c, sy, sx})]
				}
			}
		}
	}
	return out
}

// refGather returns table rows ids.
func refGather(table *array, ids []int32) *array {
	D := table.shape[1]
	out := newArray(len(ids), D)
	for i, id := range ids {
		copy(out.data[i*D:(i+1)*D], table.data[int(id)*D:(int(id)+1)*D])
	}
	return out
}

// refLinComb returns Σ coeffs[i]·xs[i].
func refLinComb(coeffs []float32, xs ...*array) *array {
	out := newArray(xs[0].shape...)
	for i := range out.data {
		for k, x := range xs {
			out.data[i] += float64(coeffs[k]) * x.data[i]
		}
	}
	return out
}
