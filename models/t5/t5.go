package t5

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// Weight keys of T5EncoderModel.
const (
	sharedKey         = "shared.weight"
	embedTokensKey    = "encoder.embed_tokens.weight" // tied to shared.weight; present in some saves
	relativeBiasKey   = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
	finalLayerNormKey = "encoder.final_layer_norm.weight"
)

// rmsNorm is T5LayerNorm: weight · x / √(mean(x²) + eps), no mean
// subtraction and no bias.
type rmsNorm struct {
	weight backend.Tensor
	eps    float32
}

func (n *rmsNorm) forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	return b.RMSNorm(x, n.weight, n.eps)
}

// block is T5Block of the encoder: T5LayerSelfAttention (layer.0) then
// T5LayerFF (layer.1), each pre-norm with a residual add.
type block struct {
	attnNorm, ffNorm *rmsNorm
	attn             *nn.Attention
	wi0, wi1, wi, wo *nn.Linear // wi0/wi1 when gated, wi otherwise
	act              backend.UnaryOp
	params           []backend.Tensor
}

// bindBlock binds encoder.block.{i} from s (the model's root scope).
func bindBlock(s *nn.Scope, cfg *Config, i int) *block {
	act, _ := cfg.Activation()
	eps := float32(cfg.LayerNormEpsilon)
	n0 := len(s.Params())
	bs := s.Sub("encoder.block", i)
	sa := bs.Sub("layer.0.SelfAttention")
	ff := bs.Sub("layer.1.DenseReluDense")
	d, inner := cfg.DModel, cfg.Inner()
	bl := &block{
		attnNorm: &rmsNorm{weight: bs.Tensor("layer.0.layer_norm.weight", d), eps: eps},
		attn: &nn.Attention{
			Q:     nn.NewLinear(sa, "q", d, inner, false),
			K:     nn.NewLinear(sa, "k", d, inner, false),
			V:     nn.NewLinear(sa, "v", d, inner, false),
			Out:   nn.NewLinear(sa, "o", inner, d, false),
			Heads: cfg.NumHeads,
			Scale: 1, // T5 folds the 1/√d_kv scaling into its initialisation
		},
		ffNorm: &rmsNorm{weight: bs.Tensor("layer.1.layer_norm.weight", d), eps: eps},
		act:    act,
	}
	if cfg.Gated() {
		bl.wi0 = nn.NewLinear(ff, "wi_0", d, cfg.DFF, false)
		bl.wi1 = nn.NewLinear(ff, "wi_1", d, cfg.DFF, false)
	} else {
		bl.wi = nn.NewLinear(ff, "wi", d, cfg.DFF, false)
	}
	bl.wo = nn.NewLinear(ff, "wo", cfg.DFF, d, false)
	for _, p := range s.Params()[n0:] {
		bl.params = append(bl.params, p.Tensor)
	}
	return bl
}

func (bl *block) release(b backend.Backend) {
	nn.Free(b, bl.params...)
	bl.params = nil
}

// forward returns the block's output for x [B, L, D] with the combined
// position and padding bias [B, H, L, L]; x is not freed.
func (bl *block) forward(b backend.Backend, x, bias backend.Tensor) backend.Tensor {
	h := bl.attnNorm.forward(b, x)
	a := bl.attn.Forward(b, h, nil, bias)
	b.Free(h)
	x1 := b.Binary(backend.Add, x, a)
	b.Free(a)

	h = bl.ffNorm.forward(b, x1)
	var hidden backend.Tensor
	if bl.wi0 != nil {
		// T5DenseGatedActDense: wo(act(wi_0(h)) · wi_1(h)).
		g := bl.wi0.Forward(b, h)
		ga := b.Unary(bl.act, g)
		lin := bl.wi1.Forward(b, h)
		hidden = b.Binary(backend.Mul, ga, lin)
		nn.Free(b, g, ga, lin)
	} else {
		// T5DenseActDense: wo(act(wi(h))).
		g := bl.wi.Forward(b, h)
		hidden = b.Unary(bl.act, g)
		b.Free(g)
	}
	b.Free(h)
	f := bl.wo.Forward(b, hidden)
	b.Free(hidden)
	out := b.Binary(backend.Add, x1, f)
	nn.Free(b, x1, f)
	return out
}

// Encoder is T5EncoderModel. Built by New, it holds every weight; built by
// NewStreaming, it holds only the embedding, the relative attention bias
// and the final norm, and ForwardStreaming binds each block from a source
// while it runs.
type Encoder struct {
	Config Config

	embed     *nn.Embedding
	relBias   backend.Tensor // [num_buckets, num_heads]
	finalNorm *rmsNorm
	blocks    []*block // nil for a streaming encoder

	weights  []backend.Tensor
	released bool
}

// embedKey picks the token embedding's key: shared.weight, or
// encoder.embed_tokens.weight when only that one is stored.
func embedKey(s *nn.Scope) string {
	if !s.Has(sharedKey) && s.Has(embedTokensKey) {
		return embedTokensKey
	}
	return sharedKey
}

// bindCommon binds the weights every forward needs besides the blocks.
func bindCommon(s *nn.Scope, cfg *Config) *Encoder {
	e := &Encoder{Config: *cfg}
	e.embed = &nn.Embedding{Num: cfg.VocabSize, Dim: cfg.DModel, Table: s.Tensor(embedKey(s), cfg.VocabSize, cfg.DModel)}
	e.relBias = s.Tensor(relativeBiasKey, cfg.RelativeAttentionNumBuckets, cfg.NumHeads)
	e.finalNorm = &rmsNorm{weight: s.Tensor(finalLayerNormKey, cfg.DModel), eps: float32(cfg.LayerNormEpsilon)}
	return e
}

// New binds a T5 encoder's weights from s, the root of the component. A
// missing tensor or one whose shape disagrees with cfg fails with an error
// naming it; the weights bound so far are then freed.
func New(s *nn.Scope, cfg *Config) (*Encoder, error) {
	return build(s, cfg, true)
}

// NewStreaming binds only the token embedding, the relative attention
// bias table and the final norm; the blocks are bound one at a time by
// ForwardStreaming.
func NewStreaming(s *nn.Scope, cfg *Config) (*Encoder, error) {
	return build(s, cfg, false)
}

func build(s *nn.Scope, cfg *Config, withBlocks bool) (*Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	n0 := len(s.Params())
	e := bindCommon(s, cfg)
	if withBlocks {
		for i := 0; i < cfg.NumLayers; i++ {
			e.blocks = append(e.blocks, bindBlock(s, cfg, i))
		}
	}
	for _, p := range s.Params()[n0:] {
		e.weights = append(e.weights, p.Tensor)
	}
	if err := s.Err(); err != nil {
		e.Release(s.Backend())
		return nil, fmt.Errorf("t5 encoder: %w", err)
	}
	return e, nil
}

// Load binds a whole encoder from src onto b (New on a fresh root scope).
func Load(b backend.Backend, src nn.Source, cfg *Config) (*Encoder, error) {
	return New(nn.NewScope(b, src), cfg)
}

// LoadStreaming binds a streaming encoder from src onto b.
func LoadStreaming(b backend.Backend, src nn.Source, cfg *Config) (*Encoder, error) {
	return NewStreaming(nn.NewScope(b, src), cfg)
}

// Streaming reports whether the encoder binds its blocks per forward.
func (e *Encoder) Streaming() bool { return e.blocks == nil && e.Config.NumLayers > 0 }

// Release frees every weight the encoder holds. It is unusable afterwards.
func (e *Encoder) Release(b backend.Backend) {
	nn.Free(b, e.weights...)
	e.weights, e.blocks, e.released = nil, nil, true
}

// Options select the optional outputs of a forward pass and report its
// progress.
type Options struct {
	// HiddenStates keeps transformers' hidden_states: the embedding
	// output, the output of every block but the last, and the final
	// output after final_layer_norm (num_layers+1 tensors).
	HiddenStates bool
	// Progress, if set, is called after each block with the number of
	// blocks done and the total.
	Progress func(done, total int)
}

// Output is T5EncoderModel's output. Every tensor is owned by the caller;
// Release frees them.
type Output struct {
	LastHiddenState backend.Tensor   // [B, L, d_model], after final_layer_norm
	HiddenStates    []backend.Tensor // if requested; the last is LastHiddenState's values (a separate tensor)
}

// Release frees every tensor of o.
func (o *Output) Release(b backend.Backend) {
	nn.Free(b, o.LastHiddenState)
	nn.Free(b, o.HiddenStates...)
	*o = Output{}
}
