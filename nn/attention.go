package nn

import (
	"github.com/tgate-web/tgate/backend"
)

// Attention is multi-head attention with separate query, key, value and
// output projections (diffusers' Attention with AttnProcessor2_0,
// transformers' CLIPAttention and T5Attention share this shape).
type Attention struct {
	Q, K, V, Out *Linear
	Heads        int
	// Scale multiplies q·kᵀ; 0 means 1/√headDim.
	Scale float32
}

// NewDiffusersAttention binds a diffusers Attention module: to_q, to_k,
// to_v (bias only if qkvBias) and to_out.0 (with bias). queryDim is the
// input width, ctxDim the width of the context (equal to queryDim for
// self-attention), inner = heads·headDim.
func NewDiffusersAttention(s *Scope, queryDim, ctxDim, heads, headDim int, qkvBias bool) *Attention {
	inner := heads * headDim
	return &Attention{
		Q:     NewLinear(s, "to_q", queryDim, inner, qkvBias),
		K:     NewLinear(s, "to_k", ctxDim, inner, qkvBias),
		V:     NewLinear(s, "to_v", ctxDim, inner, qkvBias),
		Out:   NewLinear(s, "to_out.0", inner, queryDim, true),
		Heads: heads,
	}
}

// Forward computes to_out(softmax(q·kᵀ·scale + bias)·v) with q = to_q(x),
// k = to_k(ctx), v = to_v(ctx); ctx nil means self-attention. x is
// [B, N, queryDim], ctx [B, M, ctxDim]; bias is broadcast to [B, H, N, M]
// (nil for none).
func (a *Attention) Forward(b backend.Backend, x, ctx, bias backend.Tensor) backend.Tensor {
	if ctx == nil {
		ctx = x
	}
	q := a.Q.Forward(b, x)
	k := a.K.Forward(b, ctx)
	v := a.V.Forward(b, ctx)
	o := b.Attention(q, k, v, bias, backend.AttentionOpts{Heads: a.Heads, Scale: a.Scale})
	Free(b, q, k, v)
	out := a.Out.Forward(b, o)
	b.Free(o)
	return out
}

// ReleaseKV frees the key and value projections, which only
// cross-attention's context needs; T-GATE releases them after the gate.
func (a *Attention) ReleaseKV(b backend.Backend) {
	a.K.Release(b)
	a.V.Release(b)
}

// Release frees every projection.
func (a *Attention) Release(b backend.Backend) {
	a.Q.Release(b)
	a.ReleaseKV(b)
	a.Out.Release(b)
}

// Activation names a feed-forward activation (diffusers' activation_fn).
type Activation string

const (
	ActGEGLU    Activation = "geglu"            // proj → [a | gate], a·gelu(gate)
	ActGELU     Activation = "gelu"             // erf GELU
	ActGELUTanh Activation = "gelu-approximate" // tanh GELU
)

// FeedForward is diffusers' FeedForward: net.0 (the activation module,
// whose projection is net.0.proj) then net.2 (Linear inner→dim).
type FeedForward struct {
	Proj, Out *Linear
	Act       Activation
	Inner     int
}

// NewFeedForward binds ff.net.0.proj and ff.net.2 for the given activation;
// inner is the hidden width (4·dim in SD).
func NewFeedForward(s *Scope, dim, inner int, act Activation) *FeedForward {
	projOut := inner
	if act == ActGEGLU {
		projOut = 2 * inner
	}
	return &FeedForward{
		Proj:  NewLinear(s, "net.0.proj", dim, projOut, true),
		Out:   NewLinear(s, "net.2", inner, dim, true),
		Act:   act,
		Inner: inner,
	}
}

// Forward computes net.2(act(net.0.proj(x))). For GEGLU the projection is
// split along the last dimension into [a | gate] and the activation is
// a·GELU_erf(gate) (diffusers activations.py GEGLU).
func (f *FeedForward) Forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	h := f.Proj.Forward(b, x)
	var act backend.Tensor
	switch f.Act {
	case ActGEGLU:
		parts := backend.Chunk(b, h, -1, 2)
		g := b.Unary(backend.GELU, parts[1])
		act = b.Binary(backend.Mul, parts[0], g)
		Free(b, parts[0], parts[1], g)
	case ActGELUTanh:
		act = b.Unary(backend.GELUTanh, h)
	default:
		act = b.Unary(backend.GELU, h)
	}
	b.Free(h)
	out := f.Out.Forward(b, act)
	b.Free(act)
	return out
}
