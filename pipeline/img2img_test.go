package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/rng"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// editRun is an img2img or inpainting run of ../shared/golden/runs
// (README-img2img-inpaint-lora.md).
type editRun struct {
	name     string
	folder   string // pipeline folder under ../shared/golden
	prompt   string
	steps    int
	guidance float64
	strength float64
	seed     uint64
	gold     map[string]*tensor.Host
	bytes    map[string]golden.ByteTensor
}

// loadEditRun reads the run's JSON call and its tensors (float and U8).
func loadEditRun(t *testing.T, name string) *editRun {
	t.Helper()
	dir := golden.Dir(t, "golden", "runs")
	data, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var js struct {
		PipelineFolder string `json:"pipeline_folder"`
		Call           struct {
			Prompt    string  `json:"prompt"`
			Steps     int     `json:"num_inference_steps"`
			Guidance  float64 `json:"guidance_scale"`
			Strength  float64 `json:"strength"`
			Generator string  `json:"generator"`
		} `json:"call"`
	}
	if err := json.Unmarshal(data, &js); err != nil {
		t.Fatalf("%s.json: %v", name, err)
	}
	m := regexp.MustCompile(`manual_seed\((\d+)\)`).FindStringSubmatch(js.Call.Generator)
	if m == nil {
		t.Fatalf("%s.json: generator %q names no seed", name, js.Call.Generator)
	}
	seed, _ := strconv.ParseUint(m[1], 10, 64)
	st := filepath.Join(dir, name+".safetensors")
	return &editRun{
		name: name, folder: strings.TrimPrefix(js.PipelineFolder, "shared/"), prompt: js.Call.Prompt,
		steps: js.Call.Steps, guidance: js.Call.Guidance, strength: js.Call.Strength, seed: seed,
		gold: golden.Tensors(t, st), bytes: golden.Bytes(t, st),
	}
}

// u8Image converts the run's input.image_uint8 (HWC) to [1, 3, H, W] / 255.
func u8Image(t *testing.T, b golden.ByteTensor) *tensor.Host {
	t.Helper()
	if b.Shape.Rank() != 3 || b.Shape[2] != 3 {
		t.Fatalf("image_uint8 has shape %v", b.Shape)
	}
	h, w := b.Shape[0], b.Shape[1]
	out := tensor.New(1, 3, h, w)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for c := 0; c < 3; c++ {
				out.Data[(c*h+y)*w+x] = float32(b.Data[(y*w+x)*3+c]) / 255
			}
		}
	}
	return out
}

// u8Mask converts the run's input.mask_uint8 (HW) to [1, 1, H, W] / 255.
func u8Mask(t *testing.T, b golden.ByteTensor) *tensor.Host {
	t.Helper()
	if b.Shape.Rank() != 2 {
		t.Fatalf("mask_uint8 has shape %v", b.Shape)
	}
	out := tensor.New(1, 1, b.Shape[0], b.Shape[1])
	for i, v := range b.Data {
		out.Data[i] = float32(v) / 255
	}
	return out
}

// request is the run's call as a Request (DDIM, as every edit run uses).
func (r *editRun) request(t *testing.T) Request {
	req := Request{Prompt: r.prompt, Steps: r.steps, Guidance: r.guidance, Seed: r.seed, Scheduler: sched.DDIM,
		Decoder: DecodeVAE}
	req.InitImage = u8Image(t, r.bytes["input.image_uint8"])
	req.Strength = r.strength
	if m, ok := r.bytes["input.mask_uint8"]; ok {
		req.Mask = u8Mask(t, m)
	}
	return req
}

// prepareForTest runs what Generate does before the loop for req: the
// scheduler with the seed's generator, SetTimesteps and prepareEdit.
func prepareForTest(t *testing.T, p *Pipeline, req Request) (*edit, sched.Stepper[backend.Tensor]) {
	t.Helper()
	gen := rng.NewTorch(req.Seed)
	name := req.Scheduler
	if name == "" {
		name, _ = sched.NameFromConfig(p.Scheduler)
	}
	st, err := sched.NewStepper[backend.Tensor](name, p.Scheduler, sched.Options{TimestepSpacing: req.TimestepSpacing},
		&sched.BackendOps{B: p.b, Noise: gen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Release)
	if err := st.SetTimesteps(req.Steps); err != nil {
		t.Fatal(err)
	}
	h, w, err := editSize(req)
	if err != nil {
		t.Fatal(err)
	}
	shape, err := p.LatentShape(h, w)
	if err != nil {
		t.Fatal(err)
	}
	e, err := p.prepareEdit(req, st, gen, req.Steps, shape)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.release(p.b) })
	return e, st
}

// checkSteps runs req and compares every step's latents, the final
// latents and the decoded image with the run's.
func checkSteps(t *testing.T, p *Pipeline, r *editRun, req Request) *Result {
	t.Helper()
	var steps []*tensor.Host
	req.Progress = func(pr Progress) {
		steps = append(steps, golden.ReadBack(t, p.b, pr.Latents))
	}
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for i, ts := range res.Timesteps {
		want := r.gold[fmt.Sprintf("step.%02d.t", i)]
		if want == nil || float32(ts) != want.Data[0] {
			t.Fatalf("evaluation %d at t=%g, run has %v", i, ts, want)
		}
	}
	if r.gold[fmt.Sprintf("step.%02d.t", len(res.Timesteps))] != nil {
		t.Fatalf("%d evaluations; the run has more", len(res.Timesteps))
	}
	for i, h := range steps {
		want := r.gold[fmt.Sprintf("step.%02d.latents", i)]
		abs, rel := golden.Diff(h, want)
		t.Logf("step %02d latents: max abs %.3g, relative %.3g", i, abs, rel)
		if rel > 1e-4 {
			t.Errorf("step %02d latents differ: max abs %.3g, relative %.3g", i, abs, rel)
		}
	}
	golden.AssertClose(t, "final.latents", res.Latents, r.gold["final.latents"], 1e-4)
	golden.AssertClose(t, "final.image_np", res.Image, nhwcToNCHW(r.gold["final.image_np"]), 1e-4)
	return res
}

// TestImageFromPNG checks the PNG helpers against the runs' own uint8
// arrays (the PNG files are PIL's encodings of them) and PIL's 'L'
// conversion of a colour image against ITU-R 601-2 luma.
func TestImageFromPNG(t *testing.T) {
	r := loadEditRun(t, "inpaint_ddim")
	img, err := ImageFromPNG(r.bytes["input.image_png"].Data)
	if err != nil {
		t.Fatal(err)
	}
	want := u8Image(t, r.bytes["input.image_uint8"])
	if abs, _ := golden.Diff(img, want); !img.Shape.Equal(want.Shape) || abs != 0 {
		t.Fatalf("ImageFromPNG: shape %v, max abs %g vs image_uint8/255", img.Shape, abs)
	}
	mask, err := MaskFromPNG(r.bytes["input.mask_png"].Data)
	if err != nil {
		t.Fatal(err)
	}
	wantMask := u8Mask(t, r.bytes["input.mask_uint8"])
	if abs, _ := golden.Diff(mask, wantMask); !mask.Shape.Equal(wantMask.Shape) || abs != 0 {
		t.Fatalf("MaskFromPNG: shape %v, max abs %g vs mask_uint8/255", mask.Shape, abs)
	}
	// A colour PNG as a mask: L within rounding of
	// R·299/1000 + G·587/1000 + B·114/1000.
	colour, err := MaskFromPNG(r.bytes["input.image_png"].Data)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range colour.Data {
		plane := len(colour.Data)
		R, G, B := float64(want.Data[i]*255), float64(want.Data[plane+i]*255), float64(want.Data[2*plane+i]*255)
		luma := (299*math.Round(R) + 587*math.Round(G) + 114*math.Round(B)) / 1000
		if d := math.Abs(float64(v)*255 - luma); d > 0.51 {
			t.Fatalf("pixel %d: L %g, ITU-R 601-2 luma %g", i, float64(v)*255, luma)
		}
	}
	if _, err := ImageFromPNG([]byte("not a png")); err == nil {
		t.Error("ImageFromPNG accepted garbage")
	}
}

// TestImg2ImgParity reproduces runs/img2img_ddim_s06
// (StableDiffusionImg2ImgPipeline, DDIM, strength 0.6, seed 7): the
// preprocessed image, the VAE posterior, the generator's two draws, the
// image latents, the noised initial latents, every step, the final latents
// and the decoded image.
func TestImg2ImgParity(t *testing.T) {
	r := loadEditRun(t, "img2img_ddim_s06")
	p := loadGolden(t, r.folder, LoadOptions{})
	req := r.request(t)
	e, _ := prepareForTest(t, p, req)
	if e.tStart != 4 || e.start != 4 {
		t.Errorf("t_start %d, start %d; the run skips 4 of 10 steps", e.tStart, e.start)
	}
	golden.AssertClose(t, "image.preprocessed", e.image, r.gold["image.preprocessed"], 1e-7)
	if len(e.encodes) != 1 || len(e.draws) != 2 {
		t.Fatalf("%d VAE encodes and %d draws; the run has 1 and 2", len(e.encodes), len(e.draws))
	}
	golden.AssertClose(t, "vae_encode.00.mean", e.encodes[0].mean, r.gold["vae_encode.00.mean"], 1e-4)
	golden.AssertClose(t, "vae_encode.00.std", e.encodes[0].std, r.gold["vae_encode.00.std"], 1e-4)
	for i, d := range e.draws {
		golden.AssertClose(t, fmt.Sprintf("noise.%02d", i), d, r.gold[fmt.Sprintf("noise.%02d", i)], 0)
	}
	golden.AssertClose(t, "image_latents", e.imageLatents, r.gold["image_latents"], 1e-4)
	golden.AssertClose(t, "init.latents", e.init, r.gold["init.latents"], 1e-4)
	res := checkSteps(t, p, r, req)
	if len(res.Warnings) != 0 {
		t.Errorf("unexpected warnings %v", res.Warnings)
	}

	// Request.Latents with an init image is the noise ε: given the run's
	// second draw, the seed supplies only the VAE sample, and the run is
	// reproduced again.
	t.Run("latents are the noise", func(t *testing.T) {
		req := r.request(t)
		req.Latents = r.gold["noise.01"]
		e, _ := prepareForTest(t, p, req)
		if len(e.draws) != 1 {
			t.Fatalf("%d generator draws with the noise given; want 1 (the VAE sample)", len(e.draws))
		}
		golden.AssertClose(t, "init.latents", e.init, r.gold["init.latents"], 1e-4)
		checkSteps(t, p, r, req)
	})
}

// TestImg2ImgStrengthOne checks, with the Euler scheduler (σ-indexed,
// init_noise_sigma ≠ 1), that img2img at strength 1.0 is text-to-image
// started from add_noise(image_latents, noise, σ_0) = image_latents +
// σ_0·noise (README-img2img-inpaint-lora.md: "strength 1.0 is not pure
// noise"), where noise is the seed's second draw, computed here.
func TestImg2ImgStrengthOne(t *testing.T) {
	r := loadEditRun(t, "img2img_ddim_s06")
	p := loadGolden(t, r.folder, LoadOptions{SkipVAE: true})
	req := r.request(t)
	req.Scheduler, req.Strength, req.Steps, req.Decoder = sched.Euler, 1, 4, DecodeNone
	e, st := prepareForTest(t, p, req)
	if e.start != 0 {
		t.Fatalf("strength 1 starts at evaluation %d", e.start)
	}
	gen := rng.NewTorch(req.Seed)
	gen.Randn(e.imageLatents.Shape.Numel()) // the VAE sample
	noise := gen.Randn(e.imageLatents.Shape.Numel())
	sigma0 := float64(st.Sigmas()[0])
	start := tensor.New(e.imageLatents.Shape...)
	for i, v := range e.imageLatents.Data {
		// text-to-image multiplies its latents by init_noise_sigma.
		start.Data[i] = float32((float64(v) + sigma0*float64(noise[i])) / float64(st.InitNoiseSigma()))
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
	if fmt.Sprint(img.Timesteps) != fmt.Sprint(txt.Timesteps) {
		t.Fatalf("timesteps %v, text-to-image %v", img.Timesteps, txt.Timesteps)
	}
	golden.AssertClose(t, "img2img strength 1 vs text2img from add_noise", img.Latents, txt.Latents, 1e-5)
}

// TestImg2ImgGateAndSchedulers runs img2img at strength 0.6 with the σ
// schedulers and PNDM: the evaluations are the last ones of the full
// schedule, and T-GATE's gate counts the steps that run (gate_step 2:
// guidance on the first two evaluations, cross-attention reused after).
func TestImg2ImgGateAndSchedulers(t *testing.T) {
	r := loadEditRun(t, "img2img_ddim_s06")
	p := loadGolden(t, r.folder, LoadOptions{SkipVAE: true})
	for _, name := range []sched.Name{sched.EulerAncestral, sched.DPMSolver, sched.PNDM} {
		t.Run(string(name), func(t *testing.T) {
			req := r.request(t)
			req.Scheduler, req.Strength, req.Decoder = name, 0.6, DecodeNone
			req.Gate = gate.Config{Mode: gate.V2, GateStep: 2, SPInterval: 1, FIInterval: 1, WarmUp: 0}
			full, err := sched.New(name, p.Scheduler, sched.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := full.SetTimesteps(req.Steps); err != nil {
				t.Fatal(err)
			}
			all := full.Timesteps()
			var plans []gate.StepPlan
			req.Progress = func(pr Progress) { plans = append(plans, pr.Plan) }
			res, err := p.Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			want := all[4:] // int(10·0.6) = 6 steps run
			if fmt.Sprint(res.Timesteps) != fmt.Sprint(want) {
				t.Fatalf("timesteps %v, want %v (of %v)", res.Timesteps, want, all)
			}
			warm := len(want) - 6 // PNDM's repeated PLMS timestep
			for i, pl := range plans {
				cur := i - warm
				if pl.CurStep != cur || pl.CFG != (cur < 2) {
					t.Errorf("evaluation %d: plan %+v; want cur_step %d, guidance %v", i, pl, cur, cur < 2)
				}
				if cur > 1 && pl.Cross != gate.Reuse {
					t.Errorf("evaluation %d: cross-attention %v after the gate", i, pl.Cross)
				}
			}
			for _, v := range res.Latents.Data {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatal("non-finite latents")
				}
			}
		})
	}
}

// TestEditRequestErrors checks the refusals: a size that differs from the
// init image, a strength outside (0, 1] or leaving no step, a strength
// or mask without an image.
func TestEditRequestErrors(t *testing.T) {
	r := loadEditRun(t, "img2img_ddim_s06")
	p := loadGolden(t, r.folder, LoadOptions{SkipVAE: true})
	base := r.request(t)
	base.Decoder = DecodeNone
	cases := []struct {
		name, want string
		edit       func(*Request)
	}{
		{"size mismatch", "resize the image", func(q *Request) { q.Width = 64 }},
		{"strength above 1", "outside (0, 1]", func(q *Request) { q.Strength = 1.5 }},
		{"negative strength", "outside (0, 1]", func(q *Request) { q.Strength = -0.5 }},
		{"no step left", "no denoising step", func(q *Request) { q.Strength = 0.05 }},
		{"strength without image", "needs an init image", func(q *Request) { q.InitImage = nil }},
		{"mask without image", "needs an init image", func(q *Request) {
			q.Mask, q.InitImage = tensor.New(1, 1, 32, 32), nil
		}},
		{"mask size", "mask has shape", func(q *Request) { q.Mask = tensor.New(1, 1, 16, 16) }},
	}
	for _, tc := range cases {
		req := base
		tc.edit(&req)
		_, err := p.Generate(context.Background(), req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
