package sched

import (
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

// assets/goldens/scheduler_tables.json: the SD1.x training schedule and the
// timesteps/sigmas of set_timesteps, recomputed with the reference stack.
type tablesGolden struct {
	SD struct {
		BetasFirst5 []float64          `json:"betas_first5"`
		BetasLast3  []float64          `json:"betas_last3"`
		ACAt        map[string]float64 `json:"alphas_cumprod_at"`
		SigmaAt     map[string]float64 `json:"sigma_at"`
		FinalAlpha  float64            `json:"final_alpha_cumprod_ddim_set_alpha_to_one_false"`
	} `json:"sd15_betas_scaled_linear_0.00085_0.012_1000"`
	DDIMLeading map[string][]float64 `json:"ddim_leading_steps_offset1"`
	PNDMPLMS    map[string][]float64 `json:"pndm_skip_prk_leading_steps_offset1_plms_timesteps"`
	DPMLinspace map[string][]float64 `json:"dpmsolver_multistep_linspace_timesteps"`
	EulerLin    map[string]struct {
		Timesteps []float64 `json:"timesteps"`
		Sigmas    []float64 `json:"sigmas"`
		Init      float64   `json:"init_noise_sigma_diffusers"`
	} `json:"euler_discrete_linspace"`
	EulerKarras map[string]struct {
		Timesteps []float64 `json:"timesteps"`
		Sigmas    []float64 `json:"sigmas"`
	} `json:"euler_discrete_karras_linspace"`
	EulerLeading struct {
		Timesteps []float64 `json:"timesteps"`
		Sigmas    []float64 `json:"sigmas"`
	} `json:"euler_discrete_leading_offset1_20"`
	EulerTrailing struct {
		Timesteps []float64 `json:"timesteps"`
		Sigmas    []float64 `json:"sigmas"`
	} `json:"euler_discrete_trailing_4"`
	Linear map[string]struct {
		ACAt map[string]float64 `json:"alphas_cumprod_at"`
	} `json:"linear_0.0001_0.02"`
}

func loadTables(t *testing.T) tablesGolden {
	var g tablesGolden
	readJSON(t, golden.Dir(t, "assets", "goldens", "scheduler_tables.json"), &g)
	return g
}

// sd15Config is the SD1.5 hub scheduler_config.json.
func sd15Config(t *testing.T) *Config {
	t.Helper()
	c, err := LoadConfig(golden.Dir(t, "golden", "sd15_tiny_pipeline", "scheduler", "scheduler_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sameF32 asserts that float32 values equal goldens printed from float32
// values, bit for bit, or within rel when rel > 0.
func sameF32(t *testing.T, what string, got []float32, want []float64, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	for i := range want {
		if rel == 0 && got[i] != float32(want[i]) || rel > 0 && !(math.Abs(float64(got[i])-want[i]) <= rel*math.Abs(want[i])) {
			t.Errorf("%s[%d] = %.9g, want %.9g", what, i, got[i], want[i])
		}
	}
}

func sameF64(t *testing.T, what string, got, want []float64, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %v, want %v", what, got, want)
		return
	}
	for i := range want {
		if rel == 0 && got[i] != want[i] || rel > 0 && !(math.Abs(got[i]-want[i]) <= rel*math.Max(1, math.Abs(want[i]))) {
			t.Errorf("%s[%d] = %.9g, want %.9g", what, i, got[i], want[i])
		}
	}
}

func TestTrainingScheduleSD15(t *testing.T) {
	g := loadTables(t)
	p, err := ResolveParams(DDIM, sd15Config(t))
	if err != nil {
		t.Fatal(err)
	}
	s := newNoiseSchedule(&p)
	sameF32(t, "betas[:5]", s.betas[:5], g.SD.BetasFirst5, 0)
	sameF32(t, "betas[-3:]", s.betas[len(s.betas)-3:], g.SD.BetasLast3, 0)
	for k, v := range g.SD.ACAt {
		i, _ := strconv.Atoi(k)
		sameF32(t, "alphas_cumprod["+k+"]", s.alphasCumprod[i:i+1], []float64{v}, 0)
	}
	for k, v := range g.SD.SigmaAt {
		i, _ := strconv.Atoi(k)
		sameF32(t, "sigma["+k+"]", s.sigmaTable[i:i+1], []float64{v}, 0)
	}
	b := newBase(DDIM, p)
	sameF32(t, "final_alpha_cumprod", []float32{b.finalAlpha()}, []float64{g.SD.FinalAlpha}, 0)
}

func TestTrainingScheduleLinear(t *testing.T) {
	g := loadTables(t)
	for T, tab := range g.Linear {
		n, _ := strconv.Atoi(T)
		p, err := ResolveParams(DDIM, cfgOf(t, map[string]any{"num_train_timesteps": n, "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02}))
		if err != nil {
			t.Fatal(err)
		}
		s := newNoiseSchedule(&p)
		for k, v := range tab.ACAt {
			i, _ := strconv.Atoi(k)
			sameF32(t, fmt.Sprintf("T=%d alphas_cumprod[%d]", n, i), s.alphasCumprod[i:i+1], []float64{v}, 0)
		}
	}
}

func timestepsFor(t *testing.T, n Name, cfg *Config, opt Options, steps int) Stepper[[]float32] {
	t.Helper()
	s, err := New(n, cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(steps); err != nil {
		t.Fatal(err)
	}
	return s
}

// The SD1.5 file used as is (from_config rule): DDIM and PNDM get leading
// spacing with offset 1, Euler and DPM-Solver get linspace.
func TestTimestepTablesSD15(t *testing.T) {
	g := loadTables(t)
	cfg := sd15Config(t)
	for k, want := range g.DDIMLeading {
		n, _ := strconv.Atoi(k)
		sameF64(t, "ddim N="+k, timestepsFor(t, DDIM, cfg, Options{}, n).Timesteps(), want, 0)
	}
	for k, want := range g.PNDMPLMS {
		n, _ := strconv.Atoi(k)
		s := timestepsFor(t, PNDM, cfg, Options{}, n)
		sameF64(t, "pndm N="+k, s.Timesteps(), want, 0)
		if s.NumInferenceSteps() != n || len(s.Timesteps()) != n+1 {
			t.Errorf("pndm N=%d: %d evaluations, want %d", n, len(s.Timesteps()), n+1)
		}
	}
	for k, want := range g.DPMLinspace {
		n, _ := strconv.Atoi(k)
		sameF64(t, "dpm N="+k, timestepsFor(t, DPMSolver, cfg, Options{}, n).Timesteps(), want, 0)
	}
	for k, want := range g.EulerLin {
		n, _ := strconv.Atoi(k)
		s := timestepsFor(t, Euler, cfg, Options{}, n)
		sameF64(t, "euler N="+k+" timesteps", s.Timesteps(), want.Timesteps, 0)
		sameF32(t, "euler N="+k+" sigmas", s.Sigmas(), want.Sigmas, 0)
		sameF32(t, "euler N="+k+" init_noise_sigma", []float32{s.InitNoiseSigma()}, []float64{want.Init}, 0)
		a := timestepsFor(t, EulerAncestral, cfg, Options{}, n)
		sameF64(t, "euler-a N="+k+" timesteps", a.Timesteps(), want.Timesteps, 0)
		sameF32(t, "euler-a N="+k+" sigmas", a.Sigmas(), want.Sigmas, 0)
	}
	karras := cfg.Clone()
	if err := karras.Set("use_karras_sigmas", true); err != nil {
		t.Fatal(err)
	}
	for k, want := range g.EulerKarras {
		n, _ := strconv.Atoi(k)
		s := timestepsFor(t, Euler, karras, Options{}, n)
		// Karras timesteps go through np.log of the float32 σ table, which
		// NumPy evaluates with its own SIMD float32 log (documented max
		// error 3.83 ulp, relative 2.4e-7) rather than a correctly rounded
		// one; that moves t by up to a few float32 ulps (measured 4.2e-7
		// relative), so these are compared to 1e-6 relative. The σ values
		// themselves are exact.
		sameF64(t, "euler karras N="+k+" timesteps", s.Timesteps(), want.Timesteps, 1e-6)
		sameF32(t, "euler karras N="+k+" sigmas", s.Sigmas(), want.Sigmas, 0)
	}
	lead := timestepsFor(t, Euler, cfg, Options{TimestepSpacing: "leading"}, 20)
	sameF64(t, "euler leading N=20 timesteps", lead.Timesteps(), g.EulerLeading.Timesteps, 0)
	sameF32(t, "euler leading N=20 sigmas", lead.Sigmas(), g.EulerLeading.Sigmas, 0)
	tr := timestepsFor(t, Euler, cfg, Options{TimestepSpacing: "trailing"}, 4)
	sameF64(t, "euler trailing N=4 timesteps", tr.Timesteps(), g.EulerTrailing.Timesteps, 0)
	sameF32(t, "euler trailing N=4 sigmas", tr.Sigmas(), g.EulerTrailing.Sigmas, 0)
}
