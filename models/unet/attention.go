package unet

import (
	"fmt"
	"strings"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// BasicTransformerBlock is diffusers' BasicTransformerBlock (attention.py)
// with norm_type "layer_norm" as SD uses it (spec §3.4):
//
//	h = h + attn1(norm1(h))          self-attention, to_q/k/v without bias
//	h = h + attn2(norm2(h), ctx)     cross-attention to the text embeddings
//	h = h + ff(norm3(h))             GEGLU feed-forward, inner width 4·dim
//
// Both attentions run through an nn.AttentionHook keyed by their weight
// prefix, so T-GATE can cache and reuse their outputs; the hook's output
// may have batch 1 where h has a larger batch (the residual add
// broadcasts it).
type BasicTransformerBlock struct {
	Prefix              string // weight prefix, e.g. "down_blocks.0.attentions.0.transformer_blocks.0"
	Norm1, Norm2, Norm3 *nn.LayerNorm
	Attn1, Attn2        *nn.Attention
	FF                  *nn.FeedForward
	Dim, CrossDim       int
	crossReleased       bool
	released            bool
}

// layerNormEps is BasicTransformerBlock's norm_eps default, which the
// UNet's Transformer2DModel never overrides.
const layerNormEps = 1e-5

// NewBasicTransformerBlock binds a block of width dim with the given heads
// (head dim = dim/heads) attending to a context of width crossDim.
func NewBasicTransformerBlock(s *nn.Scope, dim, heads, crossDim int) *BasicTransformerBlock {
	hd := dim / heads
	return &BasicTransformerBlock{
		Prefix:   scopePrefix(s),
		Norm1:    nn.NewLayerNorm(s, "norm1", dim, layerNormEps),
		Attn1:    nn.NewDiffusersAttention(s.Sub("attn1"), dim, dim, heads, hd, false),
		Norm2:    nn.NewLayerNorm(s, "norm2", dim, layerNormEps),
		Attn2:    nn.NewDiffusersAttention(s.Sub("attn2"), dim, crossDim, heads, hd, false),
		Norm3:    nn.NewLayerNorm(s, "norm3", dim, layerNormEps),
		FF:       nn.NewFeedForward(s.Sub("ff"), dim, 4*dim, nn.ActGEGLU),
		Dim:      dim,
		CrossDim: crossDim,
	}
}

// SelfKey and CrossKey are the hook keys of attn1 and attn2.
func (t *BasicTransformerBlock) SelfKey() string  { return t.Prefix + ".attn1" }
func (t *BasicTransformerBlock) CrossKey() string { return t.Prefix + ".attn2" }

// scopePrefix returns the key prefix a scope binds under ("" at the root).
func scopePrefix(s *nn.Scope) string {
	p := s.Path("x")
	return strings.TrimSuffix(p[:len(p)-1], ".")
}

// run is the state of one Model.Forward: the attention hook and the first
// error met inside it. A module that cannot compute (its weights were
// released, or it needs the text embeddings and has none) records the
// error and yields zeros, so the pass still frees everything it made and
// Forward returns the error.
type run struct {
	hook nn.AttentionHook
	err  error
}

func (r *run) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("unet: "+format, a...)
	}
}

// forward runs the block on tokens h [B, N, dim] with context ctx
// [B, M, crossDim] (nil is allowed when the hook never computes the
// cross-attention). h is not freed.
func (t *BasicTransformerBlock) forward(b backend.Backend, h, ctx backend.Tensor, r *run) backend.Tensor {
	a1, own1 := r.hook.Attention(t.SelfKey(), nn.SelfAttn, func() backend.Tensor {
		if t.released {
			r.fail("attention %s was released", t.SelfKey())
			return b.Affine(h, 0, 0)
		}
		n := t.Norm1.Forward(b, h)
		o := t.Attn1.Forward(b, n, nil, nil)
		b.Free(n)
		return o
	})
	h1 := b.Binary(backend.Add, h, a1)
	if own1 {
		b.Free(a1)
	}

	a2, own2 := r.hook.Attention(t.CrossKey(), nn.CrossAttn, func() backend.Tensor {
		if t.crossReleased {
			r.fail("cross-attention %s was released; its output must come from the hook's cache", t.CrossKey())
			return b.Affine(h1, 0, 0)
		}
		if ctx == nil {
			r.fail("cross-attention %s needs encoder hidden states but ctx is nil", t.CrossKey())
			return b.Affine(h1, 0, 0)
		}
		n := t.Norm2.Forward(b, h1)
		o := t.Attn2.Forward(b, n, ctx, nil)
		b.Free(n)
		return o
	})
	h2 := b.Binary(backend.Add, h1, a2)
	b.Free(h1)
	if own2 {
		b.Free(a2)
	}

	n3 := t.Norm3.Forward(b, h2)
	f := t.FF.Forward(b, n3)
	b.Free(n3)
	out := b.Binary(backend.Add, h2, f)
	nn.Free(b, h2, f)
	return out
}

// ReleaseCross frees norm2 and every projection of attn2: after T-GATE's
// gate step the cross-attention output comes from its cache.
func (t *BasicTransformerBlock) ReleaseCross(b backend.Backend) {
	releaseLN(b, t.Norm2)
	t.Attn2.Release(b)
	t.crossReleased = true
}

// Release frees all of the block's weights.
func (t *BasicTransformerBlock) Release(b backend.Backend) {
	t.ReleaseCross(b)
	releaseLN(b, t.Norm1)
	releaseLN(b, t.Norm3)
	t.Attn1.Release(b)
	t.FF.Proj.Release(b)
	t.FF.Out.Release(b)
	t.released = true
}
