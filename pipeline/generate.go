package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/models/clip"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/rng"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// Decoder selects how the final latents become an image.
type Decoder int

const (
	// DecodeVAE decodes with the AutoencoderKL: z/scaling_factor through
	// post_quant_conv and the decoder, then (x/2 + 0.5).clamp(0, 1).
	DecodeVAE Decoder = iota
	// DecodeTAESD decodes the raw latents with the TAESD decoder, then
	// clamps to [0, 1] (taesd.py's convention).
	DecodeTAESD
	// DecodeNone returns the latents only.
	DecodeNone
)

// Request is one text-to-image generation.
type Request struct {
	Prompt string
	// NegativePrompt is the unconditional prompt of classifier-free
	// guidance ("" by default, as diffusers). The LCM pipeline has none.
	NegativePrompt string
	// Steps is num_inference_steps (0: 50 for SD, 4 for LCM).
	Steps int
	// Guidance is guidance_scale (NaN: 7.5 for SD, 5 for SD-XL, 8.5 for
	// LCM). For SD a value ≤ 1 turns classifier-free guidance off; for LCM
	// (and a UNet with a guidance embedding) w = g − 1 goes into the
	// guidance embedding.
	Guidance float64
	// GuidanceRescale is guidance_rescale φ (diffusers' rescale_noise_cfg);
	// 0 is off.
	GuidanceRescale float64
	// Seed seeds the PyTorch-compatible CPU generator that draws the
	// initial latents (when Latents is nil) and every later noise draw
	// (Euler ancestral, LCM).
	Seed uint64
	// Width and Height in pixels (0: the model's default size).
	Width, Height int
	// Scheduler overrides the folder's scheduler ("" keeps it), built with
	// diffusers' from_config rule from the folder's scheduler_config.json.
	Scheduler sched.Name
	// TimestepSpacing overrides timestep_spacing (leading, trailing,
	// linspace); "" keeps the config's (or the class default).
	TimestepSpacing string
	// Gate configures T-GATE (Mode gate.Off disables it).
	Gate gate.Config
	// KeepCrossAttention keeps the cross-attention weights and text
	// embeddings after the gate instead of releasing them (the pipeline
	// then needs no reload before its next T-GATE run).
	KeepCrossAttention bool
	// Latents, when set, are the initial latents [1, C, H/f, W/f]; they
	// are multiplied by init_noise_sigma, exactly as diffusers' latents=.
	// With an init image they are the noise ε instead (see EditOptions).
	Latents *tensor.Host
	// EditOptions are image-to-image and inpainting's init image, mask
	// and strength.
	EditOptions
	// Decoder selects the image decoder.
	Decoder Decoder
	// Progress, when set, is called after every denoiser evaluation.
	Progress func(Progress)
	// Phase, when set, is called when each phase of the generation starts
	// and ends (PhaseTokenize, PhaseTextEncoder, PhaseDenoise,
	// PhaseDecode).
	Phase func(PhaseEvent)
	// ReleaseTextEncoder frees the text encoder's weights once the prompt
	// is encoded; the next generation binds them again from the folder.
	// It trades a reload per generation for the encoder's memory during
	// denoising. SD-XL releases each of its two encoders as soon as it has
	// run, and binds it again only for its own turn.
	ReleaseTextEncoder bool
	// Warn, when set, is called with each warning as soon as it arises
	// (the warnings are also collected in Result.Warnings).
	Warn func(string)
	// SDXLOptions are SD-XL's second prompts and micro-conditioning.
	SDXLOptions
	// PixArtOptions are the PixArt pipelines' T5 sequence length,
	// resolution binning and caption cleaning.
	PixArtOptions
	// DeepCache reuses the UNet's deep features across steps (Interval 0
	// is off); see DeepCache.
	DeepCache DeepCache
	// AdaptiveGuidance is Adaptive Guidance's threshold γ̄ (0 is off):
	// once the cosine similarity of the conditional and unconditional
	// noise predictions exceeds it, guidance stops for the rest of the run.
	AdaptiveGuidance float64
}

// Phases of a generation, as PhaseEvent names them.
const (
	PhaseTokenize    = "tokenize"
	PhaseTextEncoder = "text-encoder"
	PhaseDenoise     = "denoise"
	PhaseDecode      = "decode"
)

// PhaseEvent reports the start (Done false) or end of a phase; Elapsed is
// the phase's time at its end.
type PhaseEvent struct {
	Name    string
	Done    bool
	Elapsed time.Duration
}

// DefaultGuidance marks Request.Guidance as "the pipeline's default".
var DefaultGuidance = math.NaN()

// Progress reports one finished denoising step.
type Progress struct {
	// Step counts evaluations from 1 to Total.
	Step, Total int
	// Timestep is the timestep the denoiser saw.
	Timestep float64
	// Plan is what the step did (guidance batch, attention actions).
	Plan gate.StepPlan
	// Latents is the sample after the scheduler step, and Denoised the
	// step's denoised estimate (nil unless the scheduler forms one); both
	// are valid only during the callback.
	Latents, Denoised backend.Tensor
	// CacheBytes is the size of T-GATE's attention cache (and DeepCache's
	// stored feature) after the step.
	CacheBytes int64
	// DeepCachePartial is true when DeepCache ran only its branch.
	DeepCachePartial bool
	// Similarity is Adaptive Guidance's cosine similarity of the step's
	// conditional and unconditional predictions (NaN when not measured);
	// AdaptiveGuidanceStep is Result's field as known after the step.
	Similarity           float64
	AdaptiveGuidanceStep int
	// Elapsed is the time since generation started.
	Elapsed time.Duration
}

// Result is a finished generation.
type Result struct {
	// Latents are the final latents [1, C, h, w], float32, before
	// decoding (the LCM pipeline's last denoised sample).
	Latents *tensor.Host
	// Image is the decoded image [1, 3, H, W] with values in [0, 1]; nil
	// for DecodeNone.
	Image *tensor.Host
	// Warnings for the caller to show, such as a truncated prompt.
	Warnings []string
	// Timesteps the denoiser saw, in order.
	Timesteps []float64
	// Gate counts what the attention modules computed and reused.
	Gate gate.Stats
	// DeepCache counts the refresh and partial evaluations.
	DeepCache DeepCacheStats
	// AdaptiveGuidanceStep is the 1-based step whose similarity exceeded
	// Request.AdaptiveGuidance (later steps ran without guidance), or 0.
	AdaptiveGuidanceStep int
}

// Generate runs the denoising loop for req and decodes the result.
//
// An error before any phase starts (a setting the model does not have,
// sizes that disagree, a strength that leaves no step) is a
// *RequestError: nothing ran, and the same request will fail again.
func (p *Pipeline) Generate(ctx context.Context, req Request) (*Result, error) {
	started := false
	phase := req.Phase
	req.Phase = func(ev PhaseEvent) {
		started = true
		if phase != nil {
			phase(ev)
		}
	}
	res, err := p.generate(ctx, req)
	var re *RequestError
	if err != nil && !started && ctx.Err() == nil && p.b.Err() == nil && !errors.As(err, &re) {
		err = &RequestError{Err: err}
	}
	return res, err
}

// RequestError is a generation refused for what it asks, before any work
// ran.
type RequestError struct{ Err error }

func (e *RequestError) Error() string { return e.Err.Error() }
func (e *RequestError) Unwrap() error { return e.Err }

// generate is Generate without the classification of its errors.
func (p *Pipeline) generate(ctx context.Context, req Request) (*Result, error) {
	if p.pixart != nil {
		return p.generatePixArt(ctx, req)
	}
	start := time.Now()
	b := p.b
	if p.UNet == nil {
		return nil, fmt.Errorf("pipeline: closed")
	}
	if p.crossReleased {
		if err := p.reloadUNet(); err != nil {
			return nil, err
		}
	}
	steps := req.Steps
	guidance := req.Guidance
	if steps == 0 {
		steps = 50
		if p.Kind == LatentConsistency {
			steps = 4
		}
	}
	if math.IsNaN(guidance) {
		guidance = 7.5
		if p.Kind == LatentConsistency {
			guidance = 8.5
		}
		if p.Kind == StableDiffusionXL {
			guidance = sdxlDefaultGuidance
		}
	}
	if steps < 1 {
		return nil, fmt.Errorf("pipeline: steps must be at least 1, got %d", steps)
	}
	if req.GuidanceRescale < 0 || req.GuidanceRescale > 1 {
		return nil, fmt.Errorf("pipeline: guidance rescale %g is outside [0, 1]", req.GuidanceRescale)
	}
	reqHeight, reqWidth, err := editSize(req)
	if err != nil {
		return nil, err
	}
	latentShape, err := p.LatentShape(reqHeight, reqWidth)
	if err != nil {
		return nil, err
	}
	height, width := latentShape[2]*p.VAEScaleFactor(), latentShape[3]*p.VAEScaleFactor()
	if err := p.checkDecoder(req.Decoder); err != nil {
		return nil, err
	}

	// The scheduler, stepping device tensors, with noise from the seed's
	// generator (after the initial latents, as diffusers' randn_tensor).
	gen := rng.NewTorch(req.Seed)
	stepper, err := p.newStepper(req, gen)
	if err != nil {
		return nil, err
	}
	defer stepper.Release()
	if err := stepper.SetTimesteps(steps); err != nil {
		return nil, err
	}
	timesteps := stepper.Timesteps()

	// Initial latents: randn(shape, generator) or the given ones, times
	// init_noise_sigma (prepare_latents); for image-to-image and
	// inpainting, the (noised) image latents, and the loop starts at the
	// first timestep the strength keeps.
	ed, err := p.prepareEdit(req, stepper, gen, steps, latentShape)
	if err != nil {
		return nil, err
	}
	defer ed.release(b)
	first := ed.first()
	var init *tensor.Host
	if ed != nil {
		// num_inference_steps becomes the steps that run (get_timesteps).
		init, timesteps, steps = ed.init, timesteps[first:], steps-ed.tStart
	} else if req.Latents != nil {
		if !req.Latents.Shape.Equal(latentShape) {
			return nil, fmt.Errorf("pipeline: given latents have shape %v; a %dx%d image needs %v", req.Latents.Shape, width, height, latentShape)
		}
		init = &tensor.Host{Shape: latentShape.Clone(), Data: append([]float32(nil), req.Latents.Data...)}
	} else {
		init = &tensor.Host{Shape: latentShape.Clone(), Data: gen.Randn(latentShape.Numel())}
	}
	sigma := stepper.InitNoiseSigma()
	if ed != nil {
		sigma = 1 // prepareEdit applied init_noise_sigma where diffusers does
	}
	for i, v := range init.Data {
		init.Data[i] = v * sigma
	}

	// Guidance: SD runs classifier-free guidance when g > 1 and the UNet
	// has no guidance embedding; the LCM pipeline never does.
	condDim := p.UNet.Config.TimeCondProjDim
	cfg := p.Kind.sdLoop() && guidance > 1 && condDim == nil
	res := &Result{Timesteps: timesteps}
	warn := func(w string) {
		res.Warnings = append(res.Warnings, w)
		if req.Warn != nil {
			req.Warn(w)
		}
	}

	phaseStart := time.Now()
	phase := func(name string, done bool) {
		if req.Phase == nil {
			return
		}
		ev := PhaseEvent{Name: name, Done: done}
		if done {
			ev.Elapsed = time.Since(phaseStart)
		}
		req.Phase(ev)
		phaseStart = time.Now()
	}

	// Text embeddings: [negative; prompt] with guidance, else the prompt
	// (SD-XL: both encoders, plus pooled embeddings and time ids).
	var embeds backend.Tensor
	var xl *sdxlCond
	if p.Kind == StableDiffusionXL {
		if embeds, xl, err = p.encodeSDXL(&req, cfg, height, width, warn, phase); err != nil {
			return nil, err
		}
		defer func() { xl.release(b) }()
	} else {
		phase(PhaseTokenize, false)
		ids, tr := p.Tokenizer.EncodeForModel(req.Prompt)
		if tr != nil {
			warn(tr.Warning())
		}
		rows := [][]int32{ids}
		if cfg {
			neg, ntr := p.Tokenizer.EncodeForModel(req.NegativePrompt)
			if ntr != nil {
				warn("negative prompt: " + ntr.Warning())
			}
			rows = [][]int32{neg, ids}
		} else if req.NegativePrompt != "" {
			warn("the negative prompt is ignored without classifier-free guidance")
		}
		phase(PhaseTokenize, true)
		phase(PhaseTextEncoder, false)
		if p.TextEncoder == nil {
			if err := p.loadTextEncoder(); err != nil {
				return nil, err
			}
		}
		enc, err := p.TextEncoder.Forward(b, rows, clip.Options{})
		if err != nil {
			return nil, fmt.Errorf("text encoder: %w", err)
		}
		embeds = enc.LastHiddenState
		enc.LastHiddenState = nil
		enc.Release(b)
		if req.ReleaseTextEncoder {
			p.TextEncoder.Release(b)
			p.TextEncoder = nil
		}
		if err := b.Err(); err != nil {
			return nil, err
		}
		phase(PhaseTextEncoder, true)
	}
	// single is the context of a batch-1 evaluation: the prompt without
	// guidance; after T-GATE's gate, the negative embeddings, as the
	// original does (every cross-attention then returns its cache).
	var single backend.Tensor
	if cfg {
		single = b.Slice(embeds, 0, 0, 1)
	}
	releaseText := func() {
		nn.Free(b, embeds, single)
		embeds, single = nil, nil
	}
	defer releaseText()

	var timestepCond backend.Tensor
	if condDim != nil {
		w := guidance - 1
		timestepCond = b.Upload(unet.GuidanceScaleEmbedding([]float64{w}, *condDim))
		defer b.Free(timestepCond)
	}

	g, err := gate.New(b, req.Gate, gate.Loop{Timesteps: len(timesteps), Steps: steps, Order: stepper.Order(), CFG: cfg})
	if err != nil {
		return nil, err
	}
	defer g.Release()
	dc, err := newDeepCacheRun(req.DeepCache, timesteps, g, gate.Loop{Timesteps: len(timesteps), Steps: steps, Order: stepper.Order()}.WarmupSteps())
	if err != nil {
		return nil, err
	}
	defer dc.release()
	ag, err := newAdaptiveGuidance(req.AdaptiveGuidance, p.Kind, cfg, req.Gate.Mode != gate.Off)
	if err != nil {
		return nil, err
	}
	var condText backend.Tensor // the prompt's embeddings after adaptive guidance stops
	defer func() { nn.Free(b, condText) }()

	phase(PhaseDenoise, false)
	x := b.Upload(init)
	var denoised backend.Tensor
	defer func() { nn.Free(b, x, denoised) }()
	gs := float32(guidance)
	for i, t := range timesteps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		plan := g.Begin(i)
		if plan.Cross == gate.Reuse && !p.crossReleased && !req.KeepCrossAttention && g.CrossCached() {
			// Past the gate: every cross-attention output comes from the
			// cache, so its weights and the text embeddings can go.
			p.UNet.ReleaseCrossAttention(b)
			p.crossReleased = true
			releaseText()
		}
		plan.CFG = plan.CFG && ag.guiding()
		var in, ehs backend.Tensor
		switch {
		case plan.CFG:
			in, ehs = b.Concat(0, x, x), embeds
		case !ag.guiding():
			if condText == nil {
				condText = b.Slice(embeds, 0, 1, 2)
			}
			in, ehs = b.Reshape(x, x.Shape()...), condText
		case cfg:
			in, ehs = b.Reshape(x, x.Shape()...), single
		default:
			in, ehs = b.Reshape(x, x.Shape()...), embeds
		}
		// The LCM pipeline feeds the latents unscaled (its loop has no
		// scale_model_input; LCMScheduler's is the identity anyway).
		scaled := in
		if p.Kind.sdLoop() {
			scaled = stepper.ScaleModelInput(in, i+first)
			b.Free(in)
		}
		scaled = ed.unetInput(b, scaled) // inpainting UNets: + mask, masked image
		opts := unet.ForwardOpts{TimestepCond: timestepCond, Hook: g}
		xl.forwardOpts(&opts, plan.CFG, cfg)
		opts.DeepCache = dc.opts(i, scaled.Shape()[0])
		out, err := p.UNet.Forward(b, scaled, []float64{t}, ehs, opts)
		b.Free(scaled)
		if err != nil {
			return nil, fmt.Errorf("step %d (t=%g): %w", i, t, err)
		}
		if err := g.Err(); err != nil {
			b.Free(out)
			return nil, err
		}
		eps := out
		if plan.CFG {
			if err := ag.observe(b, out, i); err != nil {
				b.Free(out)
				return nil, err
			}
			var cond backend.Tensor
			eps, cond = guide(b, out, gs)
			b.Free(out)
			if req.GuidanceRescale > 0 {
				r, err := rescaleNoiseCFG(b, eps, cond, float32(req.GuidanceRescale))
				b.Free(eps)
				if err != nil {
					b.Free(cond)
					return nil, err
				}
				eps = r
			}
			b.Free(cond)
		}
		step, err := stepper.Step(eps, x, i+first)
		b.Free(eps)
		if err != nil {
			return nil, fmt.Errorf("step %d (t=%g): %w", i, t, err)
		}
		b.Free(x)
		x = ed.blendKnown(b, stepper, step.Prev, i+first) // 4-channel inpainting
		if denoised != nil {
			b.Free(denoised)
			denoised = nil
		}
		if step.HasDenoised {
			denoised = step.Denoised
		}
		if err := b.Err(); err != nil {
			return nil, err
		}
		if req.Progress != nil {
			req.Progress(Progress{Step: i + 1, Total: len(timesteps), Timestep: t, Plan: plan,
				Latents: x, Denoised: denoised, CacheBytes: g.CacheBytes() + dc.cacheBytes(), Elapsed: time.Since(start),
				DeepCachePartial: dc.partial(), Similarity: ag.similarity(), AdaptiveGuidanceStep: ag.step()})
		}
	}
	res.Gate = g.Stats()
	res.DeepCache, res.AdaptiveGuidanceStep = dc.counts(), ag.step()
	g.Release()
	dc.release()
	releaseText()

	final := x
	if p.Kind == LatentConsistency {
		if denoised == nil {
			return nil, fmt.Errorf("pipeline: the %s scheduler forms no denoised sample for the LCM pipeline", stepper.Name())
		}
		final = denoised
	}
	if res.Latents, err = b.ReadBack(final); err != nil {
		return nil, err
	}
	phase(PhaseDenoise, true)
	if req.Decoder == DecodeNone {
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	phase(PhaseDecode, false)
	img, err := p.Decode(final, req.Decoder)
	if err != nil {
		return nil, err
	}
	phase(PhaseDecode, true)
	res.Image = img
	return res, nil
}

// checkDecoder reports a decoder the pipeline cannot run.
func (p *Pipeline) checkDecoder(d Decoder) error {
	switch {
	case d == DecodeVAE && p.VAE == nil:
		return fmt.Errorf("pipeline: the VAE decoder was not loaded")
	case d == DecodeTAESD && p.TAESD == nil:
		return fmt.Errorf("pipeline: no TAESD decoder loaded (LoadTAESD)")
	case d < DecodeVAE || d > DecodeNone:
		return fmt.Errorf("pipeline: unknown decoder %d", int(d))
	}
	return nil
}

// newStepper builds the request's scheduler (the folder's when
// req.Scheduler is empty, with diffusers' from_config rule), stepping
// device tensors, with noise from gen.
func (p *Pipeline) newStepper(req Request, gen *rng.Torch) (sched.Stepper[backend.Tensor], error) {
	name := req.Scheduler
	if name == "" {
		var err error
		if name, err = sched.NameFromConfig(p.Scheduler); err != nil {
			return nil, err
		}
	}
	return sched.NewStepper[backend.Tensor](name, p.Scheduler,
		sched.Options{TimestepSpacing: req.TimestepSpacing}, &sched.BackendOps{B: p.b, Noise: gen})
}

// LatentShape is the shape [1, C, H/f, W/f] of the latents of a
// height×width image (0 takes the model's default size), or an error when
// the size is not a positive multiple of 8 and of the VAE scale factor f.
func (p *Pipeline) LatentShape(height, width int) (tensor.Shape, error) {
	if p.pixart != nil {
		return p.pixartLatentShape(height, width)
	}
	dh, dw := p.DefaultSize()
	if height == 0 {
		height = dh
	}
	if width == 0 {
		width = dw
	}
	f := p.VAEScaleFactor()
	if height <= 0 || width <= 0 || height%8 != 0 || width%8 != 0 || height%f != 0 || width%f != 0 {
		return nil, fmt.Errorf("pipeline: height and width must be positive multiples of 8 (and of the VAE scale factor %d), got %dx%d", f, width, height)
	}
	return tensor.Shape{1, p.latentChannels(), height / f, width / f}, nil
}

// Decode turns latents [1, C, h, w] on the pipeline's backend into an
// image [1, 3, H, W] in [0, 1] with the chosen decoder.
func (p *Pipeline) Decode(latents backend.Tensor, d Decoder) (*tensor.Host, error) {
	b := p.b
	var img backend.Tensor
	switch d {
	case DecodeVAE:
		if p.VAE == nil {
			return nil, fmt.Errorf("pipeline: the VAE decoder was not loaded")
		}
		// latents / scaling_factor, as a float32 division (the pipeline's
		// torch expression), then the decoder and (x/2 + 0.5).clamp(0, 1).
		sf := b.Upload(tensor.FromData([]float32{float32(p.VAEConfig.ScalingFactor)}, 1))
		z := b.Binary(backend.Div, latents, sf)
		b.Free(sf)
		dec, err := p.decodeVAE(z) // by tiles when p.VAETiling says so
		b.Free(z)
		if err != nil {
			return nil, err
		}
		half := b.Affine(dec, 0.5, 0.5)
		b.Free(dec)
		img = b.Clamp(half, 0, 1)
		b.Free(half)
	case DecodeTAESD:
		if p.TAESD == nil {
			return nil, fmt.Errorf("pipeline: no TAESD decoder loaded (LoadTAESD)")
		}
		dec, err := p.TAESD.Decode(b, latents)
		if err != nil {
			return nil, err
		}
		img = b.Clamp(dec, 0, 1)
		b.Free(dec)
	default:
		return nil, fmt.Errorf("pipeline: unknown decoder %d", int(d))
	}
	h, err := b.ReadBack(img)
	b.Free(img)
	return h, err
}
