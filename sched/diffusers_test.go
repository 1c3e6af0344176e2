package sched

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/rng"
)

// The RNG-free (and generator-seeded) full-loop tests of diffusers'
// tests/schedulers/, reproduced with their deterministic sample and stand-in
// model (described in assets/goldens/diffusers_scheduler_test_goldens.json
// and SD_SEMANTICS §11).

const dummyN = 4 * 3 * 8 * 8

// dummySampleDeter is arange(768).reshape(3,8,8,4)/768 permuted to
// (4,3,8,8): element [b,c,h,w] = (((c·8+h)·8+w)·4+b)/768 in float32.
func dummySampleDeter(flip bool) []float32 {
	out := make([]float32, dummyN)
	for b := 0; b < 4; b++ {
		for c := 0; c < 3; c++ {
			for h := 0; h < 8; h++ {
				for w := 0; w < 8; w++ {
					k := ((c*8+h)*8+w)*4 + b
					if flip {
						k = dummyN - 1 - k
					}
					out[((b*3+c)*8+h)*8+w] = float32(k) / float32(dummyN)
				}
			}
		}
	}
	return out
}

// dummyModel is model(sample, t) = sample·t/(t+1) with t cast to float32.
func dummyModel(x []float32, t float64) []float32 {
	tf := float32(t)
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v*tf) / (tf + 1)
	}
	return out
}

func sumMeanAbs(x []float32) (float64, float64) {
	s := 0.0
	for _, v := range x {
		s += math.Abs(float64(v))
	}
	return s, s / float64(len(x))
}

type loopKind int

const (
	plainLoop  loopKind = iota // sample = step(model(sample, t), t, sample)
	scaledLoop                 // sample = scale(sample); sample = step(model(sample, t), t, sample)
)

// fullLoop runs the test loop from evaluation `start` (after add_noise at
// start when noise is given).
func fullLoop(t *testing.T, s Stepper[[]float32], kind loopKind, x []float32, start int, noise []float32) []float32 {
	t.Helper()
	ts := s.Timesteps()
	if noise != nil {
		x = s.AddNoise(x, noise, start)
	}
	for i := start; i < len(ts); i++ {
		if kind == scaledLoop {
			x = s.ScaleModelInput(x, i)
		}
		r, err := s.Step(dummyModel(x, ts[i]), x, i)
		if err != nil {
			t.Fatal(err)
		}
		x = r.Prev
	}
	return x
}

func cfgOf(t *testing.T, kv map[string]any) *Config {
	t.Helper()
	c := &Config{Source: "test config"}
	for k, v := range kv {
		if err := c.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func with(base map[string]any, extra map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

type fullLoopCase struct {
	name      string
	sched     Name
	cfg       map[string]any
	kind      loopKind
	seed      int64 // ≥ 0: Options.Noise = torch.manual_seed(seed)
	initSigma bool  // multiply the sample by init_noise_sigma first
	steps     int
	start     int  // first evaluation (add_noise there when addNoise)
	addNoise  bool // add dummy_noise_deter at start
	sum, mean float64
	hasSum    bool
	sumTol    float64
	meanTol   float64
}

var (
	ddimCfg  = map[string]any{"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear", "clip_sample": true}
	pndmCfg  = map[string]any{"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear"}
	eulerCfg = map[string]any{"num_train_timesteps": 1100, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear"}
	dpmCfg   = map[string]any{"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
		"solver_order": 2, "prediction_type": "epsilon", "thresholding": false, "sample_max_value": 1.0,
		"algorithm_type": "dpmsolver++", "solver_type": "midpoint", "lower_order_final": false, "euler_at_final": false,
		"lambda_min_clipped": "-inf", "variance_type": nil, "final_sigmas_type": "sigma_min"}
	lcmCfg = map[string]any{"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.0120, "beta_schedule": "scaled_linear", "prediction_type": "epsilon"}
	vpred  = map[string]any{"prediction_type": "v_prediction"}
)

// The expected values and tolerances are those asserted by diffusers'
// tests (test_scheduler_{ddim,pndm,euler,euler_ancestral,dpm_multi,lcm}.py).
var fullLoopCases = []fullLoopCase{
	{name: "ddim/full_loop_no_noise", sched: DDIM, cfg: ddimCfg, steps: 10, seed: -1, sum: 172.0067, mean: 0.223967, hasSum: true},
	{name: "ddim/v_prediction", sched: DDIM, cfg: with(ddimCfg, vpred), steps: 10, seed: -1, sum: 52.5302, mean: 0.0684, hasSum: true},
	{name: "ddim/set_alpha_to_one", sched: DDIM, cfg: with(ddimCfg, map[string]any{"set_alpha_to_one": true, "beta_start": 0.01}), steps: 10, seed: -1, sum: 149.8295, mean: 0.1951, hasSum: true},
	{name: "ddim/no_set_alpha_to_one", sched: DDIM, cfg: with(ddimCfg, map[string]any{"set_alpha_to_one": false, "beta_start": 0.01}), steps: 10, seed: -1, sum: 149.0784, mean: 0.1941, hasSum: true},
	{name: "ddim/with_noise", sched: DDIM, cfg: ddimCfg, steps: 10, seed: -1, start: 8, addNoise: true, sum: 354.5418, mean: 0.4616, hasSum: true},
	{name: "pndm/full_loop_no_noise", sched: PNDM, cfg: pndmCfg, steps: 10, seed: -1, sum: 198.1318, mean: 0.2580, hasSum: true},
	{name: "pndm/v_prediction", sched: PNDM, cfg: with(pndmCfg, vpred), steps: 10, seed: -1, sum: 67.3986, mean: 0.0878, hasSum: true},
	{name: "pndm/set_alpha_to_one", sched: PNDM, cfg: with(pndmCfg, map[string]any{"set_alpha_to_one": true, "beta_start": 0.01}), steps: 10, seed: -1, sum: 230.0399, mean: 0.2995, hasSum: true},
	{name: "pndm/no_set_alpha_to_one", sched: PNDM, cfg: with(pndmCfg, map[string]any{"set_alpha_to_one": false, "beta_start": 0.01}), steps: 10, seed: -1, sum: 186.9482, mean: 0.2434, hasSum: true},
	{name: "euler/full_loop_no_noise", sched: Euler, cfg: eulerCfg, kind: scaledLoop, seed: 0, initSigma: true, steps: 10, sum: 10.0807, mean: 0.0131, hasSum: true},
	{name: "euler/v_prediction", sched: Euler, cfg: with(eulerCfg, vpred), kind: scaledLoop, seed: 0, initSigma: true, steps: 10, sum: 0.0002, mean: 2.2676e-06, hasSum: true},
	{name: "euler/karras_sigmas", sched: Euler, cfg: with(eulerCfg, map[string]any{"use_karras_sigmas": true}), kind: scaledLoop, seed: 0, initSigma: true, steps: 10, sum: 124.52299499511719, mean: 0.16213932633399963, hasSum: true},
	{name: "euler/with_noise", sched: Euler, cfg: eulerCfg, kind: scaledLoop, seed: 0, initSigma: true, steps: 10, start: 8, addNoise: true, sum: 57062.9297, mean: 74.3007, hasSum: true},
	{name: "euler_a/full_loop_no_noise", sched: EulerAncestral, cfg: eulerCfg, kind: scaledLoop, seed: 0, initSigma: true, steps: 10, sum: 152.3192, mean: 0.1983, hasSum: true},
	{name: "euler_a/v_prediction", sched: EulerAncestral, cfg: with(eulerCfg, vpred), kind: scaledLoop, seed: 0, initSigma: true, steps: 10, sum: 108.4439, mean: 0.1412, hasSum: true},
	{name: "dpm/full_loop_no_noise", sched: DPMSolver, cfg: dpmCfg, seed: 0, steps: 10, mean: 0.3301},
	{name: "dpm/v_prediction", sched: DPMSolver, cfg: with(dpmCfg, vpred), seed: 0, steps: 10, mean: 0.2251},
	{name: "dpm/karras_v_prediction", sched: DPMSolver, cfg: with(dpmCfg, map[string]any{"prediction_type": "v_prediction", "use_karras_sigmas": true}), seed: 0, steps: 10, mean: 0.2096},
	{name: "dpm/with_noise", sched: DPMSolver, cfg: dpmCfg, seed: -1, steps: 10, start: 5, addNoise: true, sum: 318.4111, mean: 0.4146, hasSum: true},
	{name: "lcm/onestep", sched: LCM, cfg: lcmCfg, seed: 0, steps: 1, sum: 18.7097, mean: 0.0244, hasSum: true, sumTol: 1e-3},
	{name: "lcm/multistep", sched: LCM, cfg: lcmCfg, seed: 0, steps: 10, sum: 197.7616, mean: 0.2575, hasSum: true, sumTol: 1e-3},
}

func TestDiffusersFullLoops(t *testing.T) {
	for _, c := range fullLoopCases {
		t.Run(c.name, func(t *testing.T) {
			opt := Options{}
			if c.seed >= 0 {
				opt.Noise = rng.NewTorch(uint64(c.seed))
			}
			s, err := New(c.sched, cfgOf(t, c.cfg), opt)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SetTimesteps(c.steps); err != nil {
				t.Fatal(err)
			}
			x := dummySampleDeter(false)
			if c.initSigma {
				x = (&HostOps{}).LinComb([]float32{s.InitNoiseSigma()}, x)
			}
			var noise []float32
			if c.addNoise {
				noise = dummySampleDeter(true)
			}
			x = fullLoop(t, s, c.kind, x, c.start, noise)
			sum, mean := sumMeanAbs(x)
			sumTol, meanTol := 1e-2, 1e-3
			if c.sumTol > 0 {
				sumTol = c.sumTol
			}
			if c.meanTol > 0 {
				meanTol = c.meanTol
			}
			t.Logf("sum %.6f (want %.6f, diff %.2g), mean %.8f (want %.8f, diff %.2g)", sum, c.sum, sum-c.sum, mean, c.mean, mean-c.mean)
			if c.hasSum && !(math.Abs(sum-c.sum) <= sumTol) {
				t.Errorf("sum |x| = %.6f, want %.6f ± %g", sum, c.sum, sumTol)
			}
			if !(math.Abs(mean-c.mean) <= meanTol) {
				t.Errorf("mean |x| = %.6f, want %.6f ± %g", mean, c.mean, meanTol)
			}
		})
	}
}
