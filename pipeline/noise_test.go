package pipeline

import (
	"context"
	"math"
	"testing"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/rng"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// These tests check, from the outside of a generation, which draws of the
// seed's generator each step used: the noise an ancestral or LCM step
// added is solved back out of the latents before and after the step (read
// in the Progress callback) and compared with torch.Generator().
// manual_seed(seed) draws made here. The σ and ᾱ values come from a float64
// evaluation of SD's scaled_linear schedule in this file, not from package
// sched.

// sdAlphasCumprod64 is ᾱ_t for betas = linspace(√0.00085, √0.012, 1000)²
// (SD_SEMANTICS §8.1), in float64.
func sdAlphasCumprod64() []float64 {
	const T = 1000
	a, b := math.Sqrt(0.00085), math.Sqrt(0.012)
	ac := make([]float64, T)
	prod := 1.0
	for i := range ac {
		s := a + float64(i)*(b-a)/(T-1)
		prod *= 1 - s*s
		ac[i] = prod
	}
	return ac
}

// sigma64 is √((1−ᾱ_t)/ᾱ_t) at an integer timestep.
func sigma64(ac []float64, t int) float64 { return math.Sqrt((1 - ac[t]) / ac[t]) }

// stepRecord is what the Progress callback saw after one step.
type stepRecord struct {
	t                 float64
	plan              gate.StepPlan
	latents, denoised []float32
}

// recordSteps runs req and returns the per-step records and the result.
func recordSteps(t *testing.T, p *Pipeline, req Request) ([]stepRecord, *Result) {
	t.Helper()
	var recs []stepRecord
	req.Decoder = DecodeNone
	req.Progress = func(pr Progress) {
		r := stepRecord{t: pr.Timestep, plan: pr.Plan}
		h, err := p.b.ReadBack(pr.Latents)
		if err != nil {
			t.Fatal(err)
		}
		r.latents = h.Data
		if pr.Denoised != nil {
			d, err := p.b.ReadBack(pr.Denoised)
			if err != nil {
				t.Fatal(err)
			}
			r.denoised = d.Data
		}
		recs = append(recs, r)
	}
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return recs, res
}

// maxAbsDiff64 returns max |a − b| and max |b|; a NaN or Inf anywhere gives
// (+Inf, 1), which no absolute or relative tolerance accepts.
func maxAbsDiff64(a []float64, b []float32) (d, m float64) {
	for i := range a {
		e := math.Abs(a[i] - float64(b[i]))
		if math.IsNaN(e) || math.IsInf(e, 0) {
			return math.Inf(1), 1
		}
		d = math.Max(d, e)
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	return d, m
}

// TestEulerAncestralNoiseDraws checks EulerAncestralDiscreteScheduler in
// the pipeline: the initial latents are the seed's first draw (or the given
// ones, which leave the generator untouched), multiplied by σ_max for
// trailing spacing and √(σ_max²+1) for leading; every step then adds
// σ_up·(next draw of the same generator), with σ_up =
// √(σ_to²(σ_from²−σ_to²)/σ_from²) and σ_down = √(σ_to² − σ_up²); the last
// step (σ_to = 0) lands exactly on its pred_original_sample. The draws are
// shaped like the latents [1, C, h, w], with or without a guidance batch
// and with T-GATE dropping the batch after its gate.
func TestEulerAncestralNoiseDraws(t *testing.T) {
	p := loadGolden(t, "sd15_tiny_pipeline", LoadOptions{SkipVAE: true})
	ac := sdAlphasCumprod64()
	f := p.VAEScaleFactor()
	const size = 16
	shape := tensor.Shape{1, p.UNet.Config.InChannels, size / f, size / f}
	n := shape.Numel()
	given := &tensor.Host{Shape: shape, Data: rng.NewTorch(42).Randn(n)}

	cases := []struct {
		name      string
		req       Request
		timesteps []int // SD_SEMANTICS §8.2 (trailing N=4: 999, 749, 499, 249)
		leading   bool
	}{
		// SD-Turbo style: 2 trailing steps, no guidance, given latents,
		// generator seeded with 5: timesteps 999, 499.
		{"turbo 2 steps guidance 0", Request{Prompt: "a cat", Steps: 2, Guidance: 0, Seed: 5, Latents: given,
			TimestepSpacing: "trailing"}, []int{999, 499}, false},
		{"trailing cfg seed only", Request{Prompt: "a cat", NegativePrompt: "dog", Steps: 4, Guidance: 7.5, Seed: 9,
			TimestepSpacing: "trailing"}, []int{999, 749, 499, 249}, false},
		{"trailing cfg given latents", Request{Prompt: "a cat", Steps: 4, Guidance: 7.5, Seed: 9, Latents: given,
			TimestepSpacing: "trailing"}, []int{999, 749, 499, 249}, false},
		{"leading cfg tgate", Request{Prompt: "a cat", Steps: 4, Guidance: 5, Seed: 3, TimestepSpacing: "leading",
			Gate: gate.Config{Mode: gate.V2, GateStep: 2, SPInterval: 1, FIInterval: 1, WarmUp: 0}},
			[]int{751, 501, 251, 1}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.Scheduler = sched.EulerAncestral
			req.Width, req.Height = size, size
			recs, res := recordSteps(t, p, req)
			if len(recs) != len(tc.timesteps) {
				t.Fatalf("%d steps, want %d", len(recs), len(tc.timesteps))
			}
			// The generator as diffusers' pipeline uses it: one draw for
			// the initial latents unless they were given, then one per step.
			gen := rng.NewTorch(req.Seed)
			init := req.Latents
			if init == nil {
				init = &tensor.Host{Shape: shape, Data: gen.Randn(n)}
			}
			sig := make([]float64, len(tc.timesteps)+1)
			for i, ts := range tc.timesteps {
				sig[i] = sigma64(ac, ts)
				if recs[i].t != float64(ts) {
					t.Errorf("step %d: timestep %v, want %d", i, recs[i].t, ts)
				}
				wantCFG := req.Guidance > 1 && (req.Gate.Mode == gate.Off || i < req.Gate.GateStep)
				if recs[i].plan.CFG != wantCFG {
					t.Errorf("step %d: guidance batch %v, want %v", i, recs[i].plan.CFG, wantCFG)
				}
			}
			initSigma := sig[0]
			if tc.leading {
				initSigma = math.Sqrt(sig[0]*sig[0] + 1)
			}
			x := make([]float64, n)
			for j := range x {
				x[j] = float64(init.Data[j]) * initSigma
			}
			for i := range tc.timesteps {
				r := recs[i]
				sf, st := sig[i], sig[i+1]
				up := math.Sqrt(st * st * (sf*sf - st*st) / (sf * sf))
				down := math.Sqrt(st*st - up*up)
				draw := gen.Randn(n) // drawn at every step, the last one too
				if i == len(tc.timesteps)-1 {
					// σ_up = σ_down = 0: the sample becomes x0 whatever the draw.
					x0 := make([]float64, n)
					for j := range x0 {
						x0[j] = float64(r.denoised[j])
					}
					if d, m := maxAbsDiff64(x0, r.latents); d > 1e-5*m {
						t.Errorf("last step: latents differ from pred_original_sample by %.3g (max %.3g)", d, m)
					}
					if d, m := maxAbsDiff64(x0, res.Latents.Data); d > 1e-5*m {
						t.Errorf("final latents differ from the last pred_original_sample by %.3g (max %.3g)", d, m)
					}
					break
				}
				// noise = (x_next − x − (x − x0)/σ·(σ_down − σ)) / σ_up
				rec := make([]float64, n)
				for j := range rec {
					xv, x0 := x[j], float64(r.denoised[j])
					rec[j] = (float64(r.latents[j]) - xv - (xv-x0)/sf*(down-sf)) / up
				}
				d, _ := maxAbsDiff64(rec, draw)
				t.Logf("step %d: recovered noise vs draw %d: max diff %.2g", i, i, d)
				if d > 2e-4 {
					t.Fatalf("step %d: the noise added is not draw %d of the seed's generator (max diff %.3g)", i, i, d)
				}
				for j := range x {
					x[j] = float64(r.latents[j])
				}
			}
		})
	}
}

// TestLCMNoiseDraws checks LCMScheduler in the LCM pipeline: 4 steps at
// 999, 759, 499, 259; each step but the last re-noises its denoised sample
// to the next timestep with the next draw of the seed's generator,
// x = √ᾱ_next·denoised + √(1−ᾱ_next)·noise (3 draws after the initial
// latents, none at the last step), and the pipeline returns the last
// denoised sample.
func TestLCMNoiseDraws(t *testing.T) {
	p := loadGolden(t, "lcm_tiny_pipeline", LoadOptions{SkipVAE: true})
	ac := sdAlphasCumprod64()
	f := p.VAEScaleFactor()
	const size = 16
	shape := tensor.Shape{1, p.UNet.Config.InChannels, size / f, size / f}
	n := shape.Numel()
	want := []int{999, 759, 499, 259}
	for _, givenLatents := range []bool{false, true} {
		req := Request{Prompt: "a castle", Steps: 4, Guidance: 8.5, Seed: 17, Width: size, Height: size}
		gen := rng.NewTorch(req.Seed)
		if givenLatents {
			req.Latents = &tensor.Host{Shape: shape, Data: rng.NewTorch(4).Randn(n)}
		} else {
			gen.Randn(n) // the initial latents
		}
		recs, res := recordSteps(t, p, req)
		if len(recs) != len(want) {
			t.Fatalf("%d steps, want %d", len(recs), len(want))
		}
		for i, ts := range want {
			r := recs[i]
			if r.t != float64(ts) {
				t.Errorf("step %d: timestep %v, want %d", i, r.t, ts)
			}
			if r.plan.CFG {
				t.Errorf("step %d: guidance batch in the LCM pipeline", i)
			}
			if r.denoised == nil {
				t.Fatalf("step %d: no denoised sample", i)
			}
			if i == len(want)-1 {
				den := make([]float64, n)
				for j := range den {
					den[j] = float64(r.denoised[j])
				}
				if d, m := maxAbsDiff64(den, res.Latents.Data); d != 0 {
					t.Errorf("result is not the last denoised sample (max diff %.3g of %.3g)", d, m)
				}
				if d, m := maxAbsDiff64(den, r.latents); d > 1e-6*m {
					t.Errorf("last step re-noised its sample (max diff %.3g of %.3g)", d, m)
				}
				break
			}
			an := ac[want[i+1]]
			rec := make([]float64, n)
			for j := range rec {
				rec[j] = (float64(r.latents[j]) - math.Sqrt(an)*float64(r.denoised[j])) / math.Sqrt(1-an)
			}
			d, _ := maxAbsDiff64(rec, gen.Randn(n))
			t.Logf("given latents %v, step %d: recovered noise vs the next draw: max diff %.2g", givenLatents, i, d)
			if d > 2e-4 {
				t.Fatalf("given latents %v, step %d: the noise added is not the seed's next draw (max diff %.3g)", givenLatents, i, d)
			}
		}
	}
}

// TestPNDMGateWarmup runs the folder's PNDM scheduler (skip_prk_steps) with
// T-GATE: 4 steps are 5 UNet evaluations at 751, 501, 501, 251, 1, so
// num_warmup_steps = len(timesteps) − steps·order = 1. tgate/SD.py leaves
// every flag off at evaluation 0 (its first update is at i+1 > 1) and then
// uses cur_step = i − 1: with gate_step 2 the caches are filled at i = 2
// (cur_step 1) with the guidance batch still on ((i − 1) < gate_step), and
// the batch-1 replay starts at i = 3.
func TestPNDMGateWarmup(t *testing.T) {
	p := loadGolden(t, "sd15_tiny_pipeline", LoadOptions{SkipVAE: true})
	req := Request{Prompt: "an owl", Steps: 4, Guidance: 7.5, Seed: 1, Width: 16, Height: 16,
		Gate: gate.Config{Mode: gate.V1, GateStep: 2}}
	recs, _ := recordSteps(t, p, req)
	wantT := []float64{751, 501, 501, 251, 1}
	want := []gate.StepPlan{
		{CFG: true, Cross: gate.Compute, CurStep: -1},
		{CFG: true, Cross: gate.Compute, CurStep: 0},
		{CFG: true, Cross: gate.CacheMean, CurStep: 1},
		{CFG: false, Cross: gate.Reuse, CurStep: 2},
		{CFG: false, Cross: gate.Reuse, CurStep: 3},
	}
	if len(recs) != len(wantT) {
		t.Fatalf("%d evaluations, want %d", len(recs), len(wantT))
	}
	for i, r := range recs {
		if r.t != wantT[i] {
			t.Errorf("evaluation %d: timestep %v, want %v", i, r.t, wantT[i])
		}
		if r.plan != want[i] {
			t.Errorf("evaluation %d: plan %+v, want %+v", i, r.plan, want[i])
		}
		if r.denoised != nil {
			t.Errorf("evaluation %d: PNDM reported a denoised sample", i)
		}
	}
}
