package clip

import (
	"fmt"
	"math"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// activation maps config.json's hidden_act to a backend op (transformers
// activations.py ACT2FN).
func activation(name string) (backend.UnaryOp, error) {
	switch name {
	case "quick_gelu":
		return backend.QuickGELU, nil
	case "gelu":
		return backend.GELU, nil
	case "gelu_new", "gelu_pytorch_tanh":
		return backend.GELUTanh, nil
	}
	return 0, fmt.Errorf("clip config: hidden_act %q is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh)", name)
}

// embeddings is CLIPTextEmbeddings: token plus absolute position
// embeddings.
type embeddings struct {
	token, position *nn.Embedding
}

func newEmbeddings(s *nn.Scope, cfg *Config) *embeddings {
	return &embeddings{
		token:    nn.NewEmbedding(s, "token_embedding", cfg.VocabSize, cfg.HiddenSize),
		position: nn.NewEmbedding(s, "position_embedding", cfg.MaxPositionEmbeddings, cfg.HiddenSize),
	}
}

// forward computes token_embedding[ids] + position_embedding[0..L−1] for
// ids flattened from a [B, L] batch: [B, L, D]. Position ids are always
// arange(L); a checkpoint's position_ids buffer is ignored.
func (e *embeddings) forward(b backend.Backend, flat []int32, batch, seqLen int) backend.Tensor {
	tok := e.token.Forward(b, flat)
	pos := make([]int32, seqLen)
	for i := range pos {
		pos[i] = int32(i)
	}
	p := e.position.Forward(b, pos)
	tok3 := b.Reshape(tok, batch, seqLen, e.token.Dim)
	h := b.Binary(backend.Add, tok3, p)
	nn.Free(b, tok3, tok, p)
	return h
}

// mlp is CLIPMLP: fc2(act(fc1(x))).
type mlp struct {
	fc1, fc2 *nn.Linear
	act      backend.UnaryOp
}

func (m *mlp) forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	h := m.fc1.Forward(b, x)
	a := b.Unary(m.act, h)
	b.Free(h)
	out := m.fc2.Forward(b, a)
	b.Free(a)
	return out
}

// encoderLayer is CLIPEncoderLayer (pre-norm):
// x = x + out_proj(MHA(layer_norm1(x), causal)); x = x + mlp(layer_norm2(x)).
type encoderLayer struct {
	ln1, ln2 *nn.LayerNorm
	attn     *nn.Attention
	mlp      *mlp
}

func newEncoderLayer(s *nn.Scope, cfg *Config, act backend.UnaryOp) *encoderLayer {
	d, eps := cfg.HiddenSize, float32(cfg.LayerNormEps)
	sa := s.Sub("self_attn")
	return &encoderLayer{
		ln1: nn.NewLayerNorm(s, "layer_norm1", d, eps),
		ln2: nn.NewLayerNorm(s, "layer_norm2", d, eps),
		attn: &nn.Attention{
			Q:     nn.NewLinear(sa, "q_proj", d, d, true),
			K:     nn.NewLinear(sa, "k_proj", d, d, true),
			V:     nn.NewLinear(sa, "v_proj", d, d, true),
			Out:   nn.NewLinear(sa, "out_proj", d, d, true),
			Heads: cfg.NumAttentionHeads,
			// CLIPAttention multiplies q by head_dim^−0.5.
			Scale: float32(1 / math.Sqrt(float64(cfg.HeadDim()))),
		},
		mlp: &mlp{
			fc1: nn.NewLinear(s, "mlp.fc1", d, cfg.IntermediateSize, true),
			fc2: nn.NewLinear(s, "mlp.fc2", cfg.IntermediateSize, d, true),
			act: act,
		},
	}
}

// forward returns the layer's output; x is not freed.
func (l *encoderLayer) forward(b backend.Backend, x, mask backend.Tensor) backend.Tensor {
	h := l.ln1.Forward(b, x)
	a := l.attn.Forward(b, h, nil, mask)
	b.Free(h)
	x1 := b.Binary(backend.Add, x, a)
	b.Free(a)
	h = l.ln2.Forward(b, x1)
	m := l.mlp.forward(b, h)
	b.Free(h)
	out := b.Binary(backend.Add, x1, m)
	nn.Free(b, x1, m)
	return out
}

// TextModel is CLIPTextModel (CLIPTextTransformer under text_model.*),
// optionally with CLIPTextModelWithProjection's text_projection.
type TextModel struct {
	Config Config

	emb       *embeddings
	layers    []*encoderLayer
	finalNorm *nn.LayerNorm
	proj      *nn.Linear // nil unless Config.WithProjection

	weights []backend.Tensor
}

// New binds a text encoder's weights from s, the root of the component
// (keys text_model.* and, with projection, text_projection.weight). A
// missing tensor or one whose shape disagrees with cfg fails with an error
// naming it; the weights bound so far are then freed.
func New(s *nn.Scope, cfg *Config) (*TextModel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	act, _ := activation(cfg.HiddenAct)
	n0 := len(s.Params())
	tm := s.Sub("text_model")
	m := &TextModel{Config: *cfg, emb: newEmbeddings(tm.Sub("embeddings"), cfg)}
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		m.layers = append(m.layers, newEncoderLayer(tm.Sub("encoder.layers", i), cfg, act))
	}
	m.finalNorm = nn.NewLayerNorm(tm, "final_layer_norm", cfg.HiddenSize, float32(cfg.LayerNormEps))
	if cfg.WithProjection {
		m.proj = nn.NewLinear(s, "text_projection", cfg.HiddenSize, cfg.ProjectionDim, false)
	}
	for _, p := range s.Params()[n0:] {
		m.weights = append(m.weights, p.Tensor)
	}
	if err := s.Err(); err != nil {
		m.Release(s.Backend())
		return nil, fmt.Errorf("clip text encoder: %w", err)
	}
	return m, nil
}

// Load binds a text encoder from src onto b (New on a fresh root scope).
func Load(b backend.Backend, src nn.Source, cfg *Config) (*TextModel, error) {
	return New(nn.NewScope(b, src), cfg)
}

// Release frees every weight of the model. The model is unusable
// afterwards.
func (m *TextModel) Release(b backend.Backend) {
	for _, t := range m.weights {
		if t != nil {
			b.Free(t)
		}
	}
	m.weights = nil
}

// Options select the optional outputs of Forward.
type Options struct {
	// HiddenStates keeps every encoder hidden state: hidden_states[0] is
	// the embedding output and hidden_states[i] the output of layer i,
	// without final_layer_norm (SDXL uses hidden_states[−2]; clip_skip k
	// uses FinalNorm(hidden_states[−(k+1)])).
	HiddenStates bool
}

// Output is CLIPTextModel's output (and text_embeds for the projection
// model). Every tensor is owned by the caller; Release frees them.
type Output struct {
	LastHiddenState backend.Tensor   // [B, L, D], after final_layer_norm
	Pooled          backend.Tensor   // pooler_output [B, D]
	TextEmbeds      backend.Tensor   // [B, projection_dim]; nil without projection
	HiddenStates    []backend.Tensor // len num_hidden_layers+1 if requested
}

// Release frees every tensor of o.
func (o *Output) Release(b backend.Backend) {
	nn.Free(b, o.LastHiddenState, o.Pooled, o.TextEmbeds)
	nn.Free(b, o.HiddenStates...)
	*o = Output{}
}

// PooledIndex returns the position whose final hidden state is the pooled
// output for one row of ids (modeling_clip.py CLIPTextTransformer.forward):
// with the legacy eos_token_id 2 the first position of the largest id
// (torch.argmax), otherwise the first position holding eos_token_id, or 0
// if there is none.
func PooledIndex(ids []int32, eosTokenID int) int {
	best := 0
	if eosTokenID == 2 {
		for i, id := range ids {
			if id > ids[best] {
				best = i
			}
		}
		return best
	}
	for i, id := range ids {
		if int(id) == eosTokenID {
			return i
		}
	}
	return 0
}

// causalMask returns the additive causal bias [1, 1, L, L]: 0 where key
// j ≤ query i and float32's lowest value above the diagonal
// (_create_4d_causal_attention_mask with torch.finfo(float32).min).
func causalMask(b backend.Backend, l int) backend.Tensor {
	h := tensor.New(1, 1, l, l)
	for i := 0; i < l; i++ {
		for j := i + 1; j < l; j++ {
			h.Data[i*l+j] = -math.MaxFloat32
		}
	}
	return b.Upload(h)
}

// Forward encodes a batch of token id rows, all of one length L ≤
// max_position_embeddings, each id in [0, vocab_size). No padding mask is
// applied (SD pipelines pass none): pad tokens are ordinary tokens.
func (m *TextModel) Forward(b backend.Backend, ids [][]int32, opt Options) (*Output, error) {
	cfg := &m.Config
	if len(ids) == 0 {
		return nil, fmt.Errorf("clip: empty batch of token ids")
	}
	seqLen := len(ids[0])
	if seqLen == 0 || seqLen > cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("clip: sequence length %d; must be in [1, %d] (max_position_embeddings)", seqLen, cfg.MaxPositionEmbeddings)
	}
	flat := make([]int32, 0, len(ids)*seqLen)
	for r, row := range ids {
		if len(row) != seqLen {
			return nil, fmt.Errorf("clip: token row %d has length %d; row 0 has %d (rows must be padded to one length)", r, len(row), seqLen)
		}
		for i, id := range row {
			if id < 0 || int(id) >= cfg.VocabSize {
				return nil, fmt.Errorf("clip: token id %d at row %d position %d is outside the vocabulary [0, %d)", id, r, i, cfg.VocabSize)
			}
		}
		flat = append(flat, row...)
	}
	if m.weights == nil && len(m.layers) > 0 {
		return nil, fmt.Errorf("clip: the model's weights were released")
	}
	batch := len(ids)

	h := m.emb.forward(b, flat, batch, seqLen)
	mask := causalMask(b, seqLen)
	out := &Output{}
	if opt.HiddenStates {
		out.HiddenStates = append(out.HiddenStates, h)
	}
	for _, layer := range m.layers {
		next := layer.forward(b, h, mask)
		if opt.HiddenStates {
			out.HiddenStates = append(out.HiddenStates, next)
		} else {
			b.Free(h)
		}
		h = next
	}
	b.Free(mask)
	out.LastHiddenState = m.finalNorm.Forward(b, h)
	if !opt.HiddenStates {
		b.Free(h)
	}

	// pooler_output: rows of last_hidden_state viewed as [B·L, D].
	rows := make([]int32, batch)
	for r, row := range ids {
		rows[r] = int32(r*seqLen + PooledIndex(row, cfg.EOSTokenID))
	}
	flatLast := b.Reshape(out.LastHiddenState, batch*seqLen, cfg.HiddenSize)
	out.Pooled = b.Gather(flatLast, rows)
	b.Free(flatLast)
	if m.proj != nil {
		out.TextEmbeds = m.proj.Forward(b, out.Pooled)
	}
	if err := b.Err(); err != nil {
		out.Release(b)
		return nil, fmt.Errorf("clip: %w", err)
	}
	return out, nil
}

// FinalNorm applies final_layer_norm to a hidden state (clip_skip).
func (m *TextModel) FinalNorm(b backend.Backend, h backend.Tensor) backend.Tensor {
	return m.finalNorm.Forward(b, h)
}
