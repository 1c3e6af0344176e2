package sched

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/rng"
	"github.com/tgate-web/tgate/tensor"
)

// The pipeline goldens in golden/runs: each run records how its scheduler
// was made, the scheduler's resolved config and schedule, and for every
// denoiser evaluation the model output scheduler.step received and the
// latents it returned. Feeding the recorded model outputs through Step
// checks the schedulers in isolation from the models.

type runJSON struct {
	Name           string `json:"name"`
	PipelineClass  string `json:"pipeline_class"`
	PipelineFolder string `json:"pipeline_folder"`
	SchedulerSetup string `json:"scheduler_setup"`
	Scheduler      struct {
		Class          string         `json:"class"`
		Config         map[string]any `json:"config"`
		Order          int            `json:"order"`
		InitNoiseSigma float64        `json:"init_noise_sigma"`
		Timesteps      []float64      `json:"timesteps"`
		Sigmas         []float64      `json:"sigmas"`
	} `json:"scheduler"`
	Call            map[string]any   `json:"call"`
	UnetEvaluations int              `json:"unet_evaluations"`
	NoiseGenerators []string         `json:"noise_generators"`
	Steps           []map[string]any `json:"steps"`
}

// runScheduler builds the scheduler of a run from its pipeline folder's
// scheduler_config.json, as its scheduler_setup says: either the saved
// scheduler, or "pipe.scheduler = X.from_config(pipe.scheduler.config)"
// (optionally with keyword overrides).
func runScheduler(t *testing.T, run *runJSON, noise NoiseSource) Stepper[[]float32] {
	t.Helper()
	// "shared/<folder>" in the run files; the folders live in golden/.
	folder := golden.Dir(t, "golden", filepath.Base(run.PipelineFolder))
	cfg, err := LoadConfig(filepath.Join(folder, "scheduler", "scheduler_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var name Name
	setup := run.SchedulerSetup
	if m := regexp.MustCompile(`(\w+Scheduler)\.from_config\(pipe\.scheduler\.config(.*)\)`).FindStringSubmatch(setup); m != nil {
		if name, err = ParseName(m[1]); err != nil {
			t.Fatal(err)
		}
		for _, kv := range regexp.MustCompile(`(\w+)\s*=\s*("[^"]*"|'[^']*'|[\w.+-]+)`).FindAllStringSubmatch(m[2], -1) {
			v := strings.Trim(kv[2], `"'`)
			var val any = v
			switch v {
			case "True":
				val = true
			case "False":
				val = false
			}
			if err := cfg.Set(kv[1], val); err != nil {
				t.Fatal(err)
			}
		}
	} else if strings.HasPrefix(setup, "scheduler as saved") {
		if name, err = NameFromConfig(cfg); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Fatalf("%s: unrecognised scheduler_setup %q", run.Name, setup)
	}
	if name.ClassName() != run.Scheduler.Class {
		t.Fatalf("%s: setup gives %s, run used %s", run.Name, name.ClassName(), run.Scheduler.Class)
	}
	s, err := New(name, cfg, Options{Noise: noise})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkResolved compares the resolved parameters with the run's config
// (the keys this package models).
func checkResolved(t *testing.T, run *runJSON, p Params) {
	t.Helper()
	c := run.Scheduler.Config
	str := func(key, got string) {
		if v, ok := c[key]; ok {
			want := ""
			if v != nil {
				want = fmt.Sprint(v)
			}
			if got != want {
				t.Errorf("%s: %s = %q, run has %q", run.Name, key, got, want)
			}
		}
	}
	num := func(key string, got float64) {
		if v, ok := c[key].(float64); ok && v != got {
			t.Errorf("%s: %s = %v, run has %v", run.Name, key, got, v)
		}
	}
	boolean := func(key string, got bool) {
		if v, ok := c[key].(bool); ok && v != got {
			t.Errorf("%s: %s = %v, run has %v", run.Name, key, got, v)
		}
	}
	num("num_train_timesteps", float64(p.NumTrainTimesteps))
	num("beta_start", p.BetaStart)
	num("beta_end", p.BetaEnd)
	str("beta_schedule", p.BetaSchedule)
	str("prediction_type", p.PredictionType)
	str("timestep_spacing", p.TimestepSpacing)
	num("steps_offset", float64(p.StepsOffset))
	boolean("rescale_betas_zero_snr", p.RescaleBetasZeroSNR)
	switch run.Scheduler.Class {
	case "DDIMScheduler", "LCMScheduler":
		boolean("set_alpha_to_one", p.SetAlphaToOne)
		boolean("clip_sample", p.ClipSample)
	case "PNDMScheduler":
		boolean("set_alpha_to_one", p.SetAlphaToOne)
		boolean("skip_prk_steps", p.SkipPRKSteps)
	case "EulerDiscreteScheduler":
		boolean("use_karras_sigmas", p.UseKarrasSigmas)
		str("final_sigmas_type", p.FinalSigmasType)
		str("interpolation_type", p.InterpolationType)
	case "DPMSolverMultistepScheduler":
		num("solver_order", float64(p.SolverOrder))
		str("algorithm_type", p.AlgorithmType)
		str("solver_type", p.SolverType)
		boolean("lower_order_final", p.LowerOrderFinal)
		str("final_sigmas_type", p.FinalSigmasType)
	}
}

// recordingSource draws from a generator and keeps every draw.
type recordingSource struct {
	g     *rng.Torch
	draws [][]float32
}

func (r *recordingSource) Randn(n int) []float32 {
	v := r.g.Randn(n)
	r.draws = append(r.draws, append([]float32(nil), v...))
	return v
}

// noiseSeed finds the manual_seed of the run's scheduler noise generator.
func noiseSeed(t *testing.T, run *runJSON) uint64 {
	t.Helper()
	re := regexp.MustCompile(`manual_seed\((\d+)\)`)
	for _, g := range run.NoiseGenerators {
		if m := re.FindStringSubmatch(g); m != nil {
			var seed uint64
			fmt.Sscan(m[1], &seed)
			return seed
		}
	}
	t.Fatalf("%s: noise tensors recorded but no manual_seed in noise_generators %q", run.Name, run.NoiseGenerators)
	return 0
}

func loadRuns(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(golden.Dir(t, "golden", "runs"), "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden runs (%v)", err)
	}
	return files
}

func TestGoldenRuns(t *testing.T) {
	for _, path := range loadRuns(t) {
		var run runJSON
		readJSON(t, path, &run)
		if strings.Contains(run.PipelineClass, "Img2Img") || strings.Contains(run.PipelineClass, "Inpaint") {
			// Image editing starts part-way down the schedule from a noised
			// image (strength); its scheduler calls are those features'.
			continue
		}
		t.Run(run.Name, func(t *testing.T) {
			st := openRun(t, strings.TrimSuffix(path, ".json")+".safetensors")
			// A scheduler that draws noise (EulerAncestral, LCM) gets a CPU
			// generator seeded as the run's noise_generators entry says;
			// every draw is recorded and compared with noise.NN.
			var rec *recordingSource
			var src NoiseSource
			if st.has("noise.00") {
				seed := noiseSeed(t, &run)
				rec = &recordingSource{g: rng.NewTorch(seed)}
				src = rec
			}
			s := runScheduler(t, &run, src)
			checkResolved(t, &run, s.Params())
			steps := int(run.Call["num_inference_steps"].(float64))
			if err := s.SetTimesteps(steps); err != nil {
				t.Fatal(err)
			}
			sameF64(t, "timesteps", s.Timesteps(), run.Scheduler.Timesteps, 0)
			if run.Scheduler.Sigmas != nil {
				sameF32(t, "sigmas", s.Sigmas(), run.Scheduler.Sigmas, 0)
			}
			sameF32(t, "init_noise_sigma", []float32{s.InitNoiseSigma()}, []float64{run.Scheduler.InitNoiseSigma}, 0)
			if s.Order() != run.Scheduler.Order {
				t.Errorf("order %d, run has %d", s.Order(), run.Scheduler.Order)
			}
			if len(s.Timesteps()) != run.UnetEvaluations {
				t.Errorf("%d evaluations, run made %d", len(s.Timesteps()), run.UnetEvaluations)
			}

			init := st.get(t, "init.latents").Data
			x0 := st.get(t, "step.00.sample_in")
			x := x0.Data
			scaled := (&HostOps{}).LinComb([]float32{s.InitNoiseSigma()}, init)
			if d, _ := golden.Diff(shaped(t, scaled, x0), x0); d != 0 {
				t.Errorf("init.latents·init_noise_sigma differs from step.00.sample_in by %g", d)
			}
			worst := 0.0
			for i := range s.Timesteps() {
				key := fmt.Sprintf("step.%02d", i)
				if tt := st.scalar(t, key+".t"); tt != s.Timesteps()[i] {
					t.Errorf("%s.t = %v, scheduler has %v", key, tt, s.Timesteps()[i])
				}
				if st.has(key + ".unet_sample") {
					us := st.get(t, key+".unet_sample")
					in := s.ScaleModelInput(x, i)
					// the UNet batch is [x, x] with CFG, [x] without
					first := tensor.FromData(us.Data[:len(in)], len(in))
					if d, _ := golden.Diff(tensor.FromData(in, len(in)), first); d > 1e-6*golden.MaxAbs(us) {
						t.Errorf("%s: scale_model_input differs from unet_sample by %g", key, d)
					}
				}
				out := st.get(t, key+".model_output").Data
				r, err := s.Step(out, x, i)
				if err != nil {
					t.Fatal(err)
				}
				want := st.get(t, key+".latents")
				_, rel := golden.Diff(shaped(t, r.Prev, want), want)
				worst = math.Max(worst, rel)
				if rel > 1e-5 {
					t.Errorf("%s: latents differ by %.3g of max |latents| (%.4g)", key, rel, golden.MaxAbs(want))
				}
				if st.has(key + ".denoised") {
					wd := st.get(t, key+".denoised")
					if _, d := golden.Diff(shaped(t, r.Denoised, wd), wd); d > 1e-5 {
						t.Errorf("%s: denoised differs by %.3g of max", key, d)
					}
				}
				// Continue from the recorded latents so that each step is
				// checked on exactly the input the reference saw.
				x = want.Data
			}
			if rec != nil {
				for k, d := range rec.draws {
					want := st.get(t, fmt.Sprintf("noise.%02d", k))
					if len(want.Data) != len(d) {
						t.Errorf("noise.%02d differs from the generator's draw %d", k, k)
					} else if abs, _ := golden.Diff(shaped(t, d, want), want); abs != 0 {
						t.Errorf("noise.%02d differs from the generator's draw %d", k, k)
					}
				}
				if st.has(fmt.Sprintf("noise.%02d", len(rec.draws))) {
					t.Errorf("the run drew more than %d noise tensors", len(rec.draws))
				}
			}
			t.Logf("%s: %d steps, worst per-step relative error %.3g", s.Name(), len(s.Timesteps()), worst)
		})
	}
}
