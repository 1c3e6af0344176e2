package cpu

import (
	"runtime"

	"github.com/tgate-web/tgate/backend"
)

// convBlock is the number of output positions one convolution task
// gathers (im2col) and multiplies at a time.
const convBlock = 64

// Conv2D convolves x [B, Cin, H, W] with w [Cout, Cin, kh, kw] (PyTorch's
// Conv2d: cross-correlation with zero padding on every side) and adds bias
// [Cout]. Output positions are processed in blocks: each block's input
// patches are gathered into K-contiguous rows (im2col, K = Cin·kh·kw, in
// the filter's own (ci, ky, kx) order) and multiplied with the filter rows
// by the float64-accumulating matmul kernel. Where the assembly
// micro-kernel is available, the patches are gathered straight into the
// blocked GEMM's packed panels (convBlocked) and summed as MatMul sums.
func (b *Backend) Conv2D(xt, wt, biasT backend.Tensor, opt backend.Conv2DOpts) backend.Tensor {
	x, w, bs := get("Conv2D", xt), get("Conv2D", wt), getOpt("Conv2D", biasT)
	g, err := backend.Conv2DShape(x.shape, w.shape, shapeOf(bs), opt)
	if err != nil {
		panic("cpu: " + err.Error())
	}
	B, Cin, H, W, Cout, kh, kw := g.B, g.Cin, g.H, g.W, g.Cout, g.KH, g.KW
	stride, pad, Hout, Wout := g.Stride, g.Padding, g.OutH, g.OutW
	out := b.alloc(g.Out())
	P, K := Hout*Wout, Cin*kh*kw
	if B == 0 || Cout == 0 || P == 0 {
		return out
	}
	var rowBias []float32
	if bs != nil {
		rowBias = bs.data()
	}
	xd, wd, od := x.data(), w.data(), out.data()
	if haveKernel {
		convBlocked(od, xd, wd, rowBias, B, Cin, H, W, Cout, kh, kw, stride, pad, Wout, P, K)
		return out
	}

	pBlocks := (P + convBlock - 1) / convBlock
	// Split the output channels too when there are few position blocks,
	// so every CPU gets work on small feature maps.
	coBlocks := 1
	if n := B * pBlocks; n < 16 {
		coBlocks = min((16+n-1)/n, (Cout+7)/8)
		coBlocks = max(coBlocks, 1)
	}
	coSize := (Cout + coBlocks - 1) / coBlocks
	tasks := B * pBlocks * coBlocks
	parallelFor(tasks, convBlock*coSize*K, func(lo, hi int) {
		col := make([]float32, convBlock*K)
		for task := lo; task < hi; task++ {
			bi := task / (pBlocks * coBlocks)
			pb := task / coBlocks % pBlocks
			cb := task % coBlocks
			p0, p1 := pb*convBlock, min((pb+1)*convBlock, P)
			im2col(col, xd[bi*Cin*H*W:(bi+1)*Cin*H*W], Cin, H, W, kh, kw, stride, pad, Wout, p0, p1)
			co0, co1 := cb*coSize, min((cb+1)*coSize, Cout)
			// out[bi][co][p0+j] = w[co]·col[j] + bias[co]
			gemmTile(od[bi*Cout*P+p0:], P, wd, K, col, K, K, co0, co1, 0, p1-p0, rowBias, nil)
		}
	})
	return out
}

// im2col writes, for each output position p in [p0, p1), the K = Cin·kh·kw
// input values its filter window covers (zero outside the image) into
// col[(p−p0)·K:].
func im2col(col, x []float32, Cin, H, W, kh, kw, stride, pad, Wout, p0, p1 int) {
	K := Cin * kh * kw
	for p := p0; p < p1; p++ {
		row := col[(p-p0)*K : (p-p0+1)*K]
		oy, ox := p/Wout, p%Wout
		iy0, ix0 := oy*stride-pad, ox*stride-pad
		k := 0
		for ci := 0; ci < Cin; ci++ {
			plane := x[ci*H*W : (ci+1)*H*W]
			for ky := 0; ky < kh; ky++ {
				iy := iy0 + ky
				if iy < 0 || iy >= H {
					clear(row[k : k+kw])
					k += kw
					continue
				}
				line := plane[iy*W : (iy+1)*W]
				for kx := 0; kx < kw; kx++ {
					ix := ix0 + kx
					if ix < 0 || ix >= W {
						row[k] = 0
					} else {
						row[k] = line[ix]
					}
					k++
				}
			}
		}
	}
}

// convPositions is the number of output positions one convBlocked task
// gathers and multiplies (a multiple of gemmNR).
const convPositions = 128

// convBlocked is Conv2D's body on the blocked GEMM: the filter [Cout][K]
// is the A operand, read in place; each task gathers the patches of up to
// convPositions output positions of one image as packed B panels
// (im2colPack) and computes out[co][p] = Σ_k w[co][k]·patch[p][k] +
// bias[co] for a range of output channels.
func convBlocked(od, xd, wd, rowBias []float32, B, Cin, H, W, Cout, kh, kw, stride, pad, Wout, P, K int) {
	mpad := roundUp(Cout, gemmMR)
	ap := newAOperand(wd, Cout, K, K, 1)
	pBlocks := (P + convPositions - 1) / convPositions
	// Split the output channels too when there are few position blocks,
	// so every CPU gets work on small feature maps (each split gathers
	// its patches again).
	mPanels := mpad / gemmMR
	coSplit := 1
	if w := runtime.GOMAXPROCS(0); w > 1 && B*pBlocks < 2*w {
		n := B * pBlocks
		coSplit = min((2*w+n-1)/n, mPanels)
	}
	panelsPer := (mPanels + coSplit - 1) / coSplit
	coSplit = (mPanels + panelsPer - 1) / panelsPer
	tasks := B * pBlocks * coSplit
	parallelFor(tasks, convPositions*panelsPer*gemmMR*K, func(lo, hi int) {
		bp := make([]float32, convPositions*K)
		accp := accPool.Get().(*[]float64)
		acc := *accp
		for task := lo; task < hi; task++ {
			bi := task / (pBlocks * coSplit)
			pb := task / coSplit % pBlocks
			cs := task % coSplit
			p0, p1 := pb*convPositions, min((pb+1)*convPositions, P)
			npad := roundUp(p1-p0, gemmNR)
			im2colPack(bp, xd[bi*Cin*H*W:(bi+1)*Cin*H*W], Cin, H, W, kh, kw, stride, pad, Wout, p0, p1, K)
			ip0, ip1 := cs*panelsPer, min((cs+1)*panelsPer, mPanels)
			c := od[bi*Cout*P+p0:]
			for i0 := ip0; i0 < ip1; i0 += gemmMC / gemmMR {
				i1 := min(i0+gemmMC/gemmMR, ip1)
				gemmPacked(&ap, bp, npad, K, i0, i1, 0, npad/gemmNR, acc, gemmNC)
				storeBlock(c, P, acc, gemmNC, i0*gemmMR, min(i1*gemmMR, Cout), 0, p1-p0, rowBias, nil)
			}
		}
		accPool.Put(accp)
	})
}

// im2colPack gathers, for output positions [p0, p1), the K = Cin·kh·kw
// input values each filter window covers (zero outside the image), in the
// filter's (ci, ky, kx) order, into dst as packPanels would pack the
// (p1−p0)×K patch matrix with panels of gemmNR positions.
func im2colPack(dst, x []float32, Cin, H, W, kh, kw, stride, pad, Wout, p0, p1, K int) {
	n := p1 - p0
	npad := roundUp(n, gemmNR)
	var iy0, ix0 [gemmNR]int
	for k0 := 0; k0 < K; k0 += gemmKC {
		kl := min(gemmKC, K-k0)
		blk := dst[k0*npad:]
		for p := 0; p < npad/gemmNR; p++ {
			pan := blk[p*gemmNR*kl:][:gemmNR*kl]
			cnt := min(gemmNR, n-p*gemmNR)
			for c := 0; c < gemmNR; c++ {
				if c < cnt {
					q := p0 + p*gemmNR + c
					iy0[c], ix0[c] = q/Wout*stride-pad, q%Wout*stride-pad
				} else {
					iy0[c], ix0[c] = -H-kh, -W-kw // always outside
				}
			}
			// When the panel's positions are one run of an output row
			// with stride 1, each k reads (at most) one run of an input
			// row.
			run := stride == 1 && cnt == gemmNR && iy0[gemmNR-1] == iy0[0]
			ci, ky, kx := k0/(kh*kw), k0/kw%kh, k0%kw
			for k := 0; k < kl; k++ {
				plane := x[ci*H*W : (ci+1)*H*W]
				row := pan[k*gemmNR : k*gemmNR+gemmNR]
				iy, ix := iy0[0]+ky, ix0[0]+kx
				switch {
				case !run:
				case uint(iy) >= uint(H):
					clear(row)
					goto next
				case ix >= 0 && ix+gemmNR <= W:
					copy(row, plane[iy*W+ix:iy*W+ix+gemmNR])
					goto next
				}
				for c := range row {
					iy, ix := iy0[c]+ky, ix0[c]+kx
					if uint(iy) < uint(H) && uint(ix) < uint(W) {
						row[c] = plane[iy*W+ix]
					} else {
						row[c] = 0
					}
				}
			next:
				if kx++; kx == kw {
					kx = 0
					if ky++; ky == kh {
						ky = 0
						ci++
					}
				}
			}
		}
	}
}
