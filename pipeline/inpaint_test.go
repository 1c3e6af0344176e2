package pipeline

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/rng"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// firstHalf returns batch element 0 of a [2, ...] tensor (the CFG copies
// of the inpainting pipeline's mask inputs are identical).
func firstHalf(h *tensor.Host) *tensor.Host {
	sh := h.Shape.Clone()
	sh[0] = 1
	return &tensor.Host{Shape: sh, Data: h.Data[:len(h.Data)/2]}
}

// TestInpaintParity reproduces runs/inpaint_ddim
// (StableDiffusionInpaintPipeline, 9-channel UNet, DDIM, strength 1.0,
// seed 21): the binarised mask, the masked image, the nearest-downsampled
// latent mask, the masked image's VAE posterior and latents, the two
// draws (noise first, then the VAE sample), every step, the final latents
// and the decoded image.
func TestInpaintParity(t *testing.T) {
	r := loadEditRun(t, "inpaint_ddim")
	p := loadGolden(t, r.folder, LoadOptions{})
	if !p.InpaintingUNet() || p.UNet.Config.InChannels != 9 {
		t.Fatalf("%s: UNet in_channels %d, not recognised as inpainting", r.folder, p.UNet.Config.InChannels)
	}
	req := r.request(t)
	e, _ := prepareForTest(t, p, req)
	ms := e.mask
	golden.AssertClose(t, "image.preprocessed", e.image, r.gold["image.preprocessed"], 1e-7)
	golden.AssertClose(t, "mask.condition", ms.condition, r.gold["mask.condition"], 0)
	golden.AssertClose(t, "mask.masked_image", ms.maskedImage, r.gold["mask.masked_image"], 0)
	golden.AssertClose(t, "mask.latent_mask", ms.latentMask, firstHalf(r.gold["mask.latent_mask"]), 0)
	if e.imageLatents != nil || len(e.encodes) != 1 || len(e.draws) != 2 {
		t.Fatalf("strength 1 with a 9-channel UNet: image encoded %v, %d encodes, %d draws; want no, 1, 2",
			e.imageLatents != nil, len(e.encodes), len(e.draws))
	}
	golden.AssertClose(t, "vae_encode.00.input", ms.maskedImage, r.gold["vae_encode.00.input"], 0)
	golden.AssertClose(t, "vae_encode.00.mean", e.encodes[0].mean, r.gold["vae_encode.00.mean"], 1e-4)
	golden.AssertClose(t, "vae_encode.00.std", e.encodes[0].std, r.gold["vae_encode.00.std"], 1e-4)
	golden.AssertClose(t, "noise.00", e.draws[0], r.gold["noise.00"], 0)
	golden.AssertClose(t, "noise.01", e.draws[1], r.gold["noise.01"], 0)
	golden.AssertClose(t, "mask.masked_image_latents", ms.maskedLatents, firstHalf(r.gold["mask.masked_image_latents"]), 1e-4)
	golden.AssertClose(t, "init.latents", e.init, r.gold["init.latents"], 0)
	checkSteps(t, p, r, req)
}

// TestInpaintRefusesTextToImage checks that an inpainting model without a
// mask is refused with a message naming what to give.
func TestInpaintRefusesTextToImage(t *testing.T) {
	p := loadGolden(t, "sd15_inpaint_tiny_pipeline", LoadOptions{SkipVAE: true})
	_, err := p.Generate(context.Background(), Request{Prompt: "a cat", Steps: 2, Guidance: 7.5, Decoder: DecodeNone})
	if err == nil || !strings.Contains(err.Error(), "inpainting UNet") || !strings.Contains(err.Error(), "Request.Mask") {
		t.Fatalf("error %v; want the inpainting-UNet refusal", err)
	}
}

// TestInpaintBlend4Channel checks the latent-blending form of inpainting
// with an ordinary 4-channel UNet (sd15_tiny_pipeline, DDIM, strength 1,
// the run's image and mask) after the first step by hand: in the kept
// region (latent mask 0) the latents are add_noise(image_latents, noise,
// t_1) = √ᾱ·image_latents + √(1−ᾱ)·noise (ᾱ from a float64 evaluation of
// SD's schedule; noise the seed's second draw, after the image's VAE
// sample); in the repaint region they are the first step of text-to-image
// started from that noise; after the last step the kept region is the
// image latents themselves.
func TestInpaintBlend4Channel(t *testing.T) {
	r := loadEditRun(t, "inpaint_ddim")
	p := loadGolden(t, "sd15_tiny_pipeline", LoadOptions{SkipVAE: true})
	req := r.request(t)
	req.Steps, req.Decoder = 3, DecodeNone
	e, _ := prepareForTest(t, p, req)
	if len(e.draws) != 3 || e.imageLatents == nil {
		t.Fatalf("4-channel inpainting made %d draws (image encoded %v); want 3 (image, noise, masked image)", len(e.draws), e.imageLatents != nil)
	}
	n := e.imageLatents.Shape.Numel()
	gen := rng.NewTorch(req.Seed)
	gen.Randn(n)
	noise := gen.Randn(n)

	var steps []*tensor.Host
	req.Progress = func(pr Progress) { steps = append(steps, golden.ReadBack(t, p.b, pr.Latents)) }
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	t2i := req
	t2i.EditOptions, t2i.Progress = EditOptions{}, nil
	t2i.Latents = &tensor.Host{Shape: e.imageLatents.Shape, Data: noise}
	var t2iStep0 *tensor.Host
	t2i.Progress = func(pr Progress) {
		if t2iStep0 == nil {
			t2iStep0 = golden.ReadBack(t, p.b, pr.Latents)
		}
	}
	if _, err := p.Generate(context.Background(), t2i); err != nil {
		t.Fatal(err)
	}
	ac := sdAlphasCumprod64()
	a := ac[int(res.Timesteps[1])]
	lm := e.mask.latentMask.Data
	plane := len(lm)
	var kept, repaint int
	var dKept, dRepaint, dLast float64
	for i := 0; i < n; i++ {
		if lm[i%plane] == 0 {
			want := math.Sqrt(a)*float64(e.imageLatents.Data[i]) + math.Sqrt(1-a)*float64(noise[i])
			dKept = math.Max(dKept, math.Abs(float64(steps[0].Data[i])-want))
			dLast = math.Max(dLast, math.Abs(float64(res.Latents.Data[i]-e.imageLatents.Data[i])))
			kept++
		} else {
			dRepaint = math.Max(dRepaint, math.Abs(float64(steps[0].Data[i]-t2iStep0.Data[i])))
			repaint++
		}
	}
	t.Logf("kept %d, repaint %d elements; step 0 kept max abs %.3g, repaint vs text2img %.3g; last step kept %.3g",
		kept, repaint, dKept, dRepaint, dLast)
	if kept == 0 || repaint != 63*4 {
		t.Fatalf("latent mask has %d repaint elements, want 63 per channel", repaint)
	}
	if dKept > 1e-5 || dRepaint > 1e-5 || dLast != 0 {
		t.Errorf("blend differs: kept %.3g, repaint %.3g, last %.3g", dKept, dRepaint, dLast)
	}
}

// TestInpaintStrengthBelowOne checks inpainting at strength 0.75 with the
// Euler scheduler: the generator's order (init image's VAE sample, noise,
// masked image's VAE sample), the start at evaluation t_start = 3 and the
// initial latents image_latents + σ_3·noise (no init_noise_sigma factor).
func TestInpaintStrengthBelowOne(t *testing.T) {
	r := loadEditRun(t, "inpaint_ddim")
	p := loadGolden(t, r.folder, LoadOptions{SkipVAE: true})
	req := r.request(t)
	req.Scheduler, req.Strength = sched.Euler, 0.75
	e, st := prepareForTest(t, p, req)
	if e.start != 3 || len(e.encodes) != 2 || len(e.draws) != 3 {
		t.Fatalf("start %d, %d encodes, %d draws; want 3, 2, 3", e.start, len(e.encodes), len(e.draws))
	}
	gen := rng.NewTorch(req.Seed)
	n := e.init.Shape.Numel()
	eps := gen.Randn(n)
	noise := gen.Randn(n)
	sigma := float64(st.Sigmas()[3])
	var d float64
	for i := range e.init.Data {
		img := 0.18215 * (float64(e.encodes[0].mean.Data[i]) + float64(e.encodes[0].std.Data[i])*float64(eps[i]))
		d = math.Max(d, math.Abs(float64(e.init.Data[i])-(img+sigma*float64(noise[i]))))
	}
	t.Logf("init latents vs image_latents + σ_3·noise: max abs %.3g", d)
	if d > 1e-4 {
		t.Errorf("init latents differ from image_latents + σ_3·noise by %.3g", d)
	}
	req.Decoder = DecodeNone
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Timesteps) != 7 {
		t.Errorf("%d evaluations, want int(10·0.75) = 7", len(res.Timesteps))
	}
}

// TestInpaintGate runs the 9-channel inpainting model with T-GATE v2
// (gate_step 3): the first three evaluations guide with a batch of 2, the
// rest run with batch 1 (one copy of the mask inputs) on the cached
// cross-attention, and the result differs from the ungated run's by less
// than that run's own scale.
func TestInpaintGate(t *testing.T) {
	r := loadEditRun(t, "inpaint_ddim")
	p := loadGolden(t, r.folder, LoadOptions{SkipVAE: true})
	req := r.request(t)
	req.Steps, req.Decoder = 6, DecodeNone
	plain, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	req.Gate = gate.Config{Mode: gate.V2, GateStep: 3, SPInterval: 2, FIInterval: 1, WarmUp: 1}
	var plans []gate.StepPlan
	req.Progress = func(pr Progress) { plans = append(plans, pr.Plan) }
	gated, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for i, pl := range plans {
		if pl.CFG != (i < 3) || (i >= 3 && pl.Cross != gate.Reuse) {
			t.Errorf("evaluation %d: plan %+v", i, pl)
		}
	}
	if gated.Gate.CrossReused == 0 {
		t.Errorf("no cross-attention reused: %+v", gated.Gate)
	}
	abs, rel := golden.Diff(gated.Latents, plain.Latents)
	t.Logf("gated vs ungated final latents: max abs %.3g, relative %.3g", abs, rel)
	if abs == 0 || rel > 1 || math.IsNaN(rel) {
		t.Errorf("gated run differs from the ungated one by %.3g (relative %.3g)", abs, rel)
	}
}
