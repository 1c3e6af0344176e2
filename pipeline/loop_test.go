package pipeline

import (
	"context"
	"math"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/models/clip"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/rng"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// referenceLoop recomputes a generation the way diffusers'
// StableDiffusionPipeline / LatentConsistencyModelPipeline __call__ reads,
// step by step on the host: the prompt and negative prompt encoded
// separately, latents drawn from the seed's generator, the scheduler
// stepping host slices with the same generator, guidance and
// rescale_noise_cfg in float64. Only the models themselves run on the
// backend (no T-GATE).
func referenceLoop(t *testing.T, p *Pipeline, req Request) *tensor.Host {
	t.Helper()
	b := p.b
	h, w := req.Height, req.Width
	f := p.VAEScaleFactor()
	shape := tensor.Shape{1, p.UNet.Config.InChannels, h / f, w / f}
	n := shape.Numel()

	gen := rng.NewTorch(req.Seed)
	name := req.Scheduler
	if name == "" {
		name, _ = sched.NameFromConfig(p.Scheduler)
	}
	st, err := sched.New(name, p.Scheduler, sched.Options{TimestepSpacing: req.TimestepSpacing, Noise: gen})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetTimesteps(req.Steps); err != nil {
		t.Fatal(err)
	}
	var x []float32
	if req.Latents != nil {
		x = append([]float32(nil), req.Latents.Data...)
	} else {
		x = gen.Randn(n)
	}
	for i := range x {
		x[i] *= st.InitNoiseSigma()
	}

	encode := func(text string) *tensor.Host {
		ids, _ := p.Tokenizer.EncodeForModel(text)
		out, err := p.TextEncoder.Forward(b, [][]int32{ids}, clip.Options{})
		if err != nil {
			t.Fatal(err)
		}
		hh, err := b.ReadBack(out.LastHiddenState)
		if err != nil {
			t.Fatal(err)
		}
		out.Release(b)
		return hh
	}
	pos := encode(req.Prompt)
	lcm := p.Kind == LatentConsistency
	cfg := !lcm && req.Guidance > 1 && p.UNet.Config.TimeCondProjDim == nil
	ctxHost := pos
	if cfg {
		neg := encode(req.NegativePrompt)
		ctxHost = &tensor.Host{Shape: tensor.Shape{2, pos.Shape[1], pos.Shape[2]}, Data: append(append([]float32(nil), neg.Data...), pos.Data...)}
	}
	ctx := b.Upload(ctxHost)
	defer b.Free(ctx)
	var cond backend.Tensor
	if d := p.UNet.Config.TimeCondProjDim; d != nil {
		cond = b.Upload(unet.GuidanceScaleEmbedding([]float64{req.Guidance - 1}, *d))
		defer b.Free(cond)
	}

	var denoised []float32
	for i, ts := range st.Timesteps() {
		in := x
		batch := 1
		if cfg {
			in = append(append([]float32(nil), x...), x...)
			batch = 2
		}
		in = st.ScaleModelInput(in, i)
		sample := b.Upload(&tensor.Host{Shape: tensor.Shape{batch, shape[1], shape[2], shape[3]}, Data: in})
		out, err := p.UNet.Forward(b, sample, []float64{ts}, ctx, unet.ForwardOpts{TimestepCond: cond})
		b.Free(sample)
		if err != nil {
			t.Fatal(err)
		}
		oh, err := b.ReadBack(out)
		b.Free(out)
		if err != nil {
			t.Fatal(err)
		}
		eps := oh.Data
		if cfg {
			u, c := oh.Data[:n], oh.Data[n:]
			g := make([]float64, n)
			for j := range g {
				g[j] = float64(u[j]) + req.Guidance*(float64(c[j])-float64(u[j]))
			}
			if phi := req.GuidanceRescale; phi > 0 {
				ratio := std64(c) / std64f(g)
				for j := range g {
					g[j] = phi*g[j]*ratio + (1-phi)*g[j]
				}
			}
			eps = make([]float32, n)
			for j := range g {
				eps[j] = float32(g[j])
			}
		}
		r, err := st.Step(eps, x, i)
		if err != nil {
			t.Fatal(err)
		}
		x = r.Prev
		if r.HasDenoised {
			denoised = r.Denoised
		}
	}
	if lcm {
		return &tensor.Host{Shape: shape, Data: denoised}
	}
	return &tensor.Host{Shape: shape, Data: x}
}

func std64(x []float32) float64 {
	g := make([]float64, len(x))
	for i, v := range x {
		g[i] = float64(v)
	}
	return std64f(g)
}

func std64f(x []float64) float64 {
	m := 0.0
	for _, v := range x {
		m += v
	}
	m /= float64(len(x))
	s := 0.0
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return math.Sqrt(s / float64(len(x)-1))
}

func loadGolden(t *testing.T, folder string, opt LoadOptions) *Pipeline {
	t.Helper()
	p, err := Load(cpu.New(), golden.Dir(t, "golden", folder), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestLoopMatchesReference checks the pipeline's wiring of seeds,
// schedulers, spacings, negative prompts, guidance rescale and the LCM
// guidance embedding against referenceLoop.
func TestLoopMatchesReference(t *testing.T) {
	sd := loadGolden(t, "sd15_tiny_pipeline", LoadOptions{SkipVAE: true})
	lcm := loadGolden(t, "lcm_tiny_pipeline", LoadOptions{SkipVAE: true})
	cases := []struct {
		name string
		p    *Pipeline
		req  Request
	}{
		{"sd euler-a seed rescale trailing", sd, Request{Prompt: "a castle on a hill", NegativePrompt: "blurry, dark",
			Steps: 4, Guidance: 5, GuidanceRescale: 0.7, Seed: 7, Width: 32, Height: 40,
			Scheduler: sched.EulerAncestral, TimestepSpacing: "trailing"}},
		{"sd dpm++ no guidance", sd, Request{Prompt: "a castle on a hill", Steps: 3, Guidance: 1, Seed: 11,
			Width: 24, Height: 32, Scheduler: sched.DPMSolver}},
		{"sd folder pndm", sd, Request{Prompt: "an owl", Steps: 3, Guidance: 3, Seed: 5, Width: 32, Height: 32}},
		{"lcm", lcm, Request{Prompt: "a castle on a hill", Steps: 4, Guidance: 8.5, Seed: 3, Width: 32, Height: 32}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Decoder = DecodeNone
			want := referenceLoop(t, tc.p, tc.req)
			res, err := tc.p.Generate(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			golden.AssertClose(t, "latents", res.Latents, want, 1e-5)
		})
	}
}

// TestSeedDrawsInitLatents checks that a seed gives the initial latents
// torch.Generator().manual_seed(seed) + randn draws: the runs' init.latents
// were drawn with seed 42, so the seeded baseline's first step must land
// on the run's step.00.latents (the run is then cancelled).
func TestSeedDrawsInitLatents(t *testing.T) {
	r := readRun(t, "ddim_baseline")
	gold := golden.Tensors(t, golden.Dir(t, "golden", "runs", "ddim_baseline.safetensors"))
	p := loadRunPipeline(t, r)
	req := requestFor(t, r, nil)
	req.Seed = 42
	req.Decoder = DecodeNone
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var first *tensor.Host
	req.Progress = func(pr Progress) {
		first, _ = p.b.ReadBack(pr.Latents)
		cancel()
	}
	if _, err := p.Generate(ctx, req); err != context.Canceled {
		t.Fatalf("Generate: %v, want the cancellation", err)
	}
	golden.AssertClose(t, "step.00.latents (seed 42)", first, gold["step.00.latents"], 1e-3)
}

// TestLCMGate runs the LCM pipeline with T-GATE's LCM settings: the gate
// step caches every cross-attention output at batch 1 and the other three
// steps reuse them; the result differs from the ungated run but stays
// close to it.
func TestLCMGate(t *testing.T) {
	p := loadGolden(t, "lcm_tiny_pipeline", LoadOptions{SkipVAE: true})
	req := Request{Prompt: "a castle on a hill", Steps: 4, Guidance: 8.5, Seed: 3, Width: 32, Height: 32, Decoder: DecodeNone}
	off, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var nCross, nSelf int
	for _, m := range p.UNet.AttentionModules() {
		if m.Kind == nn.CrossAttn {
			nCross++
		} else {
			nSelf++
		}
	}
	req.Gate = gate.LCMDefaults()
	var plans []gate.StepPlan
	req.Progress = func(pr Progress) {
		if pr.Plan.CFG {
			t.Errorf("step %d: guidance batch in the LCM pipeline", pr.Step)
		}
		plans = append(plans, pr.Plan)
	}
	on, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	s := on.Gate
	if s.CrossComputed != nCross || s.CrossReused != 3*nCross || s.SelfComputed != 4*nSelf || s.SelfReused != 0 {
		t.Errorf("gate stats %+v with %d cross and %d self modules", s, nCross, nSelf)
	}
	abs, rel := golden.Diff(on.Latents, off.Latents)
	t.Logf("LCM T-GATE vs off: max abs %.3g, relative %.3g", abs, rel)
	if rel == 0 || rel > 0.5 {
		t.Errorf("gated LCM result differs from the ungated one by %.3g relative", rel)
	}
	if !p.crossReleased {
		t.Error("cross-attention weights were not released after the gate")
	}
	// The next run reloads the UNet and reproduces the ungated result.
	req.Gate = gate.Config{}
	req.Progress = nil
	again, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if abs, _ := golden.Diff(again.Latents, off.Latents); abs != 0 {
		t.Errorf("run after a gated run differs from the first ungated run by %g", abs)
	}
}
