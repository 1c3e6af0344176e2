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
	sets := B * groups
	p := normParams{Len: uint32(C / groups * hw), HW: uint32(hw), Ch: uint32(C), Groups: uint32(groups),
		Eps: eps, Flags: flags, Sets: uint32(sets)}
	if p.Len == 0 || !b.bindable("GroupNorm", x, gamma, beta, out) {
		return out
	}
	b.run(kGroupNorm, consts, &p, [3]int{sets, 1, 1}, out, x, g, be)
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
	if D == 0 || !b.bindable(op, x, gamma, beta, out) {
		return out
	}
	rows := x.shape.Numel() / D
	p := normParams{Len: uint32(D), Eps: eps, Flags: flags, Sets: uint32(rows)}
	b.run(kLayerNorm, consts, &p, [3]int{rows, 1, 1}, out, x, g, be)
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
	if D == 0 || !b.bindable("Softmax", x, out) {
		return out
	}
	rows := x.shape.Numel() / D
	p := normParams{Len: uint32(D), Sets: uint32(rows)}
	b.run(kSoftmax, map[string]float64{"DT_A": dtCode(x.dtype)}, &p, [3]int{rows, 1, 1}, out, x)
	return out
}
