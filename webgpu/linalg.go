//go:build js && wasm

package webgpu

import (
	"fmt"
	"math"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// Kernels of matmul.wgsl, conv2d.wgsl and attention.wgsl.
var (
	kMatMul    = kernel{file: "matmul.wgsl", entry: "matmul", inputs: 3}
	kConv2D    = kernel{file: "conv2d.wgsl", entry: "conv2d", inputs: 3}
	kAttention = kernel{file: "attention.wgsl", entry: "attention", inputs: 4}
)

// gemmTile is the output tile of matmul.wgsl and conv2d.wgsl (4·WG with
// the default WG of 16).
const gemmTile = 64

// attnQueries is the queries per workgroup of attention.wgsl (its WG), and
// attnMaxD the largest head size it holds (MAXD).
const (
	attnQueries = 64
	attnMaxD    = 256
)

// mmParams mirrors MMParams in matmul.wgsl.
type mmParams struct {
	Base            [4]uint32
	M, N, K, Flags  uint32
	ABs             uint32
	_, _, _         uint32
	BShape, BStride [4]uint32
}

// convParams mirrors ConvParams in conv2d.wgsl.
type convParams struct {
	Base                            [4]uint32
	Cin, H, W, Cout, OH, OW, KH, KW uint32
	Stride, Pad, Flags, _           uint32
}

// attnParams mirrors AttnParams in attention.wgsl.
type attnParams struct {
	Base                 [4]uint32
	Nq, Nk, Heads, D     uint32
	Dv                   uint32
	Scale                float32
	Flags, _             uint32
	BiasSB, BiasSH, _, _ uint32
}

func boolConst(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

// MatMul computes a·b (+ bias), broadcasting b's batch dimensions (each
// equal to a's or 1, aligned at the right) over a's; f32 accumulation.
func (b *Backend) MatMul(x, y, biasT backend.Tensor, opt backend.MatMulOpts) backend.Tensor {
	a, w, bs := get("MatMul", x), get("MatMul", y), getOpt("MatMul", biasT)
	fail := func(why string) {
		s := fmt.Sprintf("webgpu: MatMul: %s: a %v, b %v (TransA %v, TransB %v)", why, a.shape, w.shape, opt.TransA, opt.TransB)
		if bs != nil {
			s += fmt.Sprintf(", bias %v", bs.shape)
		}
		panic(s)
	}
	ra, rb := a.shape.Rank(), w.shape.Rank()
	if ra < 2 || rb < 2 {
		fail("operands need at least 2 dimensions")
	}
	M, K := a.shape[ra-2], a.shape[ra-1]
	if opt.TransA {
		M, K = K, M
	}
	Kb, N := w.shape[rb-2], w.shape[rb-1]
	if opt.TransB {
		Kb, N = N, Kb
	}
	if K != Kb {
		fail("inner dimensions differ")
	}
	aBatch, bBatch := a.shape[:ra-2], w.shape[:rb-2]
	if len(bBatch) > len(aBatch) {
		fail("b has more batch dimensions than a")
	}
	bFull := padShape(bBatch, len(aBatch))
	for i, d := range bFull {
		if d != aBatch[i] && d != 1 {
			fail("batch dimensions do not broadcast")
		}
	}
	if bs != nil && bs.shape.Numel() != N {
		fail("bias size is not N")
	}
	// Merge a's batch dimensions into at most four runs with one b stride
	// pattern each (broadcast or not).
	var dims, strides []int
	st := K * N
	for i := len(aBatch) - 1; i >= 0; i-- {
		d := aBatch[i]
		if d == 1 {
			continue
		}
		s := st
		if bFull[i] == 1 {
			s = 0
		}
		if n := len(dims); n > 0 && ((s == 0) == (strides[n-1] == 0)) && (s == 0 || s == strides[n-1]*dims[n-1]) {
			dims[n-1] *= d
		} else {
			dims, strides = append(dims, d), append(strides, s)
		}
		st *= bFull[i]
	}
	if len(dims) > 4 {
		fail("more than four alternating broadcast batch dimensions")
	}
	var p mmParams
	for i := range 4 {
		p.BShape[i] = 1
	}
	for i := range dims { // innermost first → place at the end
		p.BShape[3-i] = uint32(dims[i])
		p.BStride[3-i] = uint32(strides[i])
	}
	outShape := append(aBatch.Clone(), M, N)
	out := b.alloc(outShape, tensor.F32, false)
	nBatch := aBatch.Numel()
	if nBatch == 0 || M == 0 || N == 0 {
		return out
	}
	p.M, p.N, p.K, p.ABs = uint32(M), uint32(N), uint32(K), uint32(M*K)
	bias := a
	if bs != nil {
		bias, p.Flags = bs, 1
	}
	consts := map[string]float64{
		"TRANS_A": boolConst(opt.TransA), "TRANS_B": boolConst(opt.TransB),
		"DT_A": dtCode(a.dtype), "DT_B": dtCode(w.dtype), "DT_C": dtCode(bias.dtype),
	}
	grid := [3]int{groups(N, gemmTile), groups(M, gemmTile), nBatch}
	b.run(kMatMul, consts, &p, grid, out, a, w, bias)
	return out
}

// Conv2D convolves x [B, Cin, H, W] with w [Cout, Cin, kh, kw] (+ bias)
// as an implicit GEMM.
func (b *Backend) Conv2D(xt, wt, biasT backend.Tensor, opt backend.Conv2DOpts) backend.Tensor {
	x, w, bs := get("Conv2D", xt), get("Conv2D", wt), getOpt("Conv2D", biasT)
	s := opt.Stride
	if s == 0 {
		s = 1
	}
	fail := func(why string) {
		m := fmt.Sprintf("webgpu: Conv2D: %s: x %v, w %v, stride %d, padding %d", why, x.shape, w.shape, s, opt.Padding)
		if bs != nil {
			m += fmt.Sprintf(", bias %v", bs.shape)
		}
		panic(m)
	}
	if x.shape.Rank() != 4 || w.shape.Rank() != 4 {
		fail("x and w must be 4-D")
	}
	if s < 0 || opt.Padding < 0 {
		fail("negative stride or padding")
	}
	B, Cin, H, W := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	Cout, kh, kw := w.shape[0], w.shape[2], w.shape[3]
	if w.shape[1] != Cin {
		fail("input channels differ")
	}
	if bs != nil && bs.shape.Numel() != Cout {
		fail("bias size is not Cout")
	}
	OH := (H+2*opt.Padding-kh)/s + 1
	OW := (W+2*opt.Padding-kw)/s + 1
	if H+2*opt.Padding < kh || W+2*opt.Padding < kw {
		fail("kernel larger than the padded input")
	}
	out := b.alloc(tensor.Shape{B, Cout, OH, OW}, tensor.F32, false)
	if B*Cout*OH*OW == 0 {
		return out
	}
	p := convParams{Cin: uint32(Cin), H: uint32(H), W: uint32(W), Cout: uint32(Cout), OH: uint32(OH), OW: uint32(OW),
		KH: uint32(kh), KW: uint32(kw), Stride: uint32(s), Pad: uint32(opt.Padding)}
	bias := w
	if bs != nil {
		bias, p.Flags = bs, 1
	}
	consts := map[string]float64{"DT_A": dtCode(w.dtype), "DT_B": dtCode(x.dtype), "DT_C": dtCode(bias.dtype)}
	grid := [3]int{groups(OH*OW, gemmTile), groups(Cout, gemmTile), B}
	b.run(kConv2D, consts, &p, grid, out, w, x, bias)
	return out
}

// Attention computes softmax(q·kᵀ·scale + bias)·v per head with a tiled
// online softmax (attention.wgsl); the score matrix is never stored.
func (b *Backend) Attention(qt, kt, vt, biasT backend.Tensor, opt backend.AttentionOpts) backend.Tensor {
	q, k, v, bs := get("Attention", qt), get("Attention", kt), get("Attention", vt), getOpt("Attention", biasT)
	H := opt.Heads
	fail := func(why string) {
		s := fmt.Sprintf("webgpu: Attention: %s: q %v, k %v, v %v, heads %d", why, q.shape, k.shape, v.shape, H)
		if bs != nil {
			s += fmt.Sprintf(", bias %v", bs.shape)
		}
		panic(s)
	}
	if q.shape.Rank() != 3 || k.shape.Rank() != 3 || v.shape.Rank() != 3 {
		fail("q, k and v must be 3-D")
	}
	if H <= 0 {
		fail("heads must be positive")
	}
	B, Nq, Nk := q.shape[0], q.shape[1], k.shape[1]
	if k.shape[0] != B || v.shape[0] != B || v.shape[1] != Nk {
		fail("batch or key counts differ")
	}
	if q.shape[2]%H != 0 || k.shape[2] != q.shape[2] || v.shape[2]%H != 0 {
		fail("channels do not split into heads")
	}
	D, Dv := q.shape[2]/H, v.shape[2]/H
	if D > attnMaxD || Dv > attnMaxD {
		fail(fmt.Sprintf("head size above %d", attnMaxD))
	}
	p := attnParams{Nq: uint32(Nq), Nk: uint32(Nk), Heads: uint32(H), D: uint32(D), Dv: uint32(Dv)}
	bias := q
	if bs != nil {
		s := bs.shape
		if s.Rank() != 4 || s[2] != Nq || s[3] != Nk || (s[0] != 1 && s[0] != B) || (s[1] != 1 && s[1] != H) {
			fail(fmt.Sprintf("bias must be [1|%d, 1|%d, %d, %d]", B, H, Nq, Nk))
		}
		if s[1] != 1 {
			p.BiasSH = uint32(Nq * Nk)
		}
		if s[0] != 1 {
			p.BiasSB = uint32(s[1] * Nq * Nk)
		}
		bias, p.Flags = bs, 1
	}
	p.Scale = opt.Scale
	if opt.Scale == 0 {
		p.Scale = float32(1 / math.Sqrt(float64(D)))
	}
	out := b.alloc(tensor.Shape{B, Nq, H * Dv}, tensor.F32, false)
	if B*Nq*H*Dv == 0 {
		return out
	}
	if Nk == 0 {
		fail("no keys")
	}
	consts := map[string]float64{"DT_A": dtCode(q.dtype), "DT_B": dtCode(k.dtype), "DT_C": dtCode(v.dtype), "DT_D": dtCode(bias.dtype)}
	grid := [3]int{groups(Nq, attnQueries), H, B}
	b.run(kAttention, consts, &p, grid, out, q, k, v, bias)
	return out
}
