package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/sched"
)

// refRun is the part of a ../shared/golden/runs file these tests use.
type refRun struct {
	Call struct {
		Prompt     string  `json:"prompt"`
		Negative   string  `json:"negative_prompt"`
		Height     int     `json:"height"`
		Width      int     `json:"width"`
		Steps      int     `json:"num_inference_steps"`
		Guidance   float64 `json:"guidance_scale"`
		GateStep   *int    `json:"gate_step"`
		SPInterval int     `json:"sp_interval"`
		FIInterval int     `json:"fi_interval"`
		WarmUp     int     `json:"warm_up"`
	} `json:"call"`
	Scheduler struct {
		Class string `json:"class"`
	} `json:"scheduler"`
}

// floats writes values as a JS array literal.
func floats(x []float32) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range x {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%g", v)
	}
	b.WriteByte(']')
	return b.String()
}

// TestReferenceRuns loads diffusers' tiny reference pipelines through
// engine.load from the Hub-layout server (their folders hold README.md and
// io.safetensors, which the loader ignores as diffusers does) and, with the
// runs' initial latents, reproduces diffusers' and T-GATE's final latents
// within 1e-3; runs with other schedulers and the LCM pipeline match the
// CPU backend.
func TestReferenceRuns(t *testing.T) {
	runs := golden.Dir(t, "golden", "runs")
	s := open(t, "/?model=golden/sd15_tiny_pipeline", 15*time.Minute)
	s.waitState(2*time.Minute, "ready", "error")
	s.eval(`window.tgateApp.engine.load("golden/sd15_tiny_pipeline", {hub: location.origin, decoder: "none"})`, nil)

	for _, name := range []string{"ddim_baseline", "ddim_tgate_v2", "ddim_tgate_v2_sareuse"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(runs, name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var r refRun
			if err := json.Unmarshal(data, &r); err != nil {
				t.Fatal(err)
			}
			ts := golden.Tensors(t, filepath.Join(runs, name+".safetensors"))
			sc, err := sched.ParseName(r.Scheduler.Class)
			if err != nil {
				t.Fatal(err)
			}
			c := r.Call
			tg := `{mode: "off"}`
			if c.GateStep != nil {
				tg = fmt.Sprintf(`{mode: "v2", gateStep: %d, spInterval: %d, fiInterval: %d, warmUp: %d}`, *c.GateStep, c.SPInterval, c.FIInterval, c.WarmUp)
			}
			opts := fmt.Sprintf(`{prompt: %s, negativePrompt: %s, steps: %d, guidance: %g, width: %d, height: %d,
			  scheduler: %q, tgate: %s, decoder: "none", returnLatents: true, latents: new Float32Array(%s)}`,
				jsString(c.Prompt), jsString(c.Negative), c.Steps, c.Guidance, c.Width, c.Height, sc, tg, floats(ts["init.latents"].Data))
			got := s.generate(opts)
			want := ts["final.latents"]
			if d := maxRelDiff(got.Latents, want.Data); !(d <= 1e-3) {
				t.Errorf("final latents differ from diffusers' by %.3g relative (max)", d)
			} else {
				t.Logf("final latents within %.2g of diffusers'", d)
			}
		})
	}

	dir := golden.Dir(t, "golden")
	cases := []struct {
		name, folder, opts string
		req                pipeline.Request
	}{
		{"pndm", "sd15_tiny_pipeline", `{prompt: "a castle", steps: 4, seed: 3}`,
			pipeline.Request{Prompt: "a castle", Steps: 4, Guidance: 7.5, Seed: 3}},
		{"euler-a", "sd15_tiny_pipeline", `{prompt: "a castle", steps: 3, seed: 4, scheduler: "euler-a", timestepSpacing: "trailing"}`,
			pipeline.Request{Prompt: "a castle", Steps: 3, Guidance: 7.5, Seed: 4, Scheduler: sched.EulerAncestral, TimestepSpacing: "trailing"}},
		{"dpm++2m-tgate-v1", "sd15_tiny_pipeline", `{prompt: "a castle", steps: 4, seed: 5, scheduler: "dpm++2m", guidanceRescale: 0.7, tgate: {mode: "v1", gateStep: 2}}`,
			pipeline.Request{Prompt: "a castle", Steps: 4, Guidance: 7.5, Seed: 5, Scheduler: sched.DPMSolver, GuidanceRescale: 0.7,
				Gate: gate.Config{Mode: gate.V1, GateStep: 2, SPInterval: 5, FIInterval: 1, WarmUp: 2}}},
		{"lcm-tgate-v2", "lcm_tiny_pipeline", `{prompt: "a castle", steps: 4, seed: 6, tgate: {mode: "v2"}}`,
			pipeline.Request{Prompt: "a castle", Steps: 4, Guidance: 8.5, Seed: 6, Gate: gate.LCMDefaults()}},
	}
	loaded := "sd15_tiny_pipeline"
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.folder != loaded {
				s.eval(`window.tgateApp.engine.load("golden/`+c.folder+`", {hub: location.origin, decoder: "none"})`, nil)
				loaded = c.folder
			}
			got := s.generate(strings.TrimSuffix(c.opts, "}") + `, decoder: "none", returnLatents: true}`)
			want := cpuLatents(t, filepath.Join(dir, c.folder), c.req, nil)
			if d := maxRelDiff(got.Latents, want); !(d <= 1e-4) {
				t.Errorf("latents differ from the CPU backend's by %.3g relative (max)", d)
			}
		})
	}
}
