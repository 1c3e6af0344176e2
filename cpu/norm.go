package cpu

import (
	"fmt"
	"math"

	"github.com/tgate-web/tgate/backend"
)

// GroupNorm normalises x [B, C, ...] over groups of C/groups contiguous
// channels and all trailing positions (torch.nn.GroupNorm: biased
// variance), then applies gamma [C] and beta [C] and optionally SiLU. The
// mean and variance are computed in two float64 passes.
func (b *Backend) GroupNorm(xt, gammaT, betaT backend.Tensor, groups int, eps float32, silu bool) backend.Tensor {
	x, g, bt := get("GroupNorm", xt), getOpt("GroupNorm", gammaT), getOpt("GroupNorm", betaT)
	if x.shape.Rank() < 2 || groups <= 0 || x.shape[1]%groups != 0 {
		panic(fmt.Sprintf("cpu: GroupNorm: x %v cannot be split into %d groups of channels", x.shape, groups))
	}
	B, C := x.shape[0], x.shape[1]
	S := x.shape[2:].Numel()
	checkVec("GroupNorm", "gamma", g, C, x)
	checkVec("GroupNorm", "beta", bt, C, x)
	out := b.alloc(x.shape)
	xd, od := x.data(), out.data()
	cpg := C / groups
	n := cpg * S
	parallelFor(B*groups, 3*n, func(lo, hi int) {
		for bg := lo; bg < hi; bg++ {
			base := bg * n
			mean, inv := meanInvStd(xd[base:base+n], eps)
			c0 := (bg % groups) * cpg
			for ci := 0; ci < cpg; ci++ {
				c := c0 + ci
				scale, shift := inv, -mean*inv
				if g != nil {
					gv := float64(g.data()[c])
					scale, shift = scale*gv, shift*gv
				}
				if bt != nil {
					shift += float64(bt.data()[c])
				}
				src := xd[base+ci*S : base+(ci+1)*S]
				dst := od[base+ci*S : base+(ci+1)*S]
				for i, v := range src {
					y := float64(v)*scale + shift
					if silu {
						y = y / (1 + math.Exp(-y))
					}
					dst[i] = float32(y)
				}
			}
		}
	})
	return out
}

// meanInvStd returns the mean of v and 1/√(biased variance + eps), both in
// float64, computing the variance around the mean in a second pass.
func meanInvStd(v []float32, eps float32) (mean, inv float64) {
	if len(v) == 0 {
		return 0, 1 / math.Sqrt(float64(eps))
	}
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	mean = s / float64(len(v))
	var q float64
	for _, x := range v {
		d := float64(x) - mean
		q += d * d
	}
	return mean, 1 / math.Sqrt(q/float64(len(v))+float64(eps))
}

// checkVec panics unless the optional per-channel vector v has n elements.
func checkVec(op, name string, v *Tensor, n int, x *Tensor) {
	if v != nil && v.shape.Numel() != n {
		panic(fmt.Sprintf("cpu: %s: %s has shape %v, want %d elements for x %v", op, name, v.shape, n, x.shape))
	}
}

// lastDim returns the size of x's last dimension and the number of rows
// before it, panicking with op's name for a scalar.
func lastDim(op string, x *Tensor) (rows, d int) {
	if x.shape.Rank() < 1 {
		panic(fmt.Sprintf("cpu: %s: x %v has no last dimension", op, x.shape))
	}
	d = x.shape[x.shape.Rank()-1]
	if d == 0 {
		return 0, 0
	}
	return x.shape.Numel() / d, d
}

// LayerNorm normalises each row of x's last dimension (torch.nn.LayerNorm:
// biased variance, two float64 passes), then scales by gamma and shifts by
// beta.
func (b *Backend) LayerNorm(xt, gammaT, betaT backend.Tensor, eps float32) backend.Tensor {
	x, g, bt := get("LayerNorm", xt), getOpt("LayerNorm", gammaT), getOpt("LayerNorm", betaT)
	rows, D := lastDim("LayerNorm", x)
	checkVec("LayerNorm", "gamma", g, x.shape[x.shape.Rank()-1], x)
	checkVec("LayerNorm", "beta", bt, x.shape[x.shape.Rank()-1], x)
	out := b.alloc(x.shape)
	xd, od := x.data(), out.data()
	parallelFor(rows, 3*D, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			src, dst := xd[r*D:(r+1)*D], od[r*D:(r+1)*D]
			mean, inv := meanInvStd(src, eps)
			for i, v := range src {
				y := (float64(v) - mean) * inv
				if g != nil {
					y *= float64(g.data()[i])
				}
				if bt != nil {
					y += float64(bt.data()[i])
				}
				dst[i] = float32(y)
			}
		}
	})
	return out
}

// RMSNorm computes gamma · x / √(mean(x²) + eps) over the last dimension
// (transformers' T5LayerNorm), with the mean of squares in float64.
func (b *Backend) RMSNorm(xt, gammaT backend.Tensor, eps float32) backend.Tensor {
	x, g := get("RMSNorm", xt), getOpt("RMSNorm", gammaT)
	rows, D := lastDim("RMSNorm", x)
	checkVec("RMSNorm", "gamma", g, x.shape[x.shape.Rank()-1], x)
	out := b.alloc(x.shape)
	xd, od := x.data(), out.data()
	parallelFor(rows, 2*D, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			src, dst := xd[r*D:(r+1)*D], od[r*D:(r+1)*D]
			var q float64
			for _, v := range src {
				q += float64(v) * float64(v)
			}
			inv := 1 / math.Sqrt(q/float64(D)+float64(eps))
			for i, v := range src {
				y := float64(v) * inv
				if g != nil {
					y *= float64(g.data()[i])
				}
				dst[i] = float32(y)
			}
		}
	})
	return out
}

// Softmax computes exp(x − max)/Σ exp(x − max) over the last dimension,
// with the exponentials and their sum in float64.
func (b *Backend) Softmax(xt backend.Tensor) backend.Tensor {
	x := get("Softmax", xt)
	rows, D := lastDim("Softmax", x)
	out := b.alloc(x.shape)
	xd, od := x.data(), out.data()
	parallelFor(rows, 4*D, func(lo, hi int) {
		e := make([]float64, D)
		for r := lo; r < hi; r++ {
			softmaxRow(od[r*D:(r+1)*D], xd[r*D:(r+1)*D], e)
		}
	})
	return out
}

// softmaxRow writes the softmax of src into dst, using e (len(src)) as
// float64 scratch space.
func softmaxRow(dst, src []float32, e []float64) {
	m := math.Inf(-1)
	for _, v := range src {
		m = math.Max(m, float64(v))
	}
	var s float64
	for i, v := range src {
		e[i] = math.Exp(float64(v) - m)
		s += e[i]
	}
	for i := range dst {
		dst[i] = float32(e[i] / s)
	}
}
