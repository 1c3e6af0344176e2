package pipeline

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/models/pixart"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/rng"
	"github.com/tgate-web/tgate/tensor"
)

// PixArtOptions are the request settings only the PixArt pipelines use.
type PixArtOptions struct {
	// MaxSequenceLength is max_sequence_length, the T5 ids every prompt is
	// padded or truncated to (0: 120 for PixArt-α, 300 for PixArt-Σ).
	MaxSequenceLength int
	// NoResolutionBinning turns off use_resolution_binning: by default the
	// image is generated at the size of the aspect-ratio bin closest to
	// Height/Width and resized back to Height×Width after decoding.
	NoResolutionBinning bool
	// CleanCaption is clean_caption: the prompt is cleaned of URLs, HTML
	// and similar before tokenisation; off, it is only lowercased and
	// stripped.
	CleanCaption bool
	// TextEncoderProgress, when set, is called after each T5 encoder
	// block with the blocks done and the total (T5-XXL has 24; streamed
	// from the folder, each takes a while).
	TextEncoderProgress func(done, total int)
	// PromptEmbeds, when set, are the prompt's T5 embeddings made
	// elsewhere (LoadPromptEmbedsFile): the prompt is not encoded, and
	// Prompt only labels the run (and the negative prompt too when they
	// hold its embeddings).
	PromptEmbeds *PromptEmbeds
	// EncodedPrompt, when set, is called with the embeddings the
	// generation denoises with, read back from the device, before the
	// first step (SavePromptEmbeds writes them to a file); an error it
	// returns ends the generation.
	EncodedPrompt func(*PromptEmbeds) error
}

// PixArt pipeline defaults (diffusers v0.30.3 PixArtAlphaPipeline and
// PixArtSigmaPipeline __call__).
const (
	pixartDefaultSteps    = 20
	pixartDefaultGuidance = 4.5
	pixartAlphaMaxSeq     = 120
	pixartSigmaMaxSeq     = 300
)

// PixArtGateDefaults returns the T-GATE settings the original repository
// uses for PixArt-α and PixArt-Σ (README and main.py: 25 steps, gate_step
// 15, sp_interval 3, fi_interval 1, warm_up 2).
func PixArtGateDefaults() gate.Config {
	return gate.Config{Mode: gate.V2, GateStep: 15, SPInterval: 3, FIInterval: 1, WarmUp: 2}
}

// pixartText is the encoded conditioning of one PixArt generation.
type pixartText struct {
	// embeds is [negative; prompt] T5 hidden states [2, L, D] with
	// guidance, the prompt's [1, L, D] without.
	embeds backend.Tensor
	// mask holds the matching attention masks [2 or 1, L].
	mask *tensor.Host
}

// negative returns the negative prompt's embeddings and mask (batch 1),
// which the original T-GATE loader feeds after the gate; the caller frees
// the tensor.
func (t *pixartText) negative(b backend.Backend) (backend.Tensor, *tensor.Host) {
	l := t.mask.Shape[1]
	return b.Slice(t.embeds, 0, 0, 1), &tensor.Host{Shape: tensor.Shape{1, l}, Data: t.mask.Data[:l]}
}

// generatePixArt is Generate for the PixArt kinds: diffusers v0.30.3
// PixArtAlphaPipeline / PixArtSigmaPipeline __call__, and with T-GATE the
// loop of the original tgate/PixArt_Alpha.py and PixArt_Sigma.py: before
// the gate the guidance batch [x; x] with [negative; prompt] embeddings
// and masks; from the gate on batch 1, the raw output (first 4 channels)
// to the scheduler, and the negative embeddings and mask as context, which
// no cross-attention reads (each replays its cache) — once every
// cross-attention output is cached the weights of attn2 and the text
// embeddings are released. PixArt_Alpha.py batches by i < gate_step but
// combines guidance by i − num_warmup_steps < gate_step (PixArt_Sigma.py
// uses the latter for both); they agree for schedulers without warm-up
// evaluations (DPM-Solver++, the default), and the gate's plan decides
// both here.
func (p *Pipeline) generatePixArt(ctx context.Context, req Request) (*Result, error) {
	b, px := p.b, p.pixart
	if px.Transformer == nil {
		return nil, fmt.Errorf("pipeline: closed")
	}
	if err := p.checkPixArtRequest(req); err != nil {
		return nil, err
	}
	maxSeq := req.MaxSequenceLength
	if maxSeq == 0 {
		maxSeq = pixartAlphaMaxSeq
		if p.Kind == PixArtSigma {
			maxSeq = pixartSigmaMaxSeq
		}
	}
	if maxSeq < 1 {
		return nil, fmt.Errorf("pipeline: max sequence length %d must be positive", maxSeq)
	}
	if _, _, _, _, err := p.pixartSize(req); err != nil {
		return nil, err // before the text encoder runs
	}
	guidance := req.Guidance
	if math.IsNaN(guidance) {
		guidance = pixartDefaultGuidance
	}
	cfg := guidance > 1
	res := &Result{}
	warn := func(w string) {
		res.Warnings = append(res.Warnings, w)
		if req.Warn != nil {
			req.Warn(w)
		}
	}
	phase := newPhaseTimer(req.Phase)

	text, err := p.pixartConditioning(req, maxSeq, cfg, warn, phase)
	if err != nil {
		return nil, err
	}
	if req.EncodedPrompt != nil {
		e, err := promptEmbedsFromText(b, text)
		if err == nil {
			err = req.EncodedPrompt(e)
		}
		if err != nil {
			b.Free(text.embeds)
			return nil, err
		}
	}
	return p.denoisePixArt(ctx, req, text, res, phase)
}

// maskHost stacks attention-mask rows into a [rows, L] host tensor.
func maskHost(rows [][]int32) *tensor.Host {
	l := len(rows[0])
	h := tensor.New(len(rows), l)
	for i, r := range rows {
		for j, v := range r {
			h.Data[i*l+j] = float32(v)
		}
	}
	return h
}

// newPhaseTimer returns the phase reporter of a generation: it calls f (if
// set) with each phase's start and, at its end, its elapsed time.
func newPhaseTimer(f func(PhaseEvent)) func(name string, done bool) {
	start := time.Now()
	return func(name string, done bool) {
		if f == nil {
			return
		}
		ev := PhaseEvent{Name: name, Done: done}
		if done {
			ev.Elapsed = time.Since(start)
		}
		f(ev)
		start = time.Now()
	}
}

// pixartSize resolves the request's size: the output size (0 takes
// sample_size · vae_scale_factor) and the size generated, which with
// resolution binning is the closest aspect-ratio bin.
func (p *Pipeline) pixartSize(req Request) (outH, outW, genH, genW int, err error) {
	cfg := &p.pixart.Transformer.Config
	f := p.VAEScaleFactor()
	outH, outW = req.Height, req.Width
	if outH == 0 {
		outH = cfg.SampleSize * f
	}
	if outW == 0 {
		outW = cfg.SampleSize * f
	}
	genH, genW = outH, outW
	if !req.NoResolutionBinning {
		bins, err := binsFor(p.Kind, cfg.SampleSize)
		if err != nil {
			return 0, 0, 0, 0, err
		}
		genH, genW = classifyBin(bins, outH, outW)
	}
	unit := f * cfg.PatchSize
	if outH <= 0 || outW <= 0 || genH%8 != 0 || genW%8 != 0 || genH%unit != 0 || genW%unit != 0 {
		return 0, 0, 0, 0, fmt.Errorf("pipeline: height and width must be positive multiples of 8 and of %d (VAE scale factor %d × patch size %d), got %dx%d",
			unit, f, cfg.PatchSize, genW, genH)
	}
	return outH, outW, genH, genW, nil
}

// denoisePixArt runs the denoising loop on encoded text and decodes the
// result. It owns text.embeds.
func (p *Pipeline) denoisePixArt(ctx context.Context, req Request, text *pixartText, res *Result, phase func(string, bool)) (*Result, error) {
	start := time.Now()
	b, px := p.b, p.pixart
	releaseText := func() {
		nn.Free(b, text.embeds)
		text.embeds = nil
	}
	defer releaseText()
	if px.crossReleased {
		if err := p.reloadTransformer(); err != nil {
			return nil, err
		}
	}
	tr := px.Transformer
	steps := req.Steps
	if steps == 0 {
		steps = pixartDefaultSteps
	}
	if steps < 1 {
		return nil, fmt.Errorf("pipeline: steps must be at least 1, got %d", steps)
	}
	guidance := req.Guidance
	if math.IsNaN(guidance) {
		guidance = pixartDefaultGuidance
	}
	cfg := guidance > 1
	if err := p.checkDecoder(req.Decoder); err != nil {
		return nil, err
	}
	outH, outW, genH, genW, err := p.pixartSize(req)
	if err != nil {
		return nil, err
	}
	f := p.VAEScaleFactor()
	latentShape := tensor.Shape{1, tr.Config.InChannels, genH / f, genW / f}

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
	res.Timesteps = timesteps

	var init *tensor.Host
	if req.Latents != nil {
		if !req.Latents.Shape.Equal(latentShape) {
			return nil, fmt.Errorf("pipeline: given latents have shape %v; a %dx%d generation needs %v", req.Latents.Shape, genW, genH, latentShape)
		}
		init = &tensor.Host{Shape: latentShape.Clone(), Data: append([]float32(nil), req.Latents.Data...)}
	} else {
		init = &tensor.Host{Shape: latentShape.Clone(), Data: gen.Randn(latentShape.Numel())}
	}
	sigma := stepper.InitNoiseSigma()
	for i, v := range init.Data {
		init.Data[i] = v * sigma
	}

	// Micro-conditions: PixArt-α models of sample_size 128 get the
	// generated size and its aspect ratio (float32, as torch.tensor), one
	// row per sample; PixArt-Σ never passes them.
	var resolution, aspect []float64
	if p.Kind == PixArtAlpha && tr.Config.SampleSize == 128 {
		resolution = []float64{float64(genH), float64(genW)}
		aspect = []float64{float64(float32(float64(genH) / float64(genW)))}
	}
	condOpts := func(rows int) pixart.ForwardOpts {
		var o pixart.ForwardOpts
		for range rows {
			if resolution != nil {
				o.Resolution = append(o.Resolution, resolution...)
				o.AspectRatio = append(o.AspectRatio, aspect...)
			}
		}
		return o
	}

	g, err := gate.New(b, req.Gate, gate.Loop{Timesteps: len(timesteps), Steps: steps, Order: stepper.Order(), CFG: cfg})
	if err != nil {
		return nil, err
	}
	defer g.Release()

	// After T-GATE's gate the original feeds the negative embeddings and
	// mask (batch 1); every cross-attention then replays its cache.
	var negEmbeds backend.Tensor
	var negMask *tensor.Host
	defer func() { nn.Free(b, negEmbeds) }()

	phase(PhaseDenoise, false)
	x := b.Upload(init)
	defer func() { nn.Free(b, x) }()
	gs := float32(guidance)
	inC := tr.Config.InChannels
	learnedSigma := tr.Config.Out()/2 == inC
	for i, t := range timesteps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		plan := g.Begin(i)
		if plan.Cross == gate.Reuse && !px.crossReleased && !req.KeepCrossAttention && g.CrossCached() {
			// Past the gate: every cross-attention output comes from the
			// cache, so its weights and the text embeddings can go.
			tr.ReleaseCrossAttention(b)
			px.crossReleased = true
			releaseText()
			nn.Free(b, negEmbeds)
			negEmbeds, negMask = nil, nil
		}
		var in, ehs backend.Tensor
		var mask *tensor.Host
		switch {
		case plan.CFG:
			in, ehs, mask = b.Concat(0, x, x), text.embeds, text.mask
		case cfg && !px.crossReleased:
			if negEmbeds == nil {
				negEmbeds, negMask = text.negative(b)
			}
			in, ehs, mask = b.Reshape(x, x.Shape()...), negEmbeds, negMask
		case cfg:
			in = b.Reshape(x, x.Shape()...)
		default:
			in, ehs, mask = b.Reshape(x, x.Shape()...), text.embeds, text.mask
		}
		scaled := stepper.ScaleModelInput(in, i)
		b.Free(in)
		opts := condOpts(scaled.Shape()[0])
		opts.EncoderMask, opts.Hook = mask, g
		out, err := tr.Forward(b, scaled, []float64{t}, ehs, opts)
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
			var cond backend.Tensor
			eps, cond = guide(b, out, gs)
			nn.Free(b, out, cond)
		}
		if learnedSigma {
			e := b.Slice(eps, 1, 0, inC)
			b.Free(eps)
			eps = e
		}
		step, err := stepper.Step(eps, x, i)
		b.Free(eps)
		if err != nil {
			return nil, fmt.Errorf("step %d (t=%g): %w", i, t, err)
		}
		b.Free(x)
		x = step.Prev
		if step.HasDenoised {
			if steps == 1 {
				// One-step sampling returns pred_original_sample.
				b.Free(x)
				x = step.Denoised
			} else {
				b.Free(step.Denoised)
			}
		}
		if err := b.Err(); err != nil {
			return nil, err
		}
		if req.Progress != nil {
			req.Progress(Progress{Step: i + 1, Total: len(timesteps), Timestep: t, Plan: plan,
				Latents: x, CacheBytes: g.CacheBytes(), Elapsed: time.Since(start)})
		}
	}
	res.Gate = g.Stats()
	g.Release()
	releaseText()

	if res.Latents, err = b.ReadBack(x); err != nil {
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
	img, err := p.decodePixArt(x, req.Decoder, outH, outW)
	if err != nil {
		return nil, err
	}
	phase(PhaseDecode, true)
	res.Image = img
	return res, nil
}

// decodePixArt decodes latents to an image [1, 3, outH, outW] in [0, 1].
// When resolution binning generated another size, the VAE's raw output
// is resized and centre-cropped to outH×outW before (x/2 + 0.5).clamp(0,
// 1), as the pipeline calls resize_and_crop_tensor before postprocess;
// TAESD's image, already in [0, 1], is resized after its clamp.
func (p *Pipeline) decodePixArt(latents backend.Tensor, d Decoder, outH, outW int) (*tensor.Host, error) {
	sh := latents.Shape()
	f := p.VAEScaleFactor()
	if sh[2]*f == outH && sh[3]*f == outW {
		return p.Decode(latents, d)
	}
	if d == DecodeTAESD {
		img, err := p.Decode(latents, d)
		if err != nil {
			return nil, err
		}
		return resizeAndCrop(img, outH, outW), nil
	}
	if p.VAE == nil {
		return nil, fmt.Errorf("pipeline: the VAE decoder was not loaded")
	}
	b := p.b
	sf := b.Upload(tensor.FromData([]float32{float32(p.VAEConfig.ScalingFactor)}, 1))
	z := b.Binary(backend.Div, latents, sf)
	b.Free(sf)
	dec, err := p.VAE.Decode(b, z)
	b.Free(z)
	if err != nil {
		return nil, err
	}
	raw, err := b.ReadBack(dec)
	b.Free(dec)
	if err != nil {
		return nil, err
	}
	img := resizeAndCrop(raw, outH, outW)
	for i, v := range img.Data {
		img.Data[i] = min(max(v*0.5+0.5, 0), 1)
	}
	return img, nil
}

// checkPixArtRequest refuses the settings of the UNet pipelines that the
// PixArt pipelines do not have, naming each.
func (p *Pipeline) checkPixArtRequest(req Request) error {
	var not []string
	if req.GuidanceRescale != 0 {
		not = append(not, "guidance rescale")
	}
	if req.InitImage != nil || req.Mask != nil || req.Strength != 0 {
		not = append(not, "image to image and inpainting")
	}
	if req.DeepCache.Enabled() {
		not = append(not, "DeepCache (the transformer has no skip branches to cache)")
	}
	if req.AdaptiveGuidance != 0 {
		not = append(not, "Adaptive Guidance")
	}
	sd := req.SDXLOptions
	sd.EncodeEmptyNegativePrompt = false // PixArt always encodes the negative prompt
	if sd != (SDXLOptions{}) {
		not = append(not, "the SD-XL options (prompt 2, micro-conditioning)")
	}
	if len(not) > 0 {
		return fmt.Errorf("pipeline: %s has no %s", p.Kind, strings.Join(not, ", "))
	}
	return nil
}
