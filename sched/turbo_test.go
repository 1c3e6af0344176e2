package sched

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/rng"
)

// sdAlphasCumprod64 is ᾱ of SD's schedule (betas = linspace(√0.00085,
// √0.012, 1000)², SD_SEMANTICS §8.1) evaluated in float64, independent of
// this package's float32 tables.
func sdAlphasCumprod64() []float64 {
	a, b := math.Sqrt(0.00085), math.Sqrt(0.012)
	ac := make([]float64, 1000)
	prod := 1.0
	for i := range ac {
		s := a + float64(i)*(b-a)/999
		prod *= 1 - s*s
		ac[i] = prod
	}
	return ac
}

// sdSigma64 is σ_t = √((1−ᾱ_t)/ᾱ_t) of SD's schedule in float64.
func sdSigma64(t int) float64 {
	ac := sdAlphasCumprod64()[t]
	return math.Sqrt((1 - ac) / ac)
}

// countingSource counts the noise draws it hands out.
type countingSource struct {
	g     *rng.Torch
	draws int
}

func (c *countingSource) Randn(n int) []float32 {
	c.draws++
	return c.g.Randn(n)
}

// TestTurboEulerAncestral is the SD-Turbo-style schedule of the golden
// README: EulerAncestralDiscreteScheduler.from_config(SD 2.1 config,
// timestep_spacing="trailing") with 2 steps gives timesteps 999, 499,
// sigmas 14.6146, 1.6129, 0 and init_noise_sigma = σ_max (no √(σ²+1) for
// trailing). Both steps draw noise; the second is multiplied by σ_up = 0,
// so the last step returns pred_original_sample exactly (v-prediction:
// x0 = v·(−σ/√(σ²+1)) + x/(σ²+1)).
func TestTurboEulerAncestral(t *testing.T) {
	cfg := sd15Config(t)
	if err := cfg.Set("prediction_type", "v_prediction"); err != nil {
		t.Fatal(err)
	}
	src := &countingSource{g: rng.NewTorch(5)}
	s, err := New(EulerAncestral, cfg, Options{TimestepSpacing: "trailing", Noise: src})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(2); err != nil {
		t.Fatal(err)
	}
	sameF64(t, "timesteps", s.Timesteps(), []float64{999, 499}, 0)
	sig := s.Sigmas()
	readme := []float64{14.6146, 1.6129, 0}
	indep := []float64{sdSigma64(999), sdSigma64(499), 0}
	for i := range readme {
		if d := math.Abs(float64(sig[i]) - readme[i]); !(d <= 1e-4*math.Max(readme[i], 1)) {
			t.Errorf("sigma[%d] = %.7g, README gives %.5g", i, sig[i], readme[i])
		}
		if d := math.Abs(float64(sig[i]) - indep[i]); !(d <= 1e-6*math.Max(indep[i], 1)) {
			t.Errorf("sigma[%d] = %.9g, float64 schedule gives %.9g", i, sig[i], indep[i])
		}
	}
	if got := s.InitNoiseSigma(); got != sig[0] {
		t.Errorf("init_noise_sigma = %.7g, want sigma_max %.7g (trailing spacing)", got, sig[0])
	}

	ref := rng.NewTorch(5)
	m := &fakeModel{rng.NewTorch(6)}
	x := rng.NewTorch(7).Randn(fN)
	for i := range x {
		x[i] *= s.InitNoiseSigma()
	}
	for i := 0; i < 2; i++ {
		out := m.out(x)
		r, err := s.Step(out, x, i)
		if err != nil {
			t.Fatal(err)
		}
		sf, st := float64(sig[i]), float64(sig[i+1])
		up := math.Sqrt(st * st * (sf*sf - st*st) / (sf * sf))
		down := math.Sqrt(st*st - up*up)
		z := ref.Randn(fN)
		x0 := make([]float64, fN)
		want := make([]float64, fN)
		for k := range want {
			xv, v := float64(x[k]), float64(out[k])
			x0[k] = v*(-sf/math.Sqrt(sf*sf+1)) + xv/(sf*sf+1)
			want[k] = xv + (xv-x0[k])/sf*(down-sf) + float64(z[k])*up
		}
		relClose(t, "x0", r.Denoised, x0, 2e-6)
		relClose(t, "prev", r.Prev, want, 2e-6)
		if i == 1 {
			if up != 0 || down != 0 {
				t.Fatalf("last step: sigma_up %g, sigma_down %g, want 0", up, down)
			}
			relClose(t, "last prev = x0", r.Prev, x0, 1e-6)
		}
		x = r.Prev
	}
	if src.draws != 2 {
		t.Errorf("%d noise draws for 2 steps, want 2 (one per step, the last included)", src.draws)
	}
}

// TestEulerInitNoiseSigma checks init_noise_sigma of both Euler schedulers
// built from the SD 1.5 file: σ_max for linspace and trailing spacing,
// √(σ_max²+1) for leading, with σ_max at the first timestep (999 for
// linspace and trailing; 901 for leading, 10 steps, steps_offset 1).
func TestEulerInitNoiseSigma(t *testing.T) {
	cfg := sd15Config(t)
	for _, c := range []struct {
		spacing string
		t0      int
		leading bool
	}{{"linspace", 999, false}, {"trailing", 999, false}, {"leading", 901, true}} {
		want := sdSigma64(c.t0)
		if c.leading {
			want = math.Sqrt(want*want + 1)
		}
		for _, name := range []Name{Euler, EulerAncestral} {
			s := timestepsFor(t, name, cfg, Options{TimestepSpacing: c.spacing}, 10)
			if got := s.Timesteps()[0]; got != float64(c.t0) {
				t.Errorf("%s %s: first timestep %v, want %d", name, c.spacing, got, c.t0)
			}
			if got := float64(s.InitNoiseSigma()); !(math.Abs(got-want) <= 1e-6*want) {
				t.Errorf("%s %s: init_noise_sigma %.9g, want %.9g", name, c.spacing, got, want)
			}
		}
	}
}

// TestLCMStepCountsAndDraws checks LCMScheduler's schedule for 8 steps
// (k = 1000//50 = 20, origin 999, 979, …, 19; indices
// floor(linspace(0, 50, 8, endpoint=False)) = 0, 6, 12, 18, 25, 31, 37, 43)
// and that n steps draw n−1 noise tensors (none at the last step, whose
// prev_sample is its denoised sample).
func TestLCMStepCountsAndDraws(t *testing.T) {
	cfg := goldenConfig(t, "lcm_tiny_pipeline")
	sameF64(t, "lcm 8", timestepsFor(t, LCM, cfg, Options{}, 8).Timesteps(),
		[]float64{999, 879, 759, 639, 499, 379, 259, 139}, 0)
	for _, n := range []int{1, 2, 4, 8} {
		src := &countingSource{g: rng.NewTorch(1)}
		s, err := New(LCM, cfg, Options{Noise: src})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(n); err != nil {
			t.Fatal(err)
		}
		m := &fakeModel{rng.NewTorch(2)}
		x := rng.NewTorch(3).Randn(fN)
		for i := 0; i < n; i++ {
			r, err := s.Step(m.out(x), x, i)
			if err != nil {
				t.Fatal(err)
			}
			if i == n-1 {
				relClose(t, "last prev = denoised", r.Prev, f64s(r.Denoised), 0)
			}
			x = r.Prev
		}
		if src.draws != n-1 {
			t.Errorf("%d steps drew %d noise tensors, want %d", n, src.draws, n-1)
		}
	}
}
