package unet

import (
	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// transformerNormEps is Transformer2DModel's GroupNorm epsilon, hard-coded
// to 1e-6 in transformer_2d.py (not the UNet's norm_eps).
const transformerNormEps = 1e-6

// Transformer2D is diffusers' Transformer2DModel for continuous input
// (transformer_2d.py, spec §3.4) on x [B, C, H, W]:
//
//	h = GroupNorm(groups, C, eps 1e-6)(x)
//	tokens = proj_in(h as [B, H·W, C])          (token index y·W + x)
//	tokens = transformer_blocks(tokens, ctx)
//	out = proj_out(tokens) as [B, C, H, W] + x
//
// proj_in and proj_out are 1×1 convolutions (use_linear_projection false,
// weights [C, C, 1, 1]) or Linear layers ([C, C]); both are the same
// per-token matrix product, so both bind as a Linear.
type Transformer2D struct {
	Norm            *nn.GroupNorm
	ProjIn, ProjOut *nn.Linear
	Blocks          []*BasicTransformerBlock
	Channels, Inner int
}

// NewTransformer2D binds a Transformer2DModel of `channels` channels with
// `heads` heads (inner width heads·(channels/heads)) and `layers`
// BasicTransformerBlocks attending to a context of width crossDim.
func NewTransformer2D(s *nn.Scope, channels, heads, layers, crossDim, groups int) *Transformer2D {
	inner := heads * (channels / heads)
	t := &Transformer2D{
		Norm:     nn.NewGroupNorm(s, "norm", groups, channels, transformerNormEps),
		ProjIn:   nn.NewLinear(s, "proj_in", channels, inner, true),
		Channels: channels,
		Inner:    inner,
	}
	for i := 0; i < layers; i++ {
		t.Blocks = append(t.Blocks, NewBasicTransformerBlock(s.Sub("transformer_blocks", i), inner, heads, crossDim))
	}
	t.ProjOut = nn.NewLinear(s, "proj_out", inner, channels, true)
	return t
}

// forward runs the model on x [B, C, H, W]; x is not freed.
func (t *Transformer2D) forward(b backend.Backend, x, ctx backend.Tensor, r *run) backend.Tensor {
	sh := x.Shape()
	bs, c, hgt, wid := sh[0], sh[1], sh[2], sh[3]

	n := t.Norm.Forward(b, x, false)
	n3 := b.Reshape(n, bs, c, hgt*wid)
	tok := b.Permute(n3, 0, 2, 1) // [B, HW, C]
	nn.Free(b, n3, n)
	h := t.ProjIn.Forward(b, tok)
	b.Free(tok)

	for _, blk := range t.Blocks {
		h2 := blk.forward(b, h, ctx, r)
		b.Free(h)
		h = h2
	}

	o := t.ProjOut.Forward(b, h) // [B, HW, C]
	b.Free(h)
	o2 := b.Permute(o, 0, 2, 1) // [B, C, HW]
	b.Free(o)
	o4 := b.Reshape(o2, bs, c, hgt, wid)
	out := b.Binary(backend.Add, o4, x)
	nn.Free(b, o4, o2)
	return out
}

// ReleaseCross frees the cross-attention weights of every block.
func (t *Transformer2D) ReleaseCross(b backend.Backend) {
	for _, blk := range t.Blocks {
		blk.ReleaseCross(b)
	}
}

// Release frees every weight.
func (t *Transformer2D) Release(b backend.Backend) {
	releaseGN(b, t.Norm)
	t.ProjIn.Release(b)
	t.ProjOut.Release(b)
	for _, blk := range t.Blocks {
		blk.Release(b)
	}
}
