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
	g, err := backend.MatMulShape(a.shape, w.shape, shapeOf(bs), opt)
	if err != nil {
		panic("webgpu: " + err.Error())
	}
	aBatch, M, N, K := g.Batch, g.M, g.N, g.K
	bFull := padShape(g.BBatch, len(aBatch))
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
		panic(fmt.Sprintf("webgpu: MatMul: more than four alternating broadcast batch dimensions: a %v, b %v", a.shape, w.shape))
	}
	var p mmParams
	for i := range 4 {
		p.BShape[i] = 1
	}
	for i := range dims { // innermost first → place at the end
		p.BShape[3-i] = uint32(dims[i])
		p.BStride[3-i] = uint32(strides[i])
	}
	out := b.alloc("MatMul", g.Out, tensor.F32, false)
	nBatch := aBatch.Numel()
	if nBatch == 0 || M == 0 || N == 0 || !b.bindable("MatMul", a, w, bs, out) {
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
	g, err := backend.Conv2DShape(x.shape, w.shape, shapeOf(bs), opt)
	if err != nil {
		panic("webgpu: " + err.Error())
	}
	B, Cin, H, W, Cout, kh, kw := g.B, g.Cin, g.H, g.W, g.Cout, g.KH, g.KW
	s, OH, OW := g.Stride, g.OutH, g.OutW
	out := b.alloc("Conv2D", g.Out(), tensor.F32, false)
	if B*Cout*OH*OW == 0 || !b.bindable("Conv2D", x, w, bs, out) {
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
	g, err := backend.AttentionShape(q.shape, k.shape, v.shape, shapeOf(bs), opt.Heads)
	if err != nil {
		panic("webgpu: " + err.Error())
	}
	B, Nq, Nk, H, D, Dv := g.B, g.Nq, g.Nk, g.Heads, g.D, g.Dv
	if D > attnMaxD || Dv > attnMaxD {
		panic(fmt.Sprintf("webgpu: Attention: head size above %d: q %v, v %v, heads %d", attnMaxD, q.shape, v.shape, H))
	}
	p := attnParams{Nq: uint32(Nq), Nk: uint32(Nk), Heads: uint32(H), D: uint32(D), Dv: uint32(Dv),
		BiasSB: uint32(g.BiasBatchStride), BiasSH: uint32(g.BiasHeadStride)}
	bias := q
	if bs != nil {
		bias, p.Flags = bs, 1
	}
	p.Scale = opt.Scale
	if opt.Scale == 0 {
		p.Scale = float32(1 / math.Sqrt(float64(D)))
	}
	out := b.alloc("Attention", g.Out(), tensor.F32, false)
	if B*Nq*H*Dv == 0 || !b.bindable("Attention", q, k, v, bs, out) {
		return out
	}
	if Nk == 0 {
		panic(fmt.Sprintf("webgpu: Attention: no keys: q %v, k %v", q.shape, k.shape))
	}
	consts := map[string]float64{"DT_A": dtCode(q.dtype), "DT_B": dtCode(k.dtype), "DT_C": dtCode(v.dtype), "DT_D": dtCode(bias.dtype)}
	grid := [3]int{groups(Nq, attnQueries), H, B}
	b.run(kAttention, consts, &p, grid, out, q, k, v, bias)
	return out
}
