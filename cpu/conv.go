package cpu

import (
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
// by the float64-accumulating matmul kernel.
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
