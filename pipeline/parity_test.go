package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// runFile is the part of a runs/NAME.json file the parity tests use.
type runFile struct {
	Name           string `json:"name"`
	PipelineClass  string `json:"pipeline_class"`
	PipelineFolder string `json:"pipeline_folder"`
	SchedulerSetup string `json:"scheduler_setup"`
	Call           struct {
		Prompt          string   `json:"prompt"`
		NegativePrompt  *string  `json:"negative_prompt"`
		Height          int      `json:"height"`
		Width           int      `json:"width"`
		Steps           int      `json:"num_inference_steps"`
		Guidance        float64  `json:"guidance_scale"`
		GuidanceRescale float64  `json:"guidance_rescale"`
		Generator       any      `json:"generator"`
		GateStep        *int     `json:"gate_step"`
		SPInterval      int      `json:"sp_interval"`
		FIInterval      int      `json:"fi_interval"`
		WarmUp          int      `json:"warm_up"`
		Eta             *float64 `json:"eta"`
	} `json:"call"`
	Scheduler struct {
		Class     string         `json:"class"`
		Config    map[string]any `json:"config"`
		Timesteps []float64      `json:"timesteps"`
	} `json:"scheduler"`
	UNetEvaluations int `json:"unet_evaluations"`
}

func readRun(t *testing.T, name string) *runFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(golden.Dir(t, "golden", "runs"), name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r runFile
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s.json: %v", name, err)
	}
	return &r
}

// sdRuns lists every run file of the SD/LCM family (its pipeline folder
// is one of the SD 1.x/2.x/LCM tiny pipelines).
func sdRuns(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(golden.Dir(t, "golden", "runs"), "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		// Runs of other pipelines (SD-XL, PixArt) and of text-to-image
		// with a LoRA or DeepCache record settings runFile does not
		// describe; those features have tests of their own. Read the
		// top-level keys alone first.
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var head map[string]json.RawMessage
		if err := json.Unmarshal(data, &head); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var class string
		json.Unmarshal(head["pipeline_class"], &class)
		_, lora := head["lora"]
		_, deepcache := head["deepcache"]
		if (class == ClassStableDiffusion || class == ClassLatentConsistency) && !lora && !deepcache {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// loadRunPipeline loads the run's pipeline folder with the project's own
// loaders.
func loadRunPipeline(t *testing.T, r *runFile) *Pipeline {
	t.Helper()
	// The run files name the folder relative to the oracle's own root;
	// it lies in ../shared/golden.
	rel := strings.TrimPrefix(r.PipelineFolder, "shared/")
	p, err := Load(cpu.New(), golden.Dir(t, "golden", rel), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// requestFor turns a run file into a Request.
func requestFor(t *testing.T, r *runFile, init *tensor.Host) Request {
	t.Helper()
	name, err := sched.ParseName(r.Scheduler.Class)
	if err != nil {
		t.Fatal(err)
	}
	req := Request{
		Prompt:          r.Call.Prompt,
		Steps:           r.Call.Steps,
		Guidance:        r.Call.Guidance,
		GuidanceRescale: r.Call.GuidanceRescale,
		Width:           r.Call.Width,
		Height:          r.Call.Height,
		Scheduler:       name,
		Latents:         init,
		Decoder:         DecodeVAE,
	}
	if r.Call.NegativePrompt != nil {
		req.NegativePrompt = *r.Call.NegativePrompt
	}
	if r.Call.Eta != nil && *r.Call.Eta != 0 {
		t.Fatalf("%s: eta %g is not supported by the pipeline", r.Name, *r.Call.Eta)
	}
	if r.Call.Generator != nil {
		seed, ok := r.Call.Generator.(float64)
		if !ok {
			t.Fatalf("%s: generator %v is not a seed", r.Name, r.Call.Generator)
		}
		req.Seed = uint64(seed)
	}
	// A spacing the run's resolved config spells out and that differs
	// from what from_config gives is passed explicitly.
	if sp, ok := r.Scheduler.Config["timestep_spacing"].(string); ok {
		req.TimestepSpacing = sp
	}
	if r.Call.GateStep != nil {
		req.Gate = gate.Config{Mode: gate.V2, GateStep: *r.Call.GateStep, SPInterval: r.Call.SPInterval,
			FIInterval: r.Call.FIInterval, WarmUp: r.Call.WarmUp}
	}
	return req
}

// nhwcToNCHW converts diffusers' output_type="np" image to [1, 3, H, W].
func nhwcToNCHW(h *tensor.Host) *tensor.Host {
	n, hh, w, c := h.Shape[0], h.Shape[1], h.Shape[2], h.Shape[3]
	out := tensor.New(n, c, hh, w)
	for y := 0; y < hh; y++ {
		for x := 0; x < w; x++ {
			for k := 0; k < c; k++ {
				out.Data[(k*hh+y)*w+x] = h.Data[(y*w+x)*c+k]
			}
		}
	}
	return out
}

// TestRunParity reproduces every SD/LCM pipeline run of
// ../shared/golden/runs: per-step latents (to localise a mismatch), the
// final latents and the decoded image.
func TestRunParity(t *testing.T) {
	runs := sdRuns(t)
	if len(runs) < 3 {
		t.Fatalf("expected at least the three DDIM runs, found %v", runs)
	}
	for _, name := range runs {
		t.Run(name, func(t *testing.T) {
			r := readRun(t, name)
			gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
			p := loadRunPipeline(t, r)
			req := requestFor(t, r, gold["init.latents"])
			var steps []*tensor.Host
			req.Progress = func(pr Progress) {
				h, err := p.b.ReadBack(pr.Latents)
				if err != nil {
					t.Fatal(err)
				}
				steps = append(steps, h)
			}
			res, err := p.Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Timesteps) != len(r.Scheduler.Timesteps) {
				t.Fatalf("timesteps %v, run %v", res.Timesteps, r.Scheduler.Timesteps)
			}
			for i, ts := range r.Scheduler.Timesteps {
				if float32(res.Timesteps[i]) != float32(ts) {
					t.Fatalf("timesteps %v, run %v", res.Timesteps, r.Scheduler.Timesteps)
				}
			}
			if len(steps) != r.UNetEvaluations {
				t.Fatalf("%d evaluations, run has %d", len(steps), r.UNetEvaluations)
			}
			for i, h := range steps {
				want := gold[fmt.Sprintf("step.%02d.latents", i)]
				abs, rel := golden.Diff(h, want)
				t.Logf("step %02d latents: max abs %.3g, relative %.3g", i, abs, rel)
				if rel > 1e-3 {
					t.Errorf("step %02d latents differ: max abs %.3g, relative %.3g", i, abs, rel)
				}
			}
			golden.AssertClose(t, "final.latents", res.Latents, gold["final.latents"], 1e-3)
			if r.Call.GateStep != nil {
				// The gated run must be distinguishable from the baseline at
				// this tolerance, or the comparison proves nothing.
				base := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "ddim_baseline.safetensors"))
				_, rel := golden.Diff(gold["final.latents"], base["final.latents"])
				t.Logf("golden %s vs golden ddim_baseline: relative %.3g", name, rel)
				if rel < 1e-2 {
					t.Errorf("golden %s is within %.3g of the baseline", name, rel)
				}
			}
			golden.AssertClose(t, "final.image_np", res.Image, nhwcToNCHW(gold["final.image_np"]), 1e-3)
			if len(res.Warnings) != 0 {
				t.Errorf("unexpected warnings %v", res.Warnings)
			}
		})
	}
}
