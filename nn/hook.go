package nn

import "github.com/tgate-web/tgate/backend"

// AttnKind tells self-attention from cross-attention.
type AttnKind int

const (
	SelfAttn  AttnKind = iota // attn1 of a transformer block
	CrossAttn                 // attn2: attends to the text embeddings
)

func (k AttnKind) String() string {
	if k == CrossAttn {
		return "cross"
	}
	return "self"
}

// AttentionHook lets the denoising loop intercept every attention module of
// a denoiser. T-GATE (package gate) implements it to compute, cache or
// reuse each module's output according to its per-step plan.
//
// key identifies the module by its weight prefix (for example
// "down_blocks.0.attentions.1.transformer_blocks.0.attn2"). compute returns
// the module's output (after to_out, before the residual add) computed
// afresh; the hook may skip calling it. The returned tensor may have batch
// 1 where the block's batch is larger: the residual add broadcasts it. The
// caller frees the result after use only if owned is true.
type AttentionHook interface {
	Attention(key string, kind AttnKind, compute func() backend.Tensor) (out backend.Tensor, owned bool)
}

// ComputeAlways is the hook that always computes: no caching.
type ComputeAlways struct{}

// Attention calls compute.
func (ComputeAlways) Attention(_ string, _ AttnKind, compute func() backend.Tensor) (backend.Tensor, bool) {
	return compute(), true
}
