package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/fixture"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/sched"
)

// progressLines returns the lines of stderr that report an evaluation,
// with the elapsed time cut off.
func progressLines(stderr string) []string {
	var out []string
	elapsed := regexp.MustCompile(`  \d+\.\ds`)
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "step ") || strings.HasPrefix(l, "evaluation ") {
			out = append(out, elapsed.ReplaceAllString(l, ""))
		}
	}
	return out
}

// TestProgressPNDMWarmUp: PNDM as Stable Diffusion configures it
// (skip_prk_steps) evaluates its first step twice; both evaluations are
// labelled step 1 and as the PLMS warm-up, and the steps count to 10.
// Without skip_prk_steps, each of the first three steps is four PRK
// evaluations.
func TestProgressPNDMWarmUp(t *testing.T) {
	model := tinyModel(t, fixture.SD15)
	out := filepath.Join(t.TempDir(), "x.png")
	code, _, stderr := runGenerateCmd("--model", model, "--prompt", "x", "--steps", "10", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := progressLines(stderr)
	want := []string{
		"step  1/10  t=901  cfg  (PLMS warm-up, evaluation 1/2)",
		"step  1/10  t=801  cfg  (PLMS warm-up, evaluation 2/2)",
		"step  2/10  t=801  cfg",
		"step  3/10  t=701  cfg",
		"step  4/10  t=601  cfg",
		"step  5/10  t=501  cfg",
		"step  6/10  t=401  cfg",
		"step  7/10  t=301  cfg",
		"step  8/10  t=201  cfg",
		"step  9/10  t=101  cfg",
		"step 10/10  t=1    cfg",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("progress:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The same folder with the PRK warm-up.
	cfgPath := filepath.Join(model, "scheduler", "scheduler_config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"skip_prk_steps": true`), []byte(`"skip_prk_steps": false`), 1)
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runGenerateCmd("--model", model, "--prompt", "x", "--steps", "4", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got = progressLines(stderr)
	if len(got) != 13 {
		t.Fatalf("%d progress lines, want 12 PRK evaluations and one step:\n%s", len(got), stderr)
	}
	for i, l := range got {
		var w string
		if i < 12 {
			w = "step " + string(rune('1'+i/4)) + "/4  t=\\d+ +cfg  \\(PRK warm-up, evaluation " + string(rune('1'+i%4)) + "/4\\)$"
		} else {
			w = "step 4/4  t=1 +cfg$"
		}
		if !regexp.MustCompile("^" + w).MatchString(l) {
			t.Errorf("line %d %q does not match %q", i, l, w)
		}
	}
}

// TestProgressFractionalTimesteps: the Euler scheduler's fractional
// timesteps print with two decimals at most, in an aligned column.
func TestProgressFractionalTimesteps(t *testing.T) {
	model := tinyModel(t, fixture.SD15)
	code, _, stderr := runGenerateCmd("--model", model, "--prompt", "x", "--steps", "8", "--scheduler", "euler",
		"--out", filepath.Join(t.TempDir(), "x.png"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := progressLines(stderr)
	for i, w := range map[int]string{0: "step 1/8  t=999     cfg", 1: "step 2/8  t=856.29  cfg", 7: "step 8/8  t=0       cfg"} {
		if i >= len(got) || got[i] != w {
			t.Errorf("line %d: %q, want %q", i, got[min(i, len(got)-1)], w)
		}
	}
}

func TestFmtTimestep(t *testing.T) {
	for in, want := range map[float64]string{801: "801", 946.4210815429688: "946.42", 832.5: "832.5", 0.0291: "0.03", 0: "0"} {
		if got := fmtTimestep(in); got != want {
			t.Errorf("fmtTimestep(%v) = %q, want %q", in, got, want)
		}
	}
}

// TestGateSummary: the share of the attention work T-GATE skipped, for
// the plan of the Makefile demo's settings (10 DDIM steps, gate step 6,
// sp_interval 3, fi_interval 4, warm-up 1) on a model with 4 cross- and 4
// self-attention modules. Without T-GATE: 10 evaluations × 2 rows × 8
// modules = 160. With it: cross-attention 6 steps × 2 rows × 4 = 48;
// self-attention computed at steps 1, 2, 4, 6 (2 rows) and 9 (1 row):
// 36; 84 in all, so 76 of 160 (48%) skipped.
func TestGateSummary(t *testing.T) {
	cfg := gate.Config{Mode: gate.V2, GateStep: 6, SPInterval: 3, FIInterval: 4, WarmUp: 1}
	plans, err := gate.Plans(cfg, gate.Loop{Timesteps: 10, Steps: 10, Order: 1, CFG: true})
	if err != nil {
		t.Fatal(err)
	}
	st := gate.Stats{CrossComputed: 24, CrossReused: 16, SelfComputed: 20, SelfReused: 20}
	want := "T-GATE v2 skipped 48% of the attention work: cross-attention reused 16 of 40 times, self-attention 20 of 40; 4 of 10 evaluations ran without the guidance batch"
	if got := gateSummary(gate.V2, st, plans); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// Counts the plan does not explain give no share.
	st.SelfReused, st.SelfComputed = 19, 21
	want = "T-GATE v2: cross-attention reused 16 of 40 times, self-attention 19 of 40"
	if got := gateSummary(gate.V2, st, plans); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// Without guidance (LCM), v1: reuse alone.
	plans, _ = gate.Plans(gate.Config{Mode: gate.V1, GateStep: 1}, gate.Loop{Timesteps: 4, Steps: 4, Order: 1})
	st = gate.Stats{CrossComputed: 4, CrossReused: 12, SelfComputed: 16}
	want = "T-GATE v1 skipped 38% of the attention work: cross-attention reused 12 of 16 times"
	if got := gateSummary(gate.V1, st, plans); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestEvalLabelsOtherLayouts: a scheduler layout the labels do not know
// counts evaluations instead of steps.
func TestEvalLabelsOtherLayouts(t *testing.T) {
	labels := evalLabels(sched.DDIM, sched.Params{}, 4, 5)
	for _, l := range labels {
		if l.step != 0 || l.note != "" {
			t.Errorf("unknown layout labelled %+v", l)
		}
	}
	p := &progress{labels: labels, steps: 4, tWidth: 3}
	pr := pipeline.Progress{Step: 2, Total: 5, Timestep: 801, Plan: gate.StepPlan{CFG: true}}
	if got := p.line(pr); !strings.HasPrefix(got, "evaluation 2/5  t=801  cfg  ") {
		t.Errorf("line %q", got)
	}
}
