package pixart

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// Block is diffusers' BasicTransformerBlock (attention.py, v0.30.3) with
// norm_type "ada_norm_single", as PixArt uses it. With the block's
// modulation m = scale_shift_table + timestep.reshape(B, 6, D), split into
// shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp:
//
//	h = gate_msa · attn1(norm1(h)·(1 + scale_msa) + shift_msa) + h
//	h = attn2(h, caption, bias) + h                  (no norm before attn2)
//	h = gate_mlp · ff(norm2(h)·(1 + scale_mlp) + shift_mlp) + h
//
// norm1 and norm2 are LayerNorms over the width (affine only with
// norm_elementwise_affine), ff is FeedForward with GELU (tanh for
// "gelu-approximate") and inner width 4·D, and the cross-attention bias is
// (1 − mask)·−10000 over the caption tokens.
//
// Both attentions run through an nn.AttentionHook keyed by their weight
// prefix (T-GATE): the hook's value is the attention output after to_out,
// and the self-attention's is multiplied by the CURRENT step's gate_msa
// after the hook, so a replayed self-attention output is rescaled by the
// step's timestep modulation, exactly as T-GATE's processor, which
// replaces only Attention.forward, behaves inside this block.
type Block struct {
	Prefix       string // "transformer_blocks.3"
	Norm1, Norm2 *nn.LayerNorm
	Attn1, Attn2 *nn.Attention
	FF           *nn.FeedForward
	// ScaleShift is scale_shift_table [6, D] widened to F32 (the stored
	// tensor, in the checkpoint's dtype, is scaleShiftRaw).
	ScaleShift    backend.Tensor
	scaleShiftRaw backend.Tensor
	Dim           int

	crossReleased bool
	released      bool
}

// NewBlock binds transformer_blocks.i of width dim.
func NewBlock(s *nn.Scope, cfg *Config) *Block {
	dim, heads, hd := cfg.InnerDim(), cfg.NumAttentionHeads, cfg.AttentionHeadDim
	act := nn.ActGELUTanh
	if cfg.ActivationFn == "gelu" {
		act = nn.ActGELU
	}
	blk := &Block{
		Prefix: scopePrefix(s),
		Norm1:  newNorm(s, "norm1", dim, cfg),
		Attn1:  nn.NewDiffusersAttention(s.Sub("attn1"), dim, dim, heads, hd, cfg.AttentionBias),
		Norm2:  newNorm(s, "norm2", dim, cfg),
		Attn2:  nn.NewDiffusersAttention(s.Sub("attn2"), dim, cfg.CrossDim(), heads, hd, cfg.AttentionBias),
		FF:     nn.NewFeedForward(s.Sub("ff"), dim, 4*dim, act),
		Dim:    dim,
	}
	if blk.scaleShiftRaw = s.Tensor("scale_shift_table", 6, dim); blk.scaleShiftRaw != nil {
		blk.ScaleShift = widen(s.Backend(), blk.scaleShiftRaw)
	}
	return blk
}

// newNorm is a LayerNorm with weights only when norm_elementwise_affine.
func newNorm(s *nn.Scope, name string, dim int, cfg *Config) *nn.LayerNorm {
	if cfg.NormElementwiseAffine {
		return nn.NewLayerNorm(s, name, dim, float32(cfg.NormEps))
	}
	return &nn.LayerNorm{Eps: float32(cfg.NormEps)}
}

// SelfKey and CrossKey are the hook keys of attn1 and attn2.
func (t *Block) SelfKey() string  { return t.Prefix + ".attn1" }
func (t *Block) CrossKey() string { return t.Prefix + ".attn2" }

// run is the state of one Model.Forward: the attention hook, the
// cross-attention bias, and the first error met inside the pass. A module
// that cannot compute records the error and yields zeros, so the pass
// still frees what it made.
type run struct {
	hook nn.AttentionHook
	bias backend.Tensor // [B, 1, N, M] or nil
	err  error
}

func (r *run) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("pixart: "+format, a...)
	}
}

// modulate computes norm(x)·(1 + scale) + shift in diffusers' order.
func modulate(b backend.Backend, n *nn.LayerNorm, x, shift, scale backend.Tensor) backend.Tensor {
	h := n.Forward(b, x)
	s1 := b.Affine(scale, 1, 1)
	m := b.Binary(backend.Mul, h, s1)
	nn.Free(b, h, s1)
	out := b.Binary(backend.Add, m, shift)
	b.Free(m)
	return out
}

// forward runs the block on h [B, N, D] with the projected caption ctx
// [B, M, D] (nil when the hook supplies every cross-attention output) and
// the block modulation mod [B, 6, D] (before the scale_shift_table is
// added). h is not freed.
func (t *Block) forward(b backend.Backend, h, ctx, mod backend.Tensor, r *run) backend.Tensor {
	m := b.Binary(backend.Add, mod, t.ScaleShift)
	parts := backend.Split(b, m, 1, 1, 1, 1, 1, 1, 1)
	b.Free(m)
	shiftMSA, scaleMSA, gateMSA, shiftMLP, scaleMLP, gateMLP := parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]
	defer nn.Free(b, parts...)

	a1, own1 := r.hook.Attention(t.SelfKey(), nn.SelfAttn, func() backend.Tensor {
		if t.released {
			r.fail("attention %s was released", t.SelfKey())
			return b.Affine(h, 0, 0)
		}
		n := modulate(b, t.Norm1, h, shiftMSA, scaleMSA)
		o := t.Attn1.Forward(b, n, nil, nil)
		b.Free(n)
		return o
	})
	g1 := b.Binary(backend.Mul, gateMSA, a1)
	if own1 {
		b.Free(a1)
	}
	h1 := b.Binary(backend.Add, g1, h)
	b.Free(g1)

	a2, own2 := r.hook.Attention(t.CrossKey(), nn.CrossAttn, func() backend.Tensor {
		if t.crossReleased {
			r.fail("cross-attention %s was released; its output must come from the hook's cache", t.CrossKey())
			return b.Affine(h1, 0, 0)
		}
		if ctx == nil {
			r.fail("cross-attention %s needs encoder hidden states but they are nil", t.CrossKey())
			return b.Affine(h1, 0, 0)
		}
		return t.Attn2.Forward(b, h1, ctx, r.bias)
	})
	h2 := b.Binary(backend.Add, a2, h1)
	b.Free(h1)
	if own2 {
		b.Free(a2)
	}

	if t.released {
		r.fail("block %s was released", t.Prefix)
		return h2
	}
	n := modulate(b, t.Norm2, h2, shiftMLP, scaleMLP)
	f := t.FF.Forward(b, n)
	b.Free(n)
	g2 := b.Binary(backend.Mul, gateMLP, f)
	b.Free(f)
	out := b.Binary(backend.Add, g2, h2)
	nn.Free(b, g2, h2)
	return out
}

// ReleaseCross frees attn2's projections: after T-GATE's gate step the
// cross-attention output comes from the cache. (norm2 stays: PixArt
// applies it before the feed-forward.)
func (t *Block) ReleaseCross(b backend.Backend) {
	t.Attn2.Release(b)
	t.crossReleased = true
}

// Release frees all of the block's weights.
func (t *Block) Release(b backend.Backend) {
	t.ReleaseCross(b)
	t.Attn1.Release(b)
	t.FF.Proj.Release(b)
	t.FF.Out.Release(b)
	for _, n := range []*nn.LayerNorm{t.Norm1, t.Norm2} {
		nn.Free(b, n.Gamma, n.Beta)
		n.Gamma, n.Beta = nil, nil
	}
	nn.Free(b, t.ScaleShift, t.scaleShiftRaw)
	t.ScaleShift, t.scaleShiftRaw = nil, nil
	t.released = true
}
