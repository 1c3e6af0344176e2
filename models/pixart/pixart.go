// Package pixart is diffusers' PixArtTransformer2DModel
// (transformers/pixart_transformer_2d.py, v0.30.3), the DiT denoiser of
// PixArt-α and PixArt-Σ: patch embedding with a 2-D sin-cos positional
// embedding, AdaLayerNormSingle timestep (and size) conditioning, the
// caption projection of the T5 embeddings, BasicTransformerBlocks with
// ada_norm_single, and the modulated output layer with unpatchify. It is
// written against backend.Backend and binds weights by the checkpoint's
// key names; every attention module runs through an nn.AttentionHook
// (T-GATE).
package pixart

import (
	"fmt"
	"strings"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// normOutEps is norm_out's epsilon, hard-coded to 1e-6 in
// pixart_transformer_2d.py.
const normOutEps = 1e-6

// maskBias is the additive logit bias of a masked caption token:
// (1 − mask)·−10000.0 (pixart_transformer_2d.py forward).
const maskBias = -10000.0

// Model is a PixArtTransformer2DModel with its weights on a backend.
type Model struct {
	Config Config

	PosEmbed *PatchEmbed
	AdaLN    *AdaLayerNormSingle
	Caption  *TextProjection // nil without caption_channels
	Blocks   []*Block
	NormOut  *nn.LayerNorm
	// ScaleShift is the output layer's scale_shift_table [2, D], widened
	// to F32; scaleShiftRaw is the stored tensor.
	ScaleShift    backend.Tensor
	scaleShiftRaw backend.Tensor
	ProjOut       *nn.Linear

	params        []nn.Param
	crossReleased bool
	released      bool
}

// Component is a model folder: the weights and config.json (hub.Component
// implements it).
type Component interface {
	nn.Source
	ConfigJSON() []byte
}

// Load parses the component's config.json and binds its weights on b.
func Load(b backend.Backend, c Component) (*Model, error) {
	cfg, err := ParseConfig(c.ConfigJSON())
	if err != nil {
		return nil, err
	}
	return New(b, c, cfg)
}

// New validates cfg and binds every weight from src onto b, checking each
// stored shape against the shape the config implies.
func New(b backend.Backend, src nn.Source, cfg *Config) (*Model, error) {
	return build(nn.NewScope(b, src), cfg)
}

// NewDeclared builds the model from cfg alone, with weights of dtype dt
// declared on a backend implementing nn.Declarer (counting operations and
// memory).
func NewDeclared(b backend.Backend, cfg *Config, dt tensor.DType) (*Model, error) {
	return build(nn.NewDeclaredScope(b, dt), cfg)
}

// Bind builds the model under the scope s (fixtures declare parameters
// this way).
func Bind(s *nn.Scope, cfg *Config) (*Model, error) { return build(s, cfg) }

func build(s *nn.Scope, cfg *Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := s.Backend()
	dim := cfg.InnerDim()
	m := &Model{Config: *cfg}
	m.PosEmbed = NewPatchEmbed(s.Sub("pos_embed"), cfg.InChannels, dim, cfg.PatchSize, cfg.BaseSize(), cfg.Interpolation())
	for i := 0; i < cfg.NumLayers; i++ {
		m.Blocks = append(m.Blocks, NewBlock(s.Sub("transformer_blocks", i), cfg))
	}
	m.NormOut = &nn.LayerNorm{Eps: normOutEps}
	if m.scaleShiftRaw = s.Tensor("scale_shift_table", 2, dim); m.scaleShiftRaw != nil {
		m.ScaleShift = widen(b, m.scaleShiftRaw)
	}
	p := cfg.PatchSize
	m.ProjOut = nn.NewLinear(s, "proj_out", dim, p*p*cfg.Out(), true)
	m.AdaLN = NewAdaLayerNormSingle(s.Sub("adaln_single"), dim, cfg.AdditionalConditions())
	if cfg.CaptionChannels != nil {
		m.Caption = NewTextProjection(s.Sub("caption_projection"), *cfg.CaptionChannels, dim)
	}
	if err := s.Err(); err != nil {
		for _, prm := range s.Params() {
			if prm.Tensor != nil {
				b.Free(prm.Tensor)
			}
		}
		nn.Free(b, m.ScaleShift)
		for _, blk := range m.Blocks {
			nn.Free(b, blk.ScaleShift)
		}
		return nil, fmt.Errorf("pixart: %w", err)
	}
	m.params = s.Params()
	return m, nil
}

// ForwardOpts are the optional inputs of Forward.
type ForwardOpts struct {
	// EncoderMask is encoder_attention_mask [B, M]: 1 keeps a caption
	// token, 0 masks it (bias (1 − mask)·−10000 on the cross-attention
	// logits). nil attends to every token.
	EncoderMask *tensor.Host
	// Resolution (B pairs height, width) and AspectRatio (B values) are
	// added_cond_kwargs, required with use_additional_conditions and
	// ignored otherwise.
	Resolution  []float64
	AspectRatio []float64
	// Hook intercepts every attention module (T-GATE); nil computes all.
	Hook nn.AttentionHook
}

// Forward computes the model's output [B, out_channels, H, W] for sample
// [B, in_channels, H, W] (H and W multiples of patch_size) at timesteps
// (one value for the batch, or one per sample), conditioned on the text
// encoder's hidden states ctx [B, M, caption_channels]. ctx may be nil
// when opt.Hook supplies every cross-attention output. Inputs are not
// freed; the result belongs to the caller.
//
// The sequence is pixart_transformer_2d.py forward: pos_embed; adaln_single
// (timestep, size conditions); caption_projection; the blocks; then
// shift, scale = scale_shift_table + embedded_timestep, norm_out(h)·(1 +
// scale) + shift, proj_out, and unpatchify [B, h, w, p, p, C] →
// [B, C, h·p, w·p].
func (m *Model) Forward(b backend.Backend, sample backend.Tensor, timesteps []float64, ctx backend.Tensor, opt ForwardOpts) (backend.Tensor, error) {
	if err := m.checkInputs(sample, timesteps, ctx, opt); err != nil {
		return nil, err
	}
	sh := sample.Shape()
	bs, p := sh[0], m.Config.PatchSize
	gh, gw := sh[2]/p, sh[3]/p
	dim := m.Config.InnerDim()
	ts := timesteps
	if len(ts) == 1 && bs > 1 {
		ts = make([]float64, bs)
		for i := range ts {
			ts[i] = timesteps[0]
		}
	}
	r := &run{hook: opt.Hook}
	if r.hook == nil {
		r.hook = nn.ComputeAlways{}
	}

	h := m.PosEmbed.Forward(b, sample)
	mod, embedded := m.AdaLN.Forward(b, ts, opt.Resolution, opt.AspectRatio)
	mod3 := b.Reshape(mod, bs, 6, dim)
	b.Free(mod)

	var text backend.Tensor
	if ctx != nil {
		if m.Caption != nil {
			text = m.Caption.Forward(b, ctx)
		} else {
			text = b.Reshape(ctx, ctx.Shape()...)
		}
		if opt.EncoderMask != nil {
			r.bias = b.Upload(maskToBias(opt.EncoderMask, gh*gw))
		}
	}

	for _, blk := range m.Blocks {
		h2 := blk.forward(b, h, text, mod3, r)
		b.Free(h)
		h = h2
	}
	nn.Free(b, mod3, text, r.bias)

	// Output: shift, scale = (table[None] + embedded[:, None]).chunk(2, 1).
	e3 := b.Reshape(embedded, bs, 1, dim)
	b.Free(embedded)
	ss := b.Binary(backend.Add, m.ScaleShift, e3)
	b.Free(e3)
	parts := backend.Split(b, ss, 1, 1, 1)
	b.Free(ss)
	n := modulate(b, m.NormOut, h, parts[0], parts[1])
	nn.Free(b, h, parts[0], parts[1])
	o := m.ProjOut.Forward(b, n) // [B, N, p·p·C]
	b.Free(n)

	c := m.Config.Out()
	o6 := b.Reshape(o, bs, gh, gw, p, p, c)
	b.Free(o)
	perm := b.Permute(o6, 0, 5, 1, 3, 2, 4) // nhwpqc → nchpwq
	b.Free(o6)
	out := b.Reshape(perm, bs, c, gh*p, gw*p)
	b.Free(perm)
	if r.err != nil {
		b.Free(out)
		return nil, r.err
	}
	return out, nil
}

// maskToBias expands mask [B, M] to the cross-attention bias [B, 1, N, M]
// with (1 − mask)·−10000 in float32, the same for each of the N queries.
func maskToBias(mask *tensor.Host, n int) *tensor.Host {
	bs, mk := mask.Shape[0], mask.Shape[1]
	out := tensor.New(bs, 1, n, mk)
	for i := 0; i < bs; i++ {
		row := make([]float32, mk)
		for j := range row {
			row[j] = (1 - mask.Data[i*mk+j]) * maskBias
		}
		for q := 0; q < n; q++ {
			copy(out.Data[(i*n+q)*mk:], row)
		}
	}
	return out
}

func (m *Model) checkInputs(sample backend.Tensor, timesteps []float64, ctx backend.Tensor, opt ForwardOpts) error {
	cfg := &m.Config
	if m.released {
		return fmt.Errorf("pixart: the model's weights were released")
	}
	if sample == nil {
		return fmt.Errorf("pixart: sample is nil")
	}
	sh := sample.Shape()
	p := cfg.PatchSize
	if len(sh) != 4 || sh[0] < 1 || sh[1] != cfg.InChannels || sh[2] < p || sh[3] < p || sh[2]%p != 0 || sh[3]%p != 0 {
		return fmt.Errorf("pixart: sample has shape %v; want [B, %d, H, W] with H and W multiples of patch_size %d", sh, cfg.InChannels, p)
	}
	bs := sh[0]
	if len(timesteps) != 1 && len(timesteps) != bs {
		return fmt.Errorf("pixart: %d timesteps for a batch of %d; want 1 or %d", len(timesteps), bs, bs)
	}
	if ctx != nil {
		cs := ctx.Shape()
		want := cfg.CrossDim()
		if cfg.CaptionChannels != nil {
			want = *cfg.CaptionChannels
		}
		if len(cs) != 3 || cs[0] != bs || cs[2] != want {
			return fmt.Errorf("pixart: encoder hidden states have shape %v; want [%d, M, %d] (caption_channels)", cs, bs, want)
		}
		if mk := opt.EncoderMask; mk != nil && (mk.Shape.Rank() != 2 || mk.Shape[0] != bs || mk.Shape[1] != cs[1]) {
			return fmt.Errorf("pixart: encoder attention mask has shape %v; want [%d, %d]", mk.Shape, bs, cs[1])
		}
	}
	if cfg.AdditionalConditions() {
		if len(opt.Resolution) != 2*bs || len(opt.AspectRatio) != bs {
			return fmt.Errorf("pixart: use_additional_conditions needs %d resolution values (height, width per sample) and %d aspect ratios; got %d and %d",
				2*bs, bs, len(opt.Resolution), len(opt.AspectRatio))
		}
	}
	return nil
}

// AttentionModule names one attention module as the hook sees it.
type AttentionModule struct {
	Key  string // "transformer_blocks.0.attn1"
	Kind nn.AttnKind
}

// AttentionModules lists every attention module in forward order.
func (m *Model) AttentionModules() []AttentionModule {
	var out []AttentionModule
	for _, blk := range m.Blocks {
		out = append(out, AttentionModule{Key: blk.SelfKey(), Kind: nn.SelfAttn},
			AttentionModule{Key: blk.CrossKey(), Kind: nn.CrossAttn})
	}
	return out
}

// ReleaseCrossAttention frees every block's attn2 projections: after
// T-GATE's gate step each cross-attention output comes from the hook's
// cache. A later Forward whose hook asks to compute a cross-attention
// returns an error. The caption projection is kept (it is small).
func (m *Model) ReleaseCrossAttention(b backend.Backend) {
	for _, blk := range m.Blocks {
		blk.ReleaseCross(b)
	}
	m.crossReleased = true
}

// Release frees every weight; the model cannot run afterwards.
func (m *Model) Release(b backend.Backend) {
	if m.released {
		return
	}
	m.PosEmbed.Release(b)
	m.AdaLN.Release(b)
	if m.Caption != nil {
		m.Caption.Release(b)
	}
	for _, blk := range m.Blocks {
		blk.Release(b)
	}
	nn.Free(b, m.ScaleShift, m.scaleShiftRaw)
	m.ScaleShift, m.scaleShiftRaw = nil, nil
	m.ProjOut.Release(b)
	m.released = true
	m.crossReleased = true
}

// Params lists the weights the model holds, in binding order, less those
// ReleaseCrossAttention or Release freed.
func (m *Model) Params() []nn.Param {
	if m.released {
		return nil
	}
	var out []nn.Param
	for _, p := range m.params {
		if m.crossReleased && strings.Contains(p.Name, ".attn2.") {
			continue
		}
		out = append(out, p)
	}
	return out
}

// scopePrefix returns the key prefix a scope binds under ("" at the root).
func scopePrefix(s *nn.Scope) string {
	p := s.Path("x")
	return strings.TrimSuffix(p[:len(p)-1], ".")
}
