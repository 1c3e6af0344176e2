package vae

import (
	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// attention is the mid block's spatial self-attention: diffusers'
// Attention(C, heads=1, dim_head=C, norm_num_groups=G, eps=1e-6,
// residual_connection=True, bias=True) run by AttnProcessor2_0 on a 4-D
// input (attention_processor.py): the H·W positions are the tokens,
//
//	t = GroupNorm(x) as [B, H·W, C]
//	o = to_out.0(softmax(to_q(t)·to_k(t)ᵀ/√C)·to_v(t))
//	out = o as [B, C, H, W] + x.
//
// Old VAE files (diffusers ≤ 0.13) name the projections query, key, value
// and proj_attn, possibly as [C, C, 1, 1] kernels; both spellings load.
type attention struct {
	norm *nn.GroupNorm
	attn *nn.Attention
}

func newAttention(s *nn.Scope, ch, groups int) *attention {
	q, k, v, o := "to_q", "to_k", "to_v", "to_out.0"
	if !s.Has("to_q.weight") && s.Has("query.weight") {
		q, k, v, o = "query", "key", "value", "proj_attn"
	}
	return &attention{
		norm: nn.NewGroupNorm(s, "group_norm", groups, ch, normEps),
		attn: &nn.Attention{
			Q:     nn.NewLinear(s, q, ch, ch, true),
			K:     nn.NewLinear(s, k, ch, ch, true),
			V:     nn.NewLinear(s, v, ch, ch, true),
			Out:   nn.NewLinear(s, o, ch, ch, true),
			Heads: 1,
		},
	}
}

// forward returns the block's output; x [B, C, H, W] is not freed.
func (a *attention) forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	sh := x.Shape()
	n, c, hw := sh[0], sh[1], sh[2]*sh[3]
	g := a.norm.Forward(b, x, false)
	gv := b.Reshape(g, n, c, hw)
	tok := b.Permute(gv, 0, 2, 1) // [B, HW, C]
	nn.Free(b, gv, g)
	o := a.attn.Forward(b, tok, nil, nil)
	b.Free(tok)
	oc := b.Permute(o, 0, 2, 1) // [B, C, HW]
	b.Free(o)
	ov := b.Reshape(oc, sh...)
	out := b.Binary(backend.Add, ov, x)
	nn.Free(b, ov, oc)
	return out
}
