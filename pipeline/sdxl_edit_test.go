package pipeline

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/rng"
	"github.com/tgate-web/tgate/tensor"
)

// sdxlTinyFolder is the tiny SD-XL pipeline of ../shared/golden
// (README-sdxl-pixart.md): Euler, leading spacing with steps_offset 1
// (901, 801, ..., 1 for 10 steps), scaling_factor 0.13025, 32x32 pixels
// to 16x16 latents.
const sdxlTinyFolder = "sdxl_tiny_pipeline"

// sdxlTestImage is a smooth 32x32 colour pattern in [0, 1].
func sdxlTestImage() *tensor.Host {
	img := tensor.New(1, 3, 32, 32)
	for c := 0; c < 3; c++ {
		for y := 0; y < 32; y++ {
			for x := 0; x < 32; x++ {
				v := 0.5 + 0.45*math.Sin(float64(x)/5+float64(c))*math.Cos(float64(y)/7-float64(c))
				img.Data[(c*32+y)*32+x] = float32(v)
			}
		}
	}
	return img
}

// sdxlLeftHalfMask repaints the left half of a 32x32 image (latent
// columns 0–7 after the nearest downsampling to 16x16).
func sdxlLeftHalfMask() *tensor.Host {
	m := tensor.New(1, 1, 32, 32)
	for y := 0; y < 32; y++ {
		for x := 0; x < 16; x++ {
			m.Data[y*32+x] = 1
		}
	}
	return m
}

// eulerSigma is σ(t) = √((1 − ᾱ_t)/ᾱ_t) of the scaled_linear schedule
// β = linspace(√0.00085, √0.012, 1000)² at an integer timestep, computed
// here in float64 from the scheduler config's definition.
func eulerSigma(t int) float64 {
	lo, hi := math.Sqrt(0.00085), math.Sqrt(0.012)
	ac := 1.0
	for i := 0; i <= t; i++ {
		b := lo + (hi-lo)*float64(i)/999
		ac *= 1 - b*b
	}
	return math.Sqrt((1 - ac) / ac)
}

// sdxlImageLatents computes 0.13025 · (mean + std · ε) of the VAE
// posterior of 2·img − 1, with ε the next draw of gen: what
// retrieve_latents(vae.encode(image), generator) · scaling_factor gives.
func sdxlImageLatents(t *testing.T, p *Pipeline, img *tensor.Host, gen *rng.Torch) *tensor.Host {
	t.Helper()
	enc, err := p.vaeEncoder()
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.New(img.Shape...)
	for i, v := range img.Data {
		x.Data[i] = 2*v - 1
	}
	b := p.b
	in := b.Upload(x)
	dist, err := enc.Encode(b, in)
	b.Free(in)
	if err != nil {
		t.Fatal(err)
	}
	defer dist.Release(b)
	sd := dist.Std(b)
	mean, std := golden.ReadBack(t, b, dist.Mean), golden.ReadBack(t, b, sd)
	b.Free(sd)
	eps := gen.Randn(mean.Shape.Numel())
	out := tensor.New(mean.Shape...)
	for i := range out.Data {
		out.Data[i] = float32(0.13025 * (float64(mean.Data[i]) + float64(std.Data[i])*float64(eps[i])))
	}
	return out
}

// TestSDXLImg2ImgPreparation checks, with values computed here, SD-XL
// image to image at its default strength 0.3 (10 steps: int(10·0.3) = 3
// steps run, at 201, 101, 1) and inpainting at its default 0.9999 (9
// steps run, from 801): the generator's draw order (the image's VAE
// sample, then the noise) and the initial latents
// add_noise(image_latents, noise, t₀) = image_latents + σ(t₀)·noise with
// Euler's σ.
func TestSDXLImg2ImgPreparation(t *testing.T) {
	p := loadGolden(t, sdxlTinyFolder, LoadOptions{SkipVAE: true})
	const seed = 31
	cases := []struct {
		name     string
		mask     *tensor.Host
		strength float64
		tStart   int
		t0       int
	}{
		{"image to image", nil, DefaultSDXLImg2ImgStrength, 7, 201},
		{"inpainting", sdxlLeftHalfMask(), DefaultSDXLInpaintStrength, 1, 801},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := Request{Prompt: "a red fox", Steps: 10, Guidance: DefaultGuidance, Seed: seed, Decoder: DecodeNone}
			req.InitImage, req.Mask = sdxlTestImage(), c.mask
			e, st := prepareForTest(t, p, req)
			if e.strength != c.strength || e.tStart != c.tStart || e.start != c.tStart {
				t.Fatalf("strength %g, t_start %d, first evaluation %d; want %g, %d, %d", e.strength, e.tStart, e.start, c.strength, c.tStart, c.tStart)
			}
			if got := st.Timesteps()[e.start]; got != float64(c.t0) {
				t.Fatalf("first kept timestep %g, want %d", got, c.t0)
			}
			gen := rng.NewTorch(seed)
			imageLatents := sdxlImageLatents(t, p, req.InitImage, gen)
			noise := gen.Randn(imageLatents.Shape.Numel())
			sigma := eulerSigma(c.t0)
			if got := float64(st.Sigmas()[e.start]); math.Abs(got-sigma) > 1e-6*sigma {
				t.Errorf("σ at t=%d: scheduler %g, computed %g", c.t0, got, sigma)
			}
			want := tensor.New(imageLatents.Shape...)
			for i, v := range imageLatents.Data {
				want.Data[i] = float32(float64(v) + sigma*float64(noise[i]))
			}
			golden.AssertClose(t, "image latents", e.imageLatents, imageLatents, 1e-6)
			golden.AssertClose(t, "initial latents", e.init, want, 1e-6)
			if c.mask != nil {
				// The masked image's VAE sample is the third draw.
				masked := tensor.New(req.InitImage.Shape...)
				for i, v := range req.InitImage.Data {
					if c.mask.Data[i%(32*32)] < 0.5 {
						masked.Data[i] = v
					} else {
						masked.Data[i] = 0.5 // 2·0.5 − 1 = 0: the masked image's zeros
					}
				}
				golden.AssertClose(t, "masked image latents", e.mask.maskedLatents, sdxlImageLatents(t, p, masked, gen), 1e-6)
			}
		})
	}
}

// TestSDXLImg2ImgStrengthOne checks that SD-XL image to image at strength
// 1.0 with Euler is text-to-image started from add_noise(image_latents,
// noise, σ₀) = image_latents + σ₀·noise (divided by init_noise_sigma,
// which text-to-image multiplies back), computed here from the seed's
// first two draws.
func TestSDXLImg2ImgStrengthOne(t *testing.T) {
	p := loadGolden(t, sdxlTinyFolder, LoadOptions{SkipVAE: true})
	req := Request{Prompt: "a lighthouse at dusk", Steps: 4, Guidance: DefaultGuidance, Seed: 5, Decoder: DecodeNone}
	req.InitImage, req.Strength = sdxlTestImage(), 1
	gen := rng.NewTorch(req.Seed)
	imageLatents := sdxlImageLatents(t, p, req.InitImage, gen)
	noise := gen.Randn(imageLatents.Shape.Numel())
	_, st := prepareForTest(t, p, req)
	sigma0, initSigma := float64(st.Sigmas()[0]), float64(st.InitNoiseSigma())
	start := tensor.New(imageLatents.Shape...)
	for i, v := range imageLatents.Data {
		start.Data[i] = float32((float64(v) + sigma0*float64(noise[i])) / initSigma)
	}
	img, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	t2i := req
	t2i.EditOptions = EditOptions{}
	t2i.Latents = start
	txt, err := p.Generate(context.Background(), t2i)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(img.Timesteps) != fmt.Sprint(txt.Timesteps) || len(img.Timesteps) != 4 {
		t.Fatalf("timesteps %v, text-to-image %v", img.Timesteps, txt.Timesteps)
	}
	golden.AssertClose(t, "img2img strength 1 vs text2img from add_noise", img.Latents, txt.Latents, 1e-5)
}

// TestSDXLEditGateDeepCacheAndInpaint runs the tiny SD-XL pipeline: image
// to image at strength 0.6 with T-GATE (gate 2, counted over the 6 steps
// that run) and DeepCache, and inpainting with its 4-channel UNet, whose
// known region ends as the image latents themselves (computed here).
// Both differ from text-to-image with the same seed.
func TestSDXLEditGateDeepCacheAndInpaint(t *testing.T) {
	p := loadGolden(t, sdxlTinyFolder, LoadOptions{})
	base := Request{Prompt: "a red fox in the snow", Steps: 10, Guidance: DefaultGuidance, Seed: 11, Decoder: DecodeVAE}
	txt, err := p.Generate(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	differs := func(name string, got *tensor.Host) {
		if abs, _ := golden.Diff(got, txt.Latents); abs < 1e-3 {
			t.Errorf("%s: latents within %.3g of text-to-image", name, abs)
		}
	}

	t.Run("img2img T-GATE DeepCache", func(t *testing.T) {
		req := base
		req.InitImage, req.Strength = sdxlTestImage(), 0.6
		req.Gate = gate.Config{Mode: gate.V2, GateStep: 2, SPInterval: 1, FIInterval: 1, WarmUp: 0}
		req.DeepCache = DeepCache{Interval: 2, Branch: 0}
		var plans []gate.StepPlan
		req.Progress = func(pr Progress) { plans = append(plans, pr.Plan) }
		res, err := p.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if want := []float64{501, 401, 301, 201, 101, 1}; !slices.Equal(res.Timesteps, want) {
			t.Fatalf("timesteps %v, want %v (int(10·0.6) = 6 steps)", res.Timesteps, want)
		}
		for i, pl := range plans {
			if pl.CurStep != i || pl.CFG != (i < 2) || (i > 1 && pl.Cross != gate.Reuse) {
				t.Errorf("evaluation %d: plan %+v; want cur_step %d, guidance %v, cross-attention reused after the gate", i, pl, i, i < 2)
			}
		}
		if res.DeepCache.Partials == 0 {
			t.Errorf("DeepCache made no partial evaluation: %+v", res.DeepCache)
		}
		if res.Image == nil || !res.Image.Shape.Equal(tensor.Shape{1, 3, 32, 32}) {
			t.Fatalf("image %v", res.Image)
		}
		differs("img2img", res.Latents)
	})

	t.Run("inpainting 4-channel", func(t *testing.T) {
		req := base
		req.InitImage, req.Mask = sdxlTestImage(), sdxlLeftHalfMask()
		res, err := p.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Timesteps) != 9 || res.Timesteps[0] != 801 {
			t.Fatalf("timesteps %v; want 801, ..., 1 (default strength 0.9999: 9 of 10 steps)", res.Timesteps)
		}
		imageLatents := sdxlImageLatents(t, p, req.InitImage, rng.NewTorch(req.Seed))
		var keepDiff, repaintDiff float64
		for c := 0; c < 4; c++ {
			for y := 0; y < 16; y++ {
				for x := 0; x < 16; x++ {
					i := (c*16+y)*16 + x
					d := math.Abs(float64(res.Latents.Data[i] - imageLatents.Data[i]))
					if x < 8 {
						repaintDiff = math.Max(repaintDiff, d)
					} else {
						keepDiff = math.Max(keepDiff, d)
					}
				}
			}
		}
		t.Logf("known region vs image latents: max abs %.3g; repainted region: %.3g", keepDiff, repaintDiff)
		if keepDiff > 1e-6*golden.MaxAbs(imageLatents) {
			t.Errorf("known region differs from the image latents by %.3g", keepDiff)
		}
		if repaintDiff < 1e-2 {
			t.Errorf("repainted region within %.3g of the image latents", repaintDiff)
		}
		differs("inpainting", res.Latents)
	})
}

// TestSDXLEditTimeIDs checks the editing pipelines' _get_add_time_ids
// against values written out from diffusers' definition
// (StableDiffusionXLImg2ImgPipeline, v0.30.3): negative sizes default one
// by one, the negative crop offset is unused without
// requires_aesthetics_score, and with it the aesthetic scores (6.0 and
// 2.5 by default) take the target size's place.
func TestSDXLEditTimeIDs(t *testing.T) {
	cases := []struct {
		name      string
		opt       SDXLOptions
		aesthetic bool
		pos, neg  []float64
	}{
		{"defaults", SDXLOptions{}, false, []float64{32, 32, 0, 0, 32, 32}, []float64{32, 32, 0, 0, 32, 32}},
		{"only the negative original size", SDXLOptions{NegativeOriginalSize: ImageSize{512, 256}},
			false, []float64{32, 32, 0, 0, 32, 32}, []float64{512, 256, 0, 0, 32, 32}},
		{"negative crop unused", SDXLOptions{CropsCoordsTopLeft: CropOffset{4, 2}, NegativeCropsCoordsTopLeft: CropOffset{10, 20}, TargetSize: ImageSize{64, 48}},
			false, []float64{32, 32, 4, 2, 64, 48}, []float64{32, 32, 4, 2, 64, 48}},
		{"aesthetic defaults", SDXLOptions{OriginalSize: ImageSize{1024, 768}}, true,
			[]float64{1024, 768, 0, 0, 6}, []float64{1024, 768, 0, 0, 2.5}},
		{"aesthetic scores and negative crop", SDXLOptions{AestheticScore: 7.5, NegativeAestheticScore: 1, CropsCoordsTopLeft: CropOffset{8, 0}, NegativeCropsCoordsTopLeft: CropOffset{0, 16}},
			true, []float64{32, 32, 8, 0, 7.5}, []float64{32, 32, 0, 16, 1}},
	}
	for _, c := range cases {
		pos, neg := c.opt.editTimeIDs(32, 32, c.aesthetic)
		if !slices.Equal(pos, c.pos) || !slices.Equal(neg, c.neg) {
			t.Errorf("%s: add_time_ids %v / negative %v; want %v / %v", c.name, pos, neg, c.pos, c.neg)
		}
	}

	p := loadGolden(t, sdxlTinyFolder, LoadOptions{SkipVAE: true})
	var warnings []string
	warn := func(w string) { warnings = append(warnings, w) }
	o := SDXLOptions{NegativeCropsCoordsTopLeft: CropOffset{1, 1}, AestheticScore: 7}
	if _, _, err := p.sdxlTimeIDs(&o, true, 32, 32, warn); err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "aesthetic") || !strings.Contains(warnings[1], "negative crops") {
		t.Errorf("warnings %q; want the unused aesthetic score and negative crop offset", warnings)
	}
}

// sdxlAestheticFolder links the tiny SD-XL pipeline's files into a
// temporary folder whose model_index.json sets requires_aesthetics_score.
func sdxlAestheticFolder(t *testing.T) string {
	t.Helper()
	src := golden.Dir(t, "golden", sdxlTinyFolder)
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "model_index.json" {
			continue
		}
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(src, "model_index.json"))
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), `"force_zeros_for_empty_prompt"`, `"requires_aesthetics_score": true, "force_zeros_for_empty_prompt"`, 1))
	if err := os.WriteFile(filepath.Join(dir, "model_index.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSDXLRequiresAestheticsScore checks requires_aesthetics_score: the
// tiny UNet's add_embedding takes 6·8 + 32 = 80 values, so the flag (5
// time ids, 72 values) is refused at load with the fix named; and a
// model with the flag refuses text-to-image, which diffusers'
// StableDiffusionXLPipeline cannot condition on an aesthetic score.
func TestSDXLRequiresAestheticsScore(t *testing.T) {
	dir := sdxlAestheticFolder(t)
	if _, err := Load(cpu.New(), dir, LoadOptions{SkipVAE: true}); err == nil || !strings.Contains(err.Error(), "set requires_aesthetics_score to false") {
		t.Errorf("load error %v; want one naming requires_aesthetics_score", err)
	}
	p := loadGolden(t, sdxlTinyFolder, LoadOptions{SkipVAE: true})
	p.folder = hub.Dir(dir)
	if _, _, err := p.sdxlTimeIDs(&SDXLOptions{}, false, 32, 32, func(string) {}); err == nil || !strings.Contains(err.Error(), "give an init image") {
		t.Errorf("text-to-image with requires_aesthetics_score: error %v", err)
	}
	pos, neg, err := p.sdxlTimeIDs(&SDXLOptions{}, true, 32, 32, func(string) {})
	if err != nil || !slices.Equal(pos, []float64{32, 32, 0, 0, 6}) || !slices.Equal(neg, []float64{32, 32, 0, 0, 2.5}) {
		t.Errorf("image to image with requires_aesthetics_score: %v / %v, %v", pos, neg, err)
	}
}
