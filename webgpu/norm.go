//go:build js && wasm

package webgpu

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// Kernels of norm.wgsl.
var (
	kGroupNorm = kernel{file: "norm.wgsl", entry: "group_norm", inputs: 3, flat: true}
	kLayerNorm = kernel{file: "norm.wgsl", entry: "layer_norm", inputs: 3, flat: true}
	kSoftmax   = kernel{file: "norm.wgsl", entry: "softmax", inputs: 1, flat: true}
)

// normParams mirrors NormParams in norm.wgsl.
type normParams struct {
	Base                [4]uint32
	Len, HW, Ch, Groups uint32
	Eps                 float32
	Flags, Sets         uint32
	_                   uint32
	Set0, OutOff, XOff  uint32
	_                   uint32
}

// runSets records kernel k over sets normalised sets of size elements
// each, consecutive in x and out (which has x's shape); params are the
// kernel's, and extra (gamma, beta) are bound whole, except where x
// stands in for an absent one. When x or out is above the storage binding
// limit it runs over windows of whole sets, binding just their elements.
func (b *Backend) runSets(op string, k kernel, consts map[string]float64, p normParams, sets, size int, out, x *Tensor, extra ...*Tensor) {
	for _, t := range extra {
		if t != x && !b.bindable(op, t) {
			return
		}
	}
	el := func(s span) span { return span{s.lo * size, s.hi * size} }
	fit := fitter{b: b}
	wins, ok := split(sets, 1, func(s span) bool { return fit.fits(x, el(s)) && fit.fits(out, el(s)) })
	if !ok {
		b.limitErr(op, fit.bad)
		return
	}
	for _, s := range wins {
		bo, oo := b.window(out, el(s))
		bx, xo := b.window(x, el(s))
		bs := []binding{bo, bx}
		for _, t := range extra {
			if t == x {
				bs = append(bs, bx) // not read
			} else {
				bs = append(bs, whole(t))
			}
		}
		p.Set0, p.Sets, p.OutOff, p.XOff = uint32(s.lo), uint32(s.hi-s.lo), oo, xo
		b.runBound(k, consts, &p, [3]int{s.hi - s.lo, 1, 1}, bs)
	}
	b.noteWindows(k, len(wins))
}

// Flags of normParams.
const (
	normGamma = 1
	normBeta  = 2
	normSiLU  = 4
	normRMS   = 8
)

// affineArgs returns gamma and beta (x standing in for a missing one), the
// flags saying which are present, and the dtype constants.
func affineArgs(op string, x, gamma, beta *Tensor, n int) (g, be *Tensor, flags uint32, consts map[string]float64) {
	g, be = x, x
	if gamma != nil {
		if gamma.shape.Numel() != n {
			panic(fmt.Sprintf("webgpu: %s: gamma %v does not have %d elements (x %v)", op, gamma.shape, n, x.shape))
		}
		g, flags = gamma, flags|normGamma
	}
	if beta != nil {
		if beta.shape.Numel() != n {
			panic(fmt.Sprintf("webgpu: %s: beta %v does not have %d elements (x %v)", op, beta.shape, n, x.shape))
		}
		be, flags = beta, flags|normBeta
	}
	consts = map[string]float64{"DT_A": dtCode(x.dtype), "DT_B": dtCode(g.dtype), "DT_C": dtCode(be.dtype)}
	return g, be, flags, consts
}

// GroupNorm normalises x [B, C, ...] over groups of C/groups channels with
// the biased variance, then applies gamma, beta and optionally SiLU
// (SD_SEMANTICS.md §2).
func (b *Backend) GroupNorm(xt, gammaT, betaT backend.Tensor, groups int, eps float32, silu bool) backend.Tensor {
	x, gamma, beta := get("GroupNorm", xt), getOpt("GroupNorm", gammaT), getOpt("GroupNorm", betaT)
	if x.shape.Rank() < 2 || groups <= 0 || x.shape[1]%groups != 0 {
		panic(fmt.Sprintf("webgpu: GroupNorm: x %v cannot be split into %d groups of channels", x.shape, groups))
	}
	B, C := x.shape[0], x.shape[1]
	hw := x.shape[2:].Numel()
	g, be, flags, consts := affineArgs("GroupNorm", x, gamma, beta, C)
	if silu {
		flags |= normSiLU
	}
	out := b.alloc("GroupNorm", x.shape, tensor.F32, false)
	size := C / groups * hw
	p := normParams{Len: uint32(size), HW: uint32(hw), Ch: uint32(C), Groups: uint32(groups), Eps: eps, Flags: flags}
	if size == 0 {
		return out
	}
	// A (batch, group) slice [C/G, H, W] is contiguous: the sets.
	b.runSets("GroupNorm", kGroupNorm, consts, p, B*groups, size, out, x, g, be)
	return out
}

// rowNorm runs layer_norm over the last dimension of x.
func (b *Backend) rowNorm(op string, x, gamma, beta *Tensor, eps float32, rms bool) backend.Tensor {
	if x.shape.Rank() < 1 {
		panic(fmt.Sprintf("webgpu: %s of a scalar", op))
	}
	D := x.shape[x.shape.Rank()-1]
	g, be, flags, consts := affineArgs(op, x, gamma, beta, D)
	if rms {
		flags |= normRMS
	}
	out := b.alloc(op, x.shape, tensor.F32, false)
	if D == 0 {
		return out
	}
	p := normParams{Len: uint32(D), Eps: eps, Flags: flags}
	b.runSets(op, kLayerNorm, consts, p, x.shape.Numel()/D, D, out, x, g, be)
	return out
}

// LayerNorm normalises over the last dimension with the biased variance.
func (b *Backend) LayerNorm(xt, gammaT, betaT backend.Tensor, eps float32) backend.Tensor {
	return b.rowNorm("LayerNorm", get("LayerNorm", xt), getOpt("LayerNorm", gammaT), getOpt("LayerNorm", betaT), eps, false)
}

// RMSNorm computes gamma·x/√(mean(x²)+eps) over the last dimension.
func (b *Backend) RMSNorm(xt, gammaT backend.Tensor, eps float32) backend.Tensor {
	return b.rowNorm("RMSNorm", get("RMSNorm", xt), getOpt("RMSNorm", gammaT), nil, eps, true)
}

// Softmax computes a softmax over the last dimension.
func (b *Backend) Softmax(xt backend.Tensor) backend.Tensor {
	x := get("Softmax", xt)
	if x.shape.Rank() < 1 {
		panic("webgpu: Softmax of a scalar")
	}
	D := x.shape[x.shape.Rank()-1]
	out := b.alloc("Softmax", x.shape, tensor.F32, false)
	if D == 0 {
		return out
	}
	p := normParams{Len: uint32(D)}
	b.runSets("Softmax", kSoftmax, map[string]float64{"DT_A": dtCode(x.dtype)}, p, x.shape.Numel()/D, D, out, x)
	return out
}
