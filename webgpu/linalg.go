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
	kMatMul    = kernel{file: "matmul.wgsl", entry: "matmul", inputs: 4}
	kConv2D    = kernel{file: "conv2d.wgsl", entry: "conv2d", inputs: 4}
	kAttention = kernel{file: "attention.wgsl", entry: "attention", inputs: 4}
)

// Tiling of matmul.wgsl and conv2d.wgsl: WG×WG threads per workgroup,
// each computing 8×8 outputs, so a workgroup covers gemmTile×gemmTile
// outputs; the K dimension is walked in steps of gemmTK.
const (
	gemmWG   = 8
	gemmTK   = 16
	gemmTile = 8 * gemmWG
)

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
	XOff, WOff, OutOff, Batch       uint32
	Co0, CoN, Ci0, CiN              uint32
}

// Flags of convParams.
const (
	convBias       = 1
	convAccumulate = 2
)

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
	wCode, wScale := weightCode("MatMul", w)
	if w.dtype == tensor.I8 && (!opt.TransB || len(w.shape) != 2) {
		panic(fmt.Sprintf("webgpu: MatMul: an 8-bit weight must be a Linear weight [out, in] used with TransB, got %v", w.shape))
	}
	wg := matmulWG(M)
	consts := map[string]float64{
		"TRANS_A": boolConst(opt.TransA), "TRANS_B": boolConst(opt.TransB),
		"DT_A": dtCode(a.dtype), "DT_B": wCode, "DT_C": dtCode(bias.dtype),
		"WG": float64(wg), "TK": gemmTK,
	}
	grid := [3]int{groups(N, 8*wg), groups(M, 8*wg), nBatch}
	b.run(kMatMul, consts, &p, grid, out, a, w, bias, wScale)
	return out
}

// matmulWG is the workgroup side of a matmul with M rows: gemmWG, or half
// of it when the smaller tile pads M by a quarter less (77 text tokens:
// 96 rows computed instead of 128).
func matmulWG(m int) int {
	big, small := 8*gemmWG, 4*gemmWG
	if 4*((m+small-1)/small*small) <= 3*((m+big-1)/big*big) {
		return gemmWG / 2
	}
	return gemmWG
}

// Conv2D convolves x [B, Cin, H, W] with w [Cout, Cin, kh, kw] (+ bias)
// as an implicit GEMM. When a tensor is above the storage binding limit,
// each batch sample runs as bands of output channels (binding those
// channels of out and those rows of w) times windows of input channels
// (binding those channels of x), the partial sums over the input windows
// accumulating in out. A channel of [H, W] is contiguous in NCHW, a band
// of rows across channels is not, so the windows are whole channels.
func (b *Backend) Conv2D(xt, wt, biasT backend.Tensor, opt backend.Conv2DOpts) backend.Tensor {
	x, w, bs := get("Conv2D", xt), get("Conv2D", wt), getOpt("Conv2D", biasT)
	g, err := backend.Conv2DShape(x.shape, w.shape, shapeOf(bs), opt)
	if err != nil {
		panic("webgpu: " + err.Error())
	}
	B, Cin, H, W, Cout, kh, kw := g.B, g.Cin, g.H, g.W, g.Cout, g.KH, g.KW
	s, OH, OW := g.Stride, g.OutH, g.OutW
	out := b.alloc("Conv2D", g.Out(), tensor.F32, false)
	if B*Cout*OH*OW == 0 {
		return out
	}
	p := convParams{Cin: uint32(Cin), H: uint32(H), W: uint32(W), Cout: uint32(Cout), OH: uint32(OH), OW: uint32(OW),
		KH: uint32(kh), KW: uint32(kw), Stride: uint32(s), Pad: uint32(opt.Padding),
		CoN: uint32(Cout), CiN: uint32(Cin)}
	bias := w
	if bs != nil {
		bias, p.Flags = bs, convBias
	}
	wCode, wScale := weightCode("Conv2D", w)
	consts := map[string]float64{"DT_A": wCode, "DT_B": dtCode(x.dtype), "DT_C": dtCode(bias.dtype),
		"WG": gemmWG, "TK": gemmTK}
	np, kt := OH*OW, Cin*kh*kw
	if !b.bindable("Conv2D", bs) { // the bias is bound whole
		return out
	}
	if bindSize(x) <= b.maxBinding && bindSize(w) <= b.maxBinding && bindSize(out) <= b.maxBinding {
		b.run(kConv2D, consts, &p, [3]int{groups(np, gemmTile), groups(Cout, gemmTile), B}, out, w, x, bias, wScale)
		b.noteWindows(kConv2D, 1)
		return out
	}
	// The elements of channels c of batch sample n, in x and in out, and
	// the filter rows of output channels c.
	xs := func(n int, c span) span { return span{(n*Cin + c.lo) * H * W, (n*Cin + c.hi) * H * W} }
	outs := func(n int, c span) span { return span{(n*Cout + c.lo) * np, (n*Cout + c.hi) * np} }
	ws := func(c span) span { return span{c.lo * kt, c.hi * kt} }
	fit := fitter{b: b}
	ci, ok := split(Cin, 1, func(c span) bool {
		for n := range B {
			if !fit.fits(x, xs(n, c)) {
				return false
			}
		}
		return true
	})
	var co []span
	if ok {
		co, ok = split(Cout, 1, func(c span) bool {
			for n := range B {
				if !fit.fits(out, outs(n, c)) {
					return false
				}
			}
			return fit.fits(w, ws(c))
		})
	}
	if !ok {
		b.limitErr("Conv2D", fit.bad)
		return out
	}
	for n := range B {
		for _, oc := range co {
			bw, wOff := b.window(w, ws(oc))
			bo, oOff := b.window(out, outs(n, oc))
			bb := bw // an absent bias is not read: bind the filter in its place
			if bs != nil {
				bb = whole(bs)
			}
			sb := bw // likewise absent scales
			if w.dtype == tensor.I8 {
				sb = whole(wScale)
			}
			for j, ic := range ci {
				bx, xOff := b.window(x, xs(n, ic))
				q := p
				q.XOff, q.WOff, q.OutOff, q.Batch = xOff, wOff, oOff, uint32(n)
				q.Co0, q.CoN, q.Ci0, q.CiN = uint32(oc.lo), uint32(oc.hi-oc.lo), uint32(ic.lo), uint32(ic.hi-ic.lo)
				if j > 0 {
					q.Flags = convAccumulate // the bias went in with the first window
				}
				b.runBound(kConv2D, consts, &q, [3]int{groups(np, gemmTile), groups(oc.hi-oc.lo, gemmTile), 1},
					[]binding{bo, bw, bx, bb, sb})
			}
		}
	}
	b.noteWindows(kConv2D, B*len(co)*len(ci))
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
