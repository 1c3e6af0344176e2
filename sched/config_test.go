package sched

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

func goldenConfig(t *testing.T, folder string) *Config {
	t.Helper()
	c, err := LoadConfig(golden.Dir(t, "golden", folder, "scheduler", "scheduler_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// SD_SEMANTICS §8.2: from_config carries only keys present in the file, so
// the SD1.5 file (no timestep_spacing) gives DDIM/PNDM/LCM "leading" with
// offset 1 and Euler/EulerA/DPM "linspace".
func TestFromConfigRuleSD15(t *testing.T) {
	cfg := goldenConfig(t, "sd15_tiny_pipeline")
	if cfg.ClassName != "PNDMScheduler" || cfg.Has("timestep_spacing") {
		t.Fatalf("unexpected SD1.5 config: class %q, keys %v", cfg.ClassName, cfg.Keys())
	}
	want := map[Name]string{DDIM: "leading", PNDM: "leading", LCM: "leading", Euler: "linspace", EulerAncestral: "linspace", DPMSolver: "linspace"}
	for n, spacing := range want {
		p, err := ResolveParams(n, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if p.TimestepSpacing != spacing {
			t.Errorf("%s: timestep_spacing %q, want %q", n, p.TimestepSpacing, spacing)
		}
		if p.StepsOffset != 1 || p.BetaSchedule != "scaled_linear" || p.BetaStart != 0.00085 || p.BetaEnd != 0.012 {
			t.Errorf("%s: file keys not carried over: %+v", n, p)
		}
	}
	// Keys the file sets override class defaults (DDIM's clip_sample and
	// set_alpha_to_one default to true).
	p, _ := ResolveParams(DDIM, cfg)
	if p.ClipSample || p.SetAlphaToOne {
		t.Errorf("DDIM from SD1.5: clip_sample=%v set_alpha_to_one=%v, want false, false", p.ClipSample, p.SetAlphaToOne)
	}
	// A key outside the class (skip_prk_steps for DDIM) is ignored; PNDM
	// takes it.
	p, _ = ResolveParams(PNDM, cfg)
	if !p.SkipPRKSteps {
		t.Error("PNDM from SD1.5: skip_prk_steps not carried over")
	}
	// The DDIM timesteps for 10 steps (README: 901, 801, ..., 1) and the
	// Euler ones (999.0, 888.0, ..., 0.0).
	d := timestepsFor(t, DDIM, cfg, Options{}, 10)
	e := timestepsFor(t, Euler, cfg, Options{}, 10)
	sameF64(t, "ddim", d.Timesteps(), []float64{901, 801, 701, 601, 501, 401, 301, 201, 101, 1}, 0)
	sameF64(t, "euler", e.Timesteps(), []float64{999, 888, 777, 666, 555, 444, 333, 222, 111, 0}, 0)
	if e.InitNoiseSigma() != float32(14.614645) {
		t.Errorf("euler init_noise_sigma %v, want 14.614645", e.InitNoiseSigma())
	}
	l := timestepsFor(t, LCM, cfg, Options{}, 4)
	sameF64(t, "lcm", l.Timesteps(), []float64{999, 759, 499, 259}, 0)
}

// A config dumped from a live scheduler lists defaulted keys in
// _use_default_values; they are dropped, exactly as from_config drops them.
func TestUseDefaultValuesDropped(t *testing.T) {
	var run struct {
		Scheduler struct {
			Config json.RawMessage `json:"config"`
		} `json:"scheduler"`
	}
	readJSON(t, golden.Dir(t, "golden", "runs", "ddim_baseline.json"), &run)
	cfg, err := ParseConfig(run.Scheduler.Config)
	if err != nil {
		t.Fatal(err)
	}
	// The run's resolved config says "timestep_spacing": "leading" but lists
	// it as defaulted: Euler built from it must still get linspace.
	if cfg.Has("timestep_spacing") || cfg.Has("_use_default_values") {
		t.Fatalf("defaulted keys kept: %v", cfg.Keys())
	}
	p, err := ResolveParams(Euler, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.TimestepSpacing != "linspace" {
		t.Errorf("Euler from a dumped DDIM config: %q, want linspace", p.TimestepSpacing)
	}
	if cfg.ClassName != "DDIMScheduler" {
		t.Errorf("class %q", cfg.ClassName)
	}
}

// The PixArt file has the bare token -Infinity (Python's json output).
func TestNonFiniteJSON(t *testing.T) {
	cfg := goldenConfig(t, "pixart_tiny_pipeline")
	p, err := ResolveParams(DPMSolver, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(p.LambdaMinClipped, -1) {
		t.Errorf("lambda_min_clipped = %v, want -Inf", p.LambdaMinClipped)
	}
	c, err := ParseConfig([]byte(`{"a": "x -Infinity \"NaN\"", "lambda_min_clipped": -Infinity, "b": NaN, "c": Infinity}`))
	if err != nil {
		t.Fatal(err)
	}
	var a string
	if err := c.readString("a", &a); err != nil || a != `x -Infinity "NaN"` {
		t.Errorf("string content changed: %q (%v)", a, err)
	}
	var b, inf float64
	if err := c.readFloat("b", &b); err != nil || !math.IsNaN(b) {
		t.Errorf("NaN: %v %v", b, err)
	}
	if err := c.readFloat("c", &inf); err != nil || !math.IsInf(inf, 1) {
		t.Errorf("Infinity: %v %v", inf, err)
	}
}

func TestTimestepSpacingOverride(t *testing.T) {
	cfg := goldenConfig(t, "sd15_tiny_pipeline")
	s := timestepsFor(t, Euler, cfg, Options{TimestepSpacing: "leading"}, 10)
	sameF64(t, "euler leading", s.Timesteps(), []float64{901, 801, 701, 601, 501, 401, 301, 201, 101, 1}, 0)
	// leading Euler scales the initial noise by √(σmax²+1).
	sig := s.Sigmas()
	if want := sqrt32(sig[0]*sig[0] + 1); s.InitNoiseSigma() != want {
		t.Errorf("init_noise_sigma %v, want %v", s.InitNoiseSigma(), want)
	}
	tr := timestepsFor(t, DDIM, cfg, Options{TimestepSpacing: "trailing"}, 4)
	sameF64(t, "ddim trailing", tr.Timesteps(), []float64{999, 749, 499, 249}, 0)
	// The caller's config is not modified.
	if cfg.Has("timestep_spacing") {
		t.Error("override leaked into the caller's config")
	}
	if _, err := New(DDIM, cfg, Options{TimestepSpacing: "sideways"}); err == nil || !strings.Contains(err.Error(), "leading, trailing, linspace") {
		t.Errorf("bad spacing: %v", err)
	}
}

// Spec examples: DPM linspace N=10 rounds 499.5 to 500; LCM N=1, 4, 10.
func TestTimestepExamples(t *testing.T) {
	pix := goldenConfig(t, "pixart_tiny_pipeline")
	sameF64(t, "dpm", timestepsFor(t, DPMSolver, pix, Options{}, 10).Timesteps(), []float64{999, 899, 799, 699, 599, 500, 400, 300, 200, 100}, 0)
	lcmCfg := goldenConfig(t, "lcm_tiny_pipeline")
	sameF64(t, "lcm 1", timestepsFor(t, LCM, lcmCfg, Options{}, 1).Timesteps(), []float64{999}, 0)
	sameF64(t, "lcm 4", timestepsFor(t, LCM, lcmCfg, Options{}, 4).Timesteps(), []float64{999, 759, 499, 259}, 0)
	sameF64(t, "lcm 10", timestepsFor(t, LCM, lcmCfg, Options{}, 10).Timesteps(), []float64{999, 899, 799, 699, 599, 499, 399, 299, 199, 99}, 0)
	// diffusers test_steps_offset: DDIM steps_offset=1, 5 steps.
	sameF64(t, "ddim offset", timestepsFor(t, DDIM, cfgOf(t, map[string]any{"steps_offset": 1}), Options{}, 5).Timesteps(), []float64{801, 601, 401, 201, 1}, 0)
	// PNDM with PRK (test_steps_offset of test_scheduler_pndm.py).
	sameF64(t, "pndm prk", timestepsFor(t, PNDM, cfgOf(t, map[string]any{"steps_offset": 1}), Options{}, 10).Timesteps(),
		[]float64{901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501, 401, 301, 201, 101, 1}, 0)
}

func TestParseName(t *testing.T) {
	for s, want := range map[string]Name{"ddim": DDIM, "PNDM": PNDM, "euler": Euler, "euler-a": EulerAncestral,
		"dpm++2m": DPMSolver, "lcm": LCM, "EulerAncestralDiscreteScheduler": EulerAncestral, "DPMSolverMultistepScheduler": DPMSolver} {
		got, err := ParseName(s)
		if err != nil || got != want {
			t.Errorf("ParseName(%q) = %q, %v; want %q", s, got, err, want)
		}
	}
	_, err := ParseName("heun")
	if err == nil {
		t.Fatal("ParseName(heun) succeeded")
	}
	for _, n := range Names() {
		if !strings.Contains(err.Error(), string(n)) {
			t.Errorf("error %q does not list %q", err, n)
		}
	}
	if !strings.Contains(err.Error(), `"heun"`) {
		t.Errorf("error %q does not name the bad value", err)
	}
}

func TestBadConfigs(t *testing.T) {
	cases := []struct {
		name Name
		cfg  string
		want string
	}{
		{DDIM, `{"beta_schedule": "cosine"}`, "beta_schedule"},
		{DDIM, `{"prediction_type": "flow"}`, "prediction_type"},
		{DDIM, `{"thresholding": true}`, "thresholding"},
		{DDIM, `{"num_train_timesteps": "many"}`, "num_train_timesteps"},
		{DDIM, `{"num_train_timesteps": 10.5}`, "num_train_timesteps"},
		{DDIM, `{"clip_sample": "yes"}`, "clip_sample"},
		{DDIM, `{"trained_betas": [0.1, 0.2]}`, "trained_betas"},
		{DPMSolver, `{"algorithm_type": "sde-dpmsolver++"}`, "algorithm_type"},
		{DPMSolver, `{"solver_order": 4}`, "solver_order"},
		{DPMSolver, `{"variance_type": "learned_range"}`, "variance_type"},
		{Euler, `{"interpolation_type": "log_linear"}`, "interpolation_type"},
		{EulerAncestral, `{"prediction_type": "sample"}`, "prediction_type"},
		{LCM, `{"original_inference_steps": 0}`, "original_inference_steps"},
	}
	for _, c := range cases {
		cfg, err := ParseConfig([]byte(c.cfg))
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(c.name, cfg, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: error %v, want one naming %s", c.name, c.cfg, err, c.want)
		}
	}
	if _, err := ParseConfig([]byte(`[1, 2]`)); err == nil {
		t.Error("a JSON array parsed as a config")
	}
	if _, err := ParseConfig([]byte(`{"a": "unterminated}`)); err == nil {
		t.Error("unterminated string accepted")
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := New("heun", nil, Options{}); err == nil {
		t.Error("unknown scheduler name accepted")
	}
}

func TestStepMisuse(t *testing.T) {
	s, err := New(DDIM, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 8)
	if _, err := s.Step(x, x, 0); err == nil || !strings.Contains(err.Error(), "SetTimesteps") {
		t.Errorf("step before SetTimesteps: %v", err)
	}
	if err := s.SetTimesteps(0); err == nil {
		t.Error("0 steps accepted")
	}
	if err := s.SetTimesteps(1001); err == nil {
		t.Error("more steps than training timesteps accepted")
	}
	if err := s.SetTimesteps(4); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Step(x[:4], x, 0); err == nil || !strings.Contains(err.Error(), "4 elements") {
		t.Errorf("length mismatch: %v", err)
	}
	if _, err := s.Step(x, x, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Step(x, x, 2); err == nil || !strings.Contains(err.Error(), "expected step 1") {
		t.Errorf("skipped step: %v", err)
	}
	if _, err := s.Step(x, x, 9); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("index out of range: %v", err)
	}
	// Noise-drawing steps without a generator fail with a clear error.
	a, _ := New(EulerAncestral, nil, Options{})
	if err := a.SetTimesteps(2); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Step(x, x, 0); err == nil || !strings.Contains(err.Error(), "generator") {
		t.Errorf("ancestral step without noise: %v", err)
	}
	big, _ := New(DDIM, cfgOf(t, map[string]any{"steps_offset": 600}), Options{})
	if err := big.SetTimesteps(2); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("timestep beyond T−1 accepted: %v", err)
	}
}
