package macs

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/models/clip"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/models/vae"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// Spec is one generation to count.
type Spec struct {
	// Steps is num_inference_steps.
	Steps int
	// Width and Height in pixels; 0 takes the model's default size.
	Width, Height int
	// Guidance runs classifier-free guidance (a batch of 2) before the
	// gate. It is ignored for UNets with a guidance embedding (LCM), which
	// never double the batch.
	Guidance bool
	// Gate is T-GATE's configuration; Mode gate.Off counts the plain
	// pipeline. GateStep also splits the phases when the mode is Off, so
	// the two runs compare phase by phase.
	Gate gate.Config
	// Scheduler names the scheduler; "" takes the folder's. It decides
	// the number of denoiser evaluations (PNDM makes steps+1).
	Scheduler sched.Name
	// WeightDType is the dtype of every weight (the checkpoint's).
	WeightDType tensor.DType
	// UNet8Bit counts the UNet's Linear and convolution weights as 8-bit
	// (pipeline.LoadOptions.UNet8Bit; the per-row scales, under 1% of
	// those bytes, are not counted).
	UNet8Bit bool
	// ActDType is the dtype of activations.
	ActDType tensor.DType
	// DeepCache counts DeepCache's partial steps (Interval 0 is off).
	DeepCache DeepCache
	// AdaptiveGuidanceStep, when positive, is where Adaptive Guidance
	// ended classifier-free guidance (pipeline.Result.AdaptiveGuidanceStep,
	// which depends on the image, so the count takes it as given): the
	// evaluations after it run on one row. It excludes T-GATE.
	AdaptiveGuidanceStep int
	// Resident keeps every model's weights bound for the whole generation,
	// as pipeline.Load does; false binds each model for its phase only
	// (text encoder, then UNet, then decoder) — the least memory a
	// generation can need.
	Resident bool
}

// DefaultSpec is the T-GATE paper's setting for Stable Diffusion: 25
// steps of DPM-Solver++ (the scheduler T-GATE's scripts install) with
// classifier-free guidance, T-GATE v2 with gate step 10, sp_interval 5,
// fi_interval 1, warm-up 2, F16 weights, F32 activations, every model
// resident.
func DefaultSpec() Spec {
	return Spec{Steps: 25, Guidance: true, Gate: gate.SDDefaults(), Scheduler: sched.DPMSolver,
		WeightDType: tensor.F16, ActDType: tensor.F32, Resident: true}
}

// Phase names, in the order of a generation.
const (
	PhaseText      = "text encoder"
	PhaseSemantics = "semantics planning"
	PhaseFidelity  = "fidelity improving"
	PhaseDecoder   = "decoder"
)

// Mem is bytes by kind: each kind's peak is reached at its own moment;
// Total is the peak of their sum, the memory the phase needs.
type Mem struct {
	Weights, Activations, Caches, Total int64
}

// Phase is what one part of the generation cost.
type Phase struct {
	Name string
	// Evals is the number of denoiser evaluations and Rows the batch rows
	// they ran on, summed (a guided evaluation has 2); both 0 outside the
	// denoising loop.
	Evals, Rows int
	// MACs by op family.
	MACs map[meter.Op]int64
	// Params is the number of distinct weight elements the phase read.
	Params int64
	// Peak is the peak memory during the phase.
	Peak Mem
}

// TotalMACs sums every op family.
func (p *Phase) TotalMACs() int64 {
	var s int64
	for _, v := range p.MACs {
		s += v
	}
	return s
}

// CalflopsMACs is the phase's count in calflops' convention: the
// matrix products with a weight (torch.nn.functional.linear) and the
// convolutions, not the attention products q·kᵀ and p·v, which diffusers
// computes in F.scaled_dot_product_attention and calflops does not patch
// (docs/macs.md).
func (p *Phase) CalflopsMACs() int64 { return p.MACs[meter.OpMatMul] + p.MACs[meter.OpConv] }

// Release is what the pipeline frees at the first evaluation past the
// gate.
type Release struct {
	// Eval is the evaluation at which it happened; −1 when nothing was
	// released (T-GATE off).
	Eval int
	// WeightParams and WeightBytes are the cross-attention weights freed
	// (every transformer block's norm2 and attn2).
	WeightParams, WeightBytes int64
	// EmbeddingBytes are the text embeddings (and SDXL's pooled
	// embeddings) freed.
	EmbeddingBytes int64
	// CacheBytes is the attention cache held from then on.
	CacheBytes int64
}

// Report is the count of one generation.
type Report struct {
	Spec          Spec
	Width, Height int
	Latent        tensor.Shape // [1, C, h, w]
	Scheduler     sched.Name
	Evals         int  // denoiser evaluations
	CFG           bool // whether a guidance batch ran before the gate
	Phases        []Phase
	Release       Release
	Gate          gate.Stats
	UNetParams    int64 // every weight of the UNet
	TextParams    int64 // every weight of the text encoder(s)
	DecoderParams int64 // every weight of the VAE decoder
	WeightBytes   int64 // all three models' weights
	Peak          Mem   // the whole generation
	MaxCacheBytes int64 // the largest attention cache held (and DeepCache's feature)
	// DeepCacheRefreshes and DeepCachePartials count DeepCache's full and
	// partial evaluations (both 0 without DeepCache).
	DeepCacheRefreshes, DeepCachePartials int
	// Largest is the size of the largest single tensor of each kind
	// (Total unused): a device must allocate and bind buffers that large.
	Largest        Mem
	CrossModules   int // cross-attention modules of the UNet
	SelfModules    int
	ReleasedParams []string // weight names ReleaseCrossAttention freed, in binding order
}

// Phase returns the named phase, or nil.
func (r *Report) Phase(name string) *Phase {
	for i := range r.Phases {
		if r.Phases[i].Name == name {
			return &r.Phases[i]
		}
	}
	return nil
}

// DenoiserMACs sums both denoising phases (every op family).
func (r *Report) DenoiserMACs() int64 {
	return r.Phase(PhaseSemantics).TotalMACs() + r.Phase(PhaseFidelity).TotalMACs()
}

// CalflopsMACs sums both denoising phases in calflops' convention (see
// Phase.CalflopsMACs): the figure the T-GATE paper reports.
func (r *Report) CalflopsMACs() int64 {
	return r.Phase(PhaseSemantics).CalflopsMACs() + r.Phase(PhaseFidelity).CalflopsMACs()
}

// Count runs one generation of model under spec on a fresh meter.
func Count(model *Model, spec Spec) (*Report, error) {
	if spec.Steps < 1 {
		return nil, fmt.Errorf("macs: steps must be at least 1, got %d", spec.Steps)
	}
	if err := spec.Gate.Validate(); err != nil {
		return nil, err
	}
	if err := validateExtras(spec); err != nil {
		return nil, err
	}
	w, h := spec.Width, spec.Height
	dw, dh := model.DefaultSize()
	if w == 0 {
		w = dw
	}
	if h == 0 {
		h = dh
	}
	f := model.VAEScaleFactor()
	if w <= 0 || h <= 0 || w%8 != 0 || h%8 != 0 || w%f != 0 || h%f != 0 {
		return nil, fmt.Errorf("macs: width and height must be positive multiples of 8 (and of the VAE scale factor %d), got %dx%d", f, w, h)
	}
	for _, dt := range []tensor.DType{spec.WeightDType, spec.ActDType} {
		if !dt.IsFloat() {
			return nil, fmt.Errorf("macs: dtype %v is not F32, F16 or BF16", dt)
		}
	}
	name := spec.Scheduler
	if name == "" {
		var err error
		if name, err = sched.NameFromConfig(model.Scheduler); err != nil {
			return nil, err
		}
	}
	r := &run{model: model, spec: spec, m: meter.New()}
	r.m.ActDType = spec.ActDType
	r.rep = &Report{Spec: spec, Width: w, Height: h, Scheduler: name,
		Latent: tensor.Shape{1, model.VAE.LatentChannels, h / f, w / f}, Release: Release{Eval: -1}}
	r.rep.CFG = spec.Guidance && !model.guidanceEmbedding()
	if err := r.generate(); err != nil {
		return nil, err
	}
	return r.rep, nil
}

// run is the state of one counted generation.
type run struct {
	model *Model
	spec  Spec
	m     *meter.Backend
	rep   *Report

	text []*clip.TextModel
	un   *unet.Model
	dec  *vae.Decoder
	// unetBytes are the UNet's weight bytes (its dtypes may be mixed).
	unetBytes int64

	semEvals, semRows int // the semantics-planning phase so far
	fidEvals, fidRows int // the fidelity-improving phase so far
	// afterDecode frees what the denoising loop leaves live until the
	// end of the generation.
	afterDecode func()
}

// begin starts a phase: MAC counters, read weights and peaks start afresh.
func (r *run) begin() {
	r.m.ResetMACs()
	r.m.ResetUsed()
	r.m.ResetPeak()
}

// end closes the phase started by begin.
func (r *run) end(name string, evals, rows int) {
	params, _ := r.m.UsedWeights()
	mem := r.m.Memory()
	r.rep.Phases = append(r.rep.Phases, Phase{Name: name, Evals: evals, Rows: rows, MACs: r.m.MACsByOp(), Params: params,
		Peak: Mem{Weights: r.m.PeakOf(meter.Weight), Activations: r.m.PeakOf(meter.Activation), Caches: r.m.PeakOf(meter.Cache), Total: mem.Peak}})
	if mem.Peak > r.rep.Peak.Total {
		r.rep.Peak.Total = mem.Peak
	}
	r.rep.Peak.Weights = max(r.rep.Peak.Weights, r.m.PeakOf(meter.Weight))
	r.rep.Peak.Activations = max(r.rep.Peak.Activations, r.m.PeakOf(meter.Activation))
	r.rep.Peak.Caches = max(r.rep.Peak.Caches, r.m.PeakOf(meter.Cache))
}

func countParams(ps []nn.Param) int64 {
	var n int64
	for _, p := range ps {
		n += int64(p.Shape.Numel())
	}
	return n
}

// bindText declares the text encoder(s).
func (r *run) bindText() error {
	for i, cfg := range r.model.TextEncoders {
		s := nn.NewDeclaredScope(r.m, r.spec.WeightDType)
		tm, err := clip.New(s, cfg)
		if err != nil {
			return fmt.Errorf("text encoder %d: %w", i+1, err)
		}
		r.text = append(r.text, tm)
		r.rep.TextParams += countParams(s.Params())
	}
	return nil
}

func (r *run) releaseText() {
	for _, tm := range r.text {
		tm.Release(r.m)
	}
	r.text = nil
}

func (r *run) bindUNet() error {
	wdt := r.spec.WeightDType
	u, err := unet.NewDeclaredFunc(r.m, r.model.UNet, func(name string, shape tensor.Shape) tensor.DType {
		if r.spec.UNet8Bit && nn.LinearOrConvWeight(name, shape) {
			return tensor.I8
		}
		return wdt
	})
	if err != nil {
		return err
	}
	r.un = u
	r.rep.UNetParams = countParams(u.Params())
	r.unetBytes = 0
	for _, p := range u.Params() {
		r.unetBytes += int64(p.Shape.Numel() * p.DType.Size())
	}
	for _, md := range u.AttentionModules() {
		if md.Kind == nn.CrossAttn {
			r.rep.CrossModules++
		} else {
			r.rep.SelfModules++
		}
	}
	return nil
}

func (r *run) bindDecoder() error {
	s := nn.NewDeclaredScope(r.m, r.spec.WeightDType)
	d, err := vae.NewDecoder(s, r.model.VAE)
	if err != nil {
		return err
	}
	r.dec = d
	r.rep.DecoderParams = countParams(s.Params())
	return nil
}

// generate is pipeline.Generate on the meter: text embeddings, the
// denoising loop with T-GATE, the decoder.
func (r *run) generate() error {
	m := r.m
	if r.spec.Resident {
		if err := r.bindText(); err != nil {
			return err
		}
		if err := r.bindUNet(); err != nil {
			return err
		}
		if err := r.bindDecoder(); err != nil {
			return err
		}
	}

	// Text embeddings.
	r.begin()
	if !r.spec.Resident {
		if err := r.bindText(); err != nil {
			return err
		}
	}
	emb, err := r.encode()
	if err != nil {
		return err
	}
	if !r.spec.Resident {
		r.releaseText()
	}
	r.end(PhaseText, 0, 0)

	// The denoising loop: denoise ends the semantics-planning phase and
	// begins the fidelity-improving one.
	r.begin()
	if !r.spec.Resident {
		if err := r.bindUNet(); err != nil {
			return err
		}
	}
	latents, err := r.denoise(emb)
	if err != nil {
		return err
	}
	if !r.spec.Resident {
		r.un.Release(m)
	}
	r.end(PhaseFidelity, r.fidEvals, r.fidRows)

	// Decoding.
	r.begin()
	if !r.spec.Resident {
		if err := r.bindDecoder(); err != nil {
			return err
		}
	}
	if err := r.decode(latents); err != nil {
		return err
	}
	r.afterDecode()
	if !r.spec.Resident {
		r.dec.Release(m)
	}
	r.end(PhaseDecoder, 0, 0)

	r.rep.Largest = Mem{Weights: m.Largest(meter.Weight), Activations: m.Largest(meter.Activation), Caches: m.Largest(meter.Cache)}
	r.rep.WeightBytes = (r.rep.TextParams+r.rep.DecoderParams)*int64(r.spec.WeightDType.Size()) + r.unetBytes
	if r.spec.Resident {
		r.releaseText()
		r.un.Release(m)
		r.dec.Release(m)
	}
	if live := m.Memory().Live; live != 0 {
		return fmt.Errorf("macs: %d bytes still live after the generation (a tensor was not freed)", live)
	}
	return nil
}

// embeddings are the text conditioning: ctx [B, L, D] and, for SDXL, the
// pooled embeddings [B, P]. single and singlePooled are the batch-1 views
// used without guidance or after the gate.
type embeddings struct {
	ctx, pooled          backend.Tensor
	single, singlePooled backend.Tensor
}

// textBytes is the size of the text embeddings the cross-attention reads.
func (e *embeddings) textBytes() int64 {
	var n int64
	for _, t := range []backend.Tensor{e.ctx, e.single} {
		if t != nil {
			n += int64(t.Shape().Numel()) * int64(t.DType().Size())
		}
	}
	return n
}

// releaseText frees the embeddings the cross-attention reads.
func (e *embeddings) releaseText(b backend.Backend) {
	nn.Free(b, e.ctx, e.single)
	e.ctx, e.single = nil, nil
}

// releasePooled frees SDXL's pooled embeddings.
func (e *embeddings) releasePooled(b backend.Backend) {
	nn.Free(b, e.pooled, e.singlePooled)
	e.pooled, e.singlePooled = nil, nil
}

// encode runs the text encoder(s) on [negative; prompt] with guidance (or
// the prompt alone), the way the SD and SDXL pipelines' encode_prompt do.
func (r *run) encode() (*embeddings, error) {
	m, L := r.m, r.model.Tokens()
	row := make([]int32, L) // the meter needs only the shape
	rows := [][]int32{row}
	zerosNeg := r.model.Class == ClassSDXL && r.model.ForceZerosForEmptyPrompt
	if r.rep.CFG && !zerosNeg {
		rows = append(rows, row)
	}
	e := &embeddings{}
	if r.model.Class != ClassSDXL {
		out, err := r.text[0].Forward(m, rows, clip.Options{})
		if err != nil {
			return nil, err
		}
		e.ctx = out.LastHiddenState
		out.LastHiddenState = nil
		out.Release(m)
	} else {
		// SDXL: hidden_states[−2] of both encoders side by side; the
		// pooled embeddings are text_encoder_2's projected text_embeds.
		var parts []backend.Tensor
		for i, tm := range r.text {
			out, err := tm.Forward(m, rows, clip.Options{HiddenStates: true})
			if err != nil {
				return nil, fmt.Errorf("text encoder %d: %w", i+1, err)
			}
			n := len(out.HiddenStates)
			parts = append(parts, out.HiddenStates[n-2])
			out.HiddenStates[n-2] = nil
			if i == len(r.text)-1 {
				e.pooled = out.TextEmbeds
				out.TextEmbeds = nil
			}
			out.Release(m)
		}
		e.ctx = m.Concat(-1, parts...)
		nn.Free(m, parts...)
		if r.rep.CFG && zerosNeg {
			// torch.zeros_like for the unconditional half, then
			// cat([negative, prompt]).
			zc := m.Upload(tensor.New(e.ctx.Shape()...))
			zp := m.Upload(tensor.New(e.pooled.Shape()...))
			ctx, pooled := m.Concat(0, zc, e.ctx), m.Concat(0, zp, e.pooled)
			nn.Free(m, zc, zp, e.ctx, e.pooled)
			e.ctx, e.pooled = ctx, pooled
		}
	}
	if r.rep.CFG {
		e.single = m.Slice(e.ctx, 0, 0, 1)
		if e.pooled != nil {
			e.singlePooled = m.Slice(e.pooled, 0, 0, 1)
		}
	}
	return e, nil
}
