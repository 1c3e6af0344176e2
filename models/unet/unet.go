// Package unet is diffusers' UNet2DConditionModel (unet_2d_condition.py)
// for Stable Diffusion 1.x, 2.x, LCM-distilled UNets, block-removed
// variants without a mid block, and SDXL's text_time conditioning,
// written against backend.Backend and bound by the checkpoint's key names
// (spec §3).
package unet

import (
	"fmt"
	"strings"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// Model is a UNet2DConditionModel with its weights on a backend.
type Model struct {
	Config Config
	plan   *plan

	ConvIn        *nn.Conv2d
	TimeEmbedding *TimestepEmbedding
	AddEmbedding  *TimestepEmbedding // SDXL text_time; nil otherwise
	Down          []*DownBlock
	Mid           *MidBlock // nil when mid_block_type is null
	Up            []*UpBlock
	NormOut       *nn.GroupNorm
	ConvOut       *nn.Conv2d

	params        []nn.Param
	crossReleased bool
	released      bool
}

// Component is a model folder: the weights and config.json (hub.Component
// implements it).
type Component interface {
	nn.Source
	DecodeConfig(v any) error
}

// Load decodes the component's config.json and binds its weights on b.
func Load(b backend.Backend, c Component) (*Model, error) {
	var cfg Config
	if err := c.DecodeConfig(&cfg); err != nil {
		return nil, fmt.Errorf("unet config: %w", err)
	}
	return New(b, c, &cfg)
}

// New validates cfg and binds every weight from src onto b, checking each
// stored shape against the shape the config implies.
func New(b backend.Backend, src nn.Source, cfg *Config) (*Model, error) {
	return build(nn.NewScope(b, src), cfg)
}

// NewDeclared builds the model from cfg alone, with weights of dtype dt
// declared on a backend implementing nn.Declarer (shape-only work such as
// counting operations and memory).
func NewDeclared(b backend.Backend, cfg *Config, dt tensor.DType) (*Model, error) {
	return build(nn.NewDeclaredScope(b, dt), cfg)
}

// NewDeclaredFunc is NewDeclared with each weight's dtype given by dtOf
// (see nn.NewDeclaredScopeFunc).
func NewDeclaredFunc(b backend.Backend, cfg *Config, dtOf func(name string, shape tensor.Shape) tensor.DType) (*Model, error) {
	return build(nn.NewDeclaredScopeFunc(b, dtOf), cfg)
}

func build(s *nn.Scope, cfg *Config) (*Model, error) {
	p, err := cfg.plan()
	if err != nil {
		return nil, err
	}
	m := &Model{Config: *cfg, plan: p}
	g, eps := p.Groups, p.Eps
	c0 := cfg.BlockOutChans[0]

	m.ConvIn = nn.NewConv2d(s, "conv_in", cfg.InChannels, c0, cfg.ConvInKernel, 1, (cfg.ConvInKernel-1)/2, true)
	m.TimeEmbedding = NewTimestepEmbedding(s.Sub("time_embedding"), p.TimeInDim, p.TimeEmbedDim, p.CondProjDim)
	if p.AddInDim > 0 {
		m.AddEmbedding = NewTimestepEmbedding(s.Sub("add_embedding"), p.AddInDim, p.TimeEmbedDim, 0)
	}
	for i, bp := range p.Down {
		m.Down = append(m.Down, newDownBlock(s.Sub("down_blocks", i), bp, p.TimeEmbedDim, g, eps))
	}
	if p.Mid != nil {
		m.Mid = newMidBlock(s.Sub("mid_block"), *p.Mid, p.TimeEmbedDim, g, eps, float32(cfg.MidBlockScaleFactor))
	}
	for i, bp := range p.Up {
		m.Up = append(m.Up, newUpBlock(s.Sub("up_blocks", i), bp, p.TimeEmbedDim, g, eps))
	}
	m.NormOut = nn.NewGroupNorm(s, "conv_norm_out", g, c0, eps)
	m.ConvOut = nn.NewConv2d(s, "conv_out", c0, cfg.OutChannels, cfg.ConvOutKernel, 1, (cfg.ConvOutKernel-1)/2, true)

	if err := s.Err(); err != nil {
		// Free what was bound before the error.
		for _, prm := range s.Params() {
			if prm.Tensor != nil {
				s.Backend().Free(prm.Tensor)
			}
		}
		return nil, fmt.Errorf("unet: %w", err)
	}
	m.params = s.Params()
	return m, nil
}

// ForwardOpts are the optional inputs of Forward.
type ForwardOpts struct {
	// TimestepCond is timestep_cond [B or 1, time_cond_proj_dim] for
	// UNets with time_embedding.cond_proj (LCM: GuidanceScaleEmbedding).
	// Without it cond_proj is skipped, as in diffusers.
	TimestepCond backend.Tensor
	// TextEmbeds [Bt, D] and TimeIDs (Bt rows of n values, row-major, or
	// one row shared by every text embedding) are SDXL's added_cond_kwargs,
	// required when addition_embed_type is text_time.
	TextEmbeds backend.Tensor
	TimeIDs    []float64
	// Hook intercepts every attention module (T-GATE); nil computes all.
	Hook nn.AttentionHook
	// DeepCache, when set, runs this evaluation as a DeepCache refresh
	// (whole UNet, feature stored) or partial step (shallow branch on the
	// stored feature), as its Refresh field says.
	DeepCache *DeepCache
}

// Forward computes the UNet's output [B, out_channels, H, W] for sample
// [B, in_channels, H, W] at timesteps (one value broadcast to the batch,
// or one per sample; fractional values are allowed), conditioned on the
// encoder hidden states ctx [B, M, cross_attention_dim]. ctx may be nil
// when opt.Hook supplies every cross-attention output. Inputs are not
// freed; the result belongs to the caller. Every intermediate is freed as
// soon as it is used (a skip when it is popped), also when a module that
// the hook asks to compute cannot be (ctx nil, or weights released): the
// pass then finishes with zeros in its place and Forward returns the
// error.
//
// The sequence is unet_2d_condition.py forward: time embedding; conv_in;
// down blocks pushing skips; mid block; up blocks popping skips (with the
// resize rule when H or W is not a multiple of 2^NumUpsamplers: every
// upsampler resizes to the next skip's size); conv_norm_out, SiLU,
// conv_out.
func (m *Model) Forward(b backend.Backend, sample backend.Tensor, timesteps []float64, ctx backend.Tensor, opt ForwardOpts) (backend.Tensor, error) {
	if err := m.checkInputs(sample, timesteps, ctx, opt); err != nil {
		return nil, err
	}
	rs := &run{hook: opt.Hook}
	if rs.hook == nil {
		rs.hook = nn.ComputeAlways{}
	}
	if opt.DeepCache != nil {
		return m.forwardDeepCache(b, sample, timesteps, ctx, opt, rs)
	}
	sh := sample.Shape()
	bs, hgt, wid := sh[0], sh[2], sh[3]

	tembAct, h := m.stem(b, sample, bs, timesteps, opt)

	// Down path: the skip stack starts with conv_in's output.
	skips := []backend.Tensor{h}
	for _, d := range m.Down {
		outs := d.forward(b, h, tembAct, ctx, rs)
		skips = append(skips, outs...)
		h = outs[len(outs)-1]
	}

	owned := false // h is still on the skip stack
	if m.Mid != nil {
		h = m.Mid.forward(b, h, tembAct, ctx, rs)
		owned = true
	}

	factor := 1 << m.NumUpsamplers()
	resize := hgt%factor != 0 || wid%factor != 0
	for _, u := range m.Up {
		n := len(u.Resnets)
		pop := make([]backend.Tensor, n)
		for j := range pop {
			pop[j] = skips[len(skips)-1-j]
		}
		skips = skips[:len(skips)-n]
		upH, upW := 0, 0
		if u.Upsample != nil {
			cur := h.Shape()
			upH, upW = 2*cur[2], 2*cur[3]
			if resize {
				next := skips[len(skips)-1].Shape()
				upH, upW = next[2], next[3]
			}
		}
		h = u.forward(b, h, owned, pop, tembAct, ctx, rs, upH, upW)
		owned = true
	}
	b.Free(tembAct)

	n := m.NormOut.Forward(b, h, true)
	b.Free(h)
	out := m.ConvOut.Forward(b, n)
	b.Free(n)
	if rs.err != nil {
		b.Free(out)
		return nil, rs.err
	}
	return out, nil
}

// stem is what every evaluation computes first: the activated time
// embedding for a batch of bs and conv_in's output (after
// center_input_sample when the config asks for it).
func (m *Model) stem(b backend.Backend, sample backend.Tensor, bs int, timesteps []float64, opt ForwardOpts) (tembAct, h backend.Tensor) {
	tembAct = m.timeEmbedding(b, bs, timesteps, opt)
	x := sample
	if m.Config.CenterInputSample {
		x = b.Affine(sample, 2, -1)
	}
	h = m.ConvIn.Forward(b, x)
	if x != sample {
		b.Free(x)
	}
	return tembAct, h
}

// timeEmbedding returns SiLU(emb) for the resnets: emb =
// time_embedding(sinusoid(t), timestep_cond) (+ add_embedding for SDXL).
// Its batch is 1 when every conditioning input has batch 1 (the resnets
// broadcast it), else bs.
func (m *Model) timeEmbedding(b backend.Backend, bs int, timesteps []float64, opt ForwardOpts) backend.Tensor {
	rows := 1
	if len(timesteps) > 1 || (opt.TimestepCond != nil && opt.TimestepCond.Shape()[0] > 1) ||
		(opt.TextEmbeds != nil && opt.TextEmbeds.Shape()[0] > 1) {
		rows = bs
	}
	ts := timesteps
	if len(ts) != rows {
		ts = make([]float64, rows)
		for i := range ts {
			ts[i] = timesteps[0]
		}
	}
	sinT := b.Upload(TimestepSinusoid(ts, m.plan.TimeInDim, m.Config.FlipSinToCos, m.Config.FreqShift))
	emb := m.TimeEmbedding.Forward(b, sinT, opt.TimestepCond)
	b.Free(sinT)

	if m.AddEmbedding != nil {
		aug := m.addEmbedding(b, opt)
		e2 := b.Binary(backend.Add, emb, aug)
		nn.Free(b, emb, aug)
		emb = e2
	}
	act := b.Unary(backend.SiLU, emb)
	b.Free(emb)
	return act
}

// addEmbedding is SDXL's get_aug_embed for text_time:
// add_embedding(concat(text_embeds, add_time_proj(time_ids) as [Bt, n·d])).
func (m *Model) addEmbedding(b backend.Backend, opt ForwardOpts) backend.Tensor {
	bt := opt.TextEmbeds.Shape()[0]
	ids := opt.TimeIDs
	per := m.timeIDsPerRow(opt)
	if len(ids) == per && bt > 1 {
		// One row shared by every text embedding.
		rep := make([]float64, 0, bt*per)
		for i := 0; i < bt; i++ {
			rep = append(rep, ids...)
		}
		ids = rep
	}
	d := m.plan.AddTimeDim
	proj := TimestepSinusoid(ids, d, m.Config.FlipSinToCos, m.Config.FreqShift) // [bt·per, d]
	proj.Shape = tensor.Shape{bt, per * d}
	pt := b.Upload(proj)
	in := b.Concat(-1, opt.TextEmbeds, pt)
	b.Free(pt)
	aug := m.AddEmbedding.Forward(b, in, nil)
	b.Free(in)
	return aug
}

// timeIDsPerRow is how many time ids each text embedding row needs.
func (m *Model) timeIDsPerRow(opt ForwardOpts) int {
	textDim := opt.TextEmbeds.Shape()[1]
	return (m.plan.AddInDim - textDim) / m.plan.AddTimeDim
}

func (m *Model) checkInputs(sample backend.Tensor, timesteps []float64, ctx backend.Tensor, opt ForwardOpts) error {
	if m.released {
		return fmt.Errorf("unet: the model's weights were released")
	}
	if sample == nil {
		return fmt.Errorf("unet: sample is nil")
	}
	sh := sample.Shape()
	if len(sh) != 4 || sh[1] != m.Config.InChannels || sh[0] < 1 || sh[2] < 1 || sh[3] < 1 {
		return fmt.Errorf("unet: sample has shape %v; want [B, %d, H, W]", sh, m.Config.InChannels)
	}
	bs := sh[0]
	if len(timesteps) != 1 && len(timesteps) != bs {
		return fmt.Errorf("unet: %d timesteps for a batch of %d; want 1 or %d", len(timesteps), bs, bs)
	}
	if ctx != nil {
		cs := ctx.Shape()
		if len(cs) != 3 || cs[0] != bs {
			return fmt.Errorf("unet: encoder hidden states have shape %v; want [%d, M, D]", cs, bs)
		}
		for _, w := range m.crossDims() {
			if cs[2] != w {
				return fmt.Errorf("unet: encoder hidden states have width %d but the config's cross_attention_dim is %d", cs[2], w)
			}
		}
	}
	if tc := opt.TimestepCond; tc != nil {
		if m.TimeEmbedding.CondProj == nil {
			return fmt.Errorf("unet: timestep_cond given but the UNet has no time_cond_proj_dim")
		}
		ts := tc.Shape()
		if len(ts) != 2 || (ts[0] != 1 && ts[0] != bs) || ts[1] != m.plan.CondProjDim {
			return fmt.Errorf("unet: timestep_cond has shape %v; want [1 or %d, %d]", ts, bs, m.plan.CondProjDim)
		}
	}
	if m.AddEmbedding != nil {
		te := opt.TextEmbeds
		if te == nil || len(opt.TimeIDs) == 0 {
			return fmt.Errorf("unet: addition_embed_type text_time needs TextEmbeds and TimeIDs")
		}
		ts := te.Shape()
		if len(ts) != 2 || (ts[0] != 1 && ts[0] != bs) {
			return fmt.Errorf("unet: text_embeds have shape %v; want [1 or %d, D]", ts, bs)
		}
		rest := m.plan.AddInDim - ts[1]
		if rest <= 0 || rest%m.plan.AddTimeDim != 0 {
			return fmt.Errorf("unet: text_embeds width %d does not fit projection_class_embeddings_input_dim %d with addition_time_embed_dim %d",
				ts[1], m.plan.AddInDim, m.plan.AddTimeDim)
		}
		per := rest / m.plan.AddTimeDim
		if len(opt.TimeIDs) != per && len(opt.TimeIDs) != per*ts[0] {
			return fmt.Errorf("unet: %d time ids; want %d per text embedding row (%d rows)", len(opt.TimeIDs), per, ts[0])
		}
	} else if opt.TextEmbeds != nil || opt.TimeIDs != nil {
		return fmt.Errorf("unet: text_embeds/time_ids given but addition_embed_type is not text_time")
	}
	return nil
}

// crossDims lists the cross_attention_dim of every block with attention.
func (m *Model) crossDims() []int {
	var ds []int
	for _, bp := range m.plan.Down {
		if bp.HasAttn {
			ds = append(ds, bp.CrossDim)
		}
	}
	if m.plan.Mid != nil {
		ds = append(ds, m.plan.Mid.CrossDim)
	}
	for _, bp := range m.plan.Up {
		if bp.HasAttn {
			ds = append(ds, bp.CrossDim)
		}
	}
	return ds
}

// NumUpsamplers returns the number of up blocks that upsample.
func (m *Model) NumUpsamplers() int { return len(m.Up) - 1 }

// AttentionModule names one attention module as the hook sees it.
type AttentionModule struct {
	Key  string // weight prefix, e.g. "up_blocks.1.attentions.2.transformer_blocks.0.attn2"
	Kind nn.AttnKind
	// Tokens per image at latent size H×W is (H/Stride)·(W/Stride)
	// (rounded up at each downsampling).
	Stride int
	Dim    int // query width
	Heads  int
}

// AttentionModules lists every attention module in forward order.
func (m *Model) AttentionModules() []AttentionModule {
	var out []AttentionModule
	add := func(ts []*Transformer2D, stride, heads int) {
		for _, t := range ts {
			for _, blk := range t.Blocks {
				out = append(out,
					AttentionModule{Key: blk.SelfKey(), Kind: nn.SelfAttn, Stride: stride, Dim: blk.Dim, Heads: heads},
					AttentionModule{Key: blk.CrossKey(), Kind: nn.CrossAttn, Stride: stride, Dim: blk.Dim, Heads: heads})
			}
		}
	}
	stride := 1
	for i, d := range m.Down {
		add(d.Attentions, stride, m.plan.Down[i].Heads)
		if d.Downsample != nil {
			stride *= 2
		}
	}
	if m.Mid != nil {
		add(m.Mid.Attentions, stride, m.plan.Mid.Heads)
	}
	for i, u := range m.Up {
		add(u.Attentions, stride, m.plan.Up[i].Heads)
		if u.Upsample != nil {
			stride /= 2
		}
	}
	return out
}

// CrossAttentionModules returns the hook keys of every cross-attention
// (attn2) module, in forward order.
func (m *Model) CrossAttentionModules() []string {
	var keys []string
	for _, md := range m.AttentionModules() {
		if md.Kind == nn.CrossAttn {
			keys = append(keys, md.Key)
		}
	}
	return keys
}

func (m *Model) transformers() []*Transformer2D {
	var ts []*Transformer2D
	for _, d := range m.Down {
		ts = append(ts, d.Attentions...)
	}
	if m.Mid != nil {
		ts = append(ts, m.Mid.Attentions...)
	}
	for _, u := range m.Up {
		ts = append(ts, u.Attentions...)
	}
	return ts
}

// ReleaseCrossAttention frees, in every transformer block, norm2 and all
// of attn2 (to_q, to_k, to_v, to_out): after T-GATE's gate step every
// cross-attention output comes from the hook's cache. A later Forward
// whose hook asks to compute a cross-attention returns an error.
func (m *Model) ReleaseCrossAttention(b backend.Backend) {
	for _, t := range m.transformers() {
		t.ReleaseCross(b)
	}
	m.crossReleased = true
}

// Release frees every weight; the model cannot run afterwards.
func (m *Model) Release(b backend.Backend) {
	releaseConv(b, m.ConvIn)
	m.TimeEmbedding.Release(b)
	if m.AddEmbedding != nil {
		m.AddEmbedding.Release(b)
	}
	for _, d := range m.Down {
		d.release(b)
	}
	if m.Mid != nil {
		m.Mid.release(b)
	}
	for _, u := range m.Up {
		u.release(b)
	}
	releaseGN(b, m.NormOut)
	releaseConv(b, m.ConvOut)
	m.released = true
	m.crossReleased = true
}

// Params lists the weights the model holds, in binding order: every bound
// weight, less those ReleaseCrossAttention or Release freed.
func (m *Model) Params() []nn.Param {
	if m.released {
		return nil
	}
	if !m.crossReleased {
		return append([]nn.Param(nil), m.params...)
	}
	var out []nn.Param
	for _, p := range m.params {
		if isCrossParam(p.Name) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// isCrossParam reports whether a weight belongs to a transformer block's
// norm2 or attn2.
func isCrossParam(name string) bool {
	return strings.Contains(name, ".transformer_blocks.") &&
		(strings.Contains(name, ".attn2.") || strings.Contains(name, ".norm2."))
}
