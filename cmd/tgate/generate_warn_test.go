package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/fixture"
)

// withoutUNet writes a fixture model of preset without its UNet weights,
// so that generate stops when it loads them.
func withoutUNet(t *testing.T, preset fixture.Preset) string {
	t.Helper()
	model := tinyModel(t, preset)
	if err := os.Remove(filepath.Join(model, "unet", "diffusion_pytorch_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	return model
}

// warningsFor runs generate with args on a model from withoutUNet and
// returns its WARNING lines, all printed before loading.
func warningsFor(t *testing.T, model string, args []string) []string {
	t.Helper()
	full := append([]string{"--model", model, "--prompt", "a red fox", "--quiet", "--out", filepath.Join(t.TempDir(), "x.png")}, args...)
	code, _, stderr := runGenerateCmd(full...)
	if code != 1 || !strings.Contains(stderr, "unet") {
		t.Fatalf("%q: exit %d, want a failure at loading the UNet:\n%s", args, code, stderr)
	}
	var w []string
	for _, l := range strings.Split(stderr, "\n") {
		if s, ok := strings.CutPrefix(l, "WARNING: "); ok {
			w = append(w, s)
		}
	}
	return w
}

// TestSettingWarnings checks the warning each setting that would do
// nothing gets, and that sound settings get none.
func TestSettingWarnings(t *testing.T) {
	sd := withoutUNet(t, fixture.SD15)
	lcm := withoutUNet(t, fixture.LCM)
	const never = "T-GATE v2 never reuses self-attention with these settings: before the gate, "
	const fi1 = "; after it, --fi-interval 1 caches it at every step (2 or more reuses it in between); the image is the same as with --tgate v1"
	for _, c := range []struct {
		model string
		args  []string
		want  []string
	}{
		{sd, []string{"--steps", "25", "--tgate", "v2"}, nil}, // the paper's settings
		{sd, []string{"--steps", "10", "--tgate", "v2", "--gate-step", "6", "--sp-interval", "3", "--fi-interval", "4", "--warm-up", "1"}, nil},
		{lcm, []string{"--tgate", "v2", "--fi-interval", "2"}, nil},
		{sd, []string{"--steps", "25", "--gate-step", "5", "--warm-up", "1"}, []string{
			"--gate-step is ignored: T-GATE is off (add --tgate v1 or v2)",
			"--warm-up is ignored: T-GATE is off (add --tgate v1 or v2)"}},
		{sd, []string{"--steps", "25", "--tgate", "v1", "--sp-interval", "3"}, []string{
			"--sp-interval is ignored: T-GATE v1 never caches self-attention (use --tgate v2)"}},
		{sd, []string{"--steps", "10", "--tgate", "v1"}, []string{
			"T-GATE's gate step 10 is not below the 10 steps: the gate is never passed, so cross-attention is never reused and the guidance batch runs at every step (a --gate-step below 10 gates)"}},
		{lcm, []string{"--steps", "1", "--tgate", "v1"}, []string{
			"T-GATE's gate step 1 is not below the 1 steps: the gate is never passed, so cross-attention is never reused (a --gate-step below 1 gates)"}},
		// The demo's former settings: step 3 caches, and so does every
		// step after the gate.
		{sd, []string{"--steps", "10", "--tgate", "v2", "--gate-step", "4", "--warm-up", "1", "--sp-interval", "2"}, []string{
			never + "the only step between the warm-up and the gate, step 3, is one --sp-interval 2 caches at" + fi1}},
		{lcm, []string{"--tgate", "v2"}, []string{
			never + "no step lies between the warm-up (--warm-up 0) and the gate (--gate-step 1)" + fi1}},
		{sd, []string{"--steps", "25", "--tgate", "v2", "--sp-interval", "1"}, []string{
			never + "--sp-interval 1 caches it at every step" + fi1}},
		{sd, []string{"--steps", "5", "--tgate", "v2", "--gate-step", "4", "--sp-interval", "2", "--warm-up", "1", "--fi-interval", "2"}, []string{
			never + "the only step between the warm-up and the gate, step 3, is one --sp-interval 2 caches at" +
				"; after it, the only step, step 5, is one --fi-interval 2 caches at; the image is the same as with --tgate v1"}},
		{sd, []string{"--steps", "5", "--prompt", " "}, []string{
			"the prompt is empty: the model draws an image with no text to follow (give --prompt TEXT)"}},
		{sd, []string{"--steps", "5", "--guidance", "-2"}, []string{
			"--guidance -2 is below 0: Stable Diffusion guides only above 1, so this runs without guidance, as --guidance 1 does"}},
		{lcm, []string{"--guidance", "-2"}, []string{
			"--guidance -2 is below 0: the LCM's guidance embedding gets a negative strength, w = g − 1 = -3"}},
		{sd, []string{"--steps", "5", "--guidance", "1", "--guidance-rescale", "0.7"}, []string{
			"--guidance-rescale is ignored: it rescales classifier-free guidance, which this run does not use"}},
		{lcm, []string{"--guidance-rescale", "0.7"}, []string{
			"--guidance-rescale is ignored: it rescales classifier-free guidance, which this run does not use"}},
		{sd, []string{"--steps", "5", "--taesd", "taesd.safetensors"}, []string{
			"--taesd is ignored: it is read only with --decoder taesd"}},
	} {
		if got := warningsFor(t, c.model, c.args); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\ngot  %q\nwant %q", c.args, got, c.want)
		}
	}
}

// TestSettingWarningsRun: a run with warnings still runs, and prints them
// before its progress.
func TestSettingWarningsRun(t *testing.T) {
	model := tinyModel(t, fixture.SD15)
	code, _, stderr := runGenerateCmd("--model", model, "--prompt", "", "--steps", "2", "--scheduler", "ddim",
		"--tgate", "v1", "--warm-up", "1", "--out", "", "--save-latents", filepath.Join(t.TempDir(), "l.npy"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := []string{
		"WARNING: --warm-up is ignored: T-GATE v1 never caches self-attention (use --tgate v2)",
		"WARNING: T-GATE's gate step 10 is not below the 2 steps: the gate is never passed, so cross-attention is never reused and the guidance batch runs at every step (a --gate-step below 2 gates)",
		"WARNING: the prompt is empty: the model draws an image with no text to follow (give --prompt TEXT)",
		"step 1/2  t=501  cfg cross=compute self=compute  ",
	}
	lines := strings.Split(stderr, "\n")
	if len(lines) < 4 || !reflect.DeepEqual(lines[:3], want[:3]) || !strings.HasPrefix(lines[3], want[3]) {
		t.Errorf("stderr:\n%s\nwant first:\n%s", stderr, strings.Join(want, "\n"))
	}
}

// demoArgs returns the arguments of the `tgate generate` command of the
// Makefile's demo target.
func demoArgs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	_, recipe, ok := strings.Cut(text, "\ndemo:")
	if !ok {
		t.Fatal("the Makefile has no demo target")
	}
	recipe, _, _ = strings.Cut(recipe, "\n\n")
	for _, line := range strings.Split(recipe, "\n") {
		if _, rest, ok := strings.Cut(line, "/tgate generate "); ok {
			// Words, or double-quoted strings without escapes.
			var args []string
			for _, m := range regexp.MustCompile(`"([^"]*)"|(\S+)`).FindAllStringSubmatch(rest, -1) {
				args = append(args, m[1]+m[2])
			}
			return args
		}
	}
	t.Fatal("the demo target runs no tgate generate")
	return nil
}

// TestDemoShowsTGATE runs the Makefile demo's generate command on the
// fixture model: its T-GATE v2 settings draw no warning, and the plan its
// progress lines report reuses self-attention as well as
// cross-attention, as the summary line confirms.
func TestDemoShowsTGATE(t *testing.T) {
	args := demoArgs(t)
	model, out := tinyModel(t, fixture.SD15), filepath.Join(t.TempDir(), "demo.png")
	for i := range args[:len(args)-1] {
		switch args[i] {
		case "--model":
			args[i+1] = model
		case "--out":
			args[i+1] = out
		}
	}
	code, _, stderr := runGenerateCmd(args...)
	if code != 0 {
		t.Fatalf("%q: exit %d: %s", args, code, stderr)
	}
	if strings.Contains(stderr, "WARNING") {
		t.Errorf("the demo warns:\n%s", stderr)
	}
	if !strings.Contains(stderr, "self=reuse") || !strings.Contains(stderr, "cross=reuse") {
		t.Errorf("the demo's plan reuses no self- or cross-attention:\n%s", stderr)
	}
	m := regexp.MustCompile(`(?m)^T-GATE v2 skipped \d+% of the attention work: cross-attention reused [1-9]\d* of \d+ times, self-attention [1-9]\d* of \d+;`).FindString(stderr)
	if m == "" {
		t.Errorf("no summary with cross- and self-attention reused:\n%s", stderr)
	}
}

// TestNoSelfReuseIsV1: what the warning says of v2 settings that never
// reuse self-attention holds: the latents equal v1's.
func TestNoSelfReuseIsV1(t *testing.T) {
	model, dir := tinyModel(t, fixture.SD15), t.TempDir()
	run := func(name string, gateArgs ...string) []float32 {
		path := filepath.Join(dir, name+".npy")
		args := append([]string{"--model", model, "--prompt", "a red fox", "--steps", "5", "--scheduler", "ddim", "--seed", "3",
			"--quiet", "--out", "", "--save-latents", path, "--gate-step", "3"}, gateArgs...)
		if code, _, stderr := runGenerateCmd(args...); code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		return readNPY(t, path).Data
	}
	v1 := run("v1", "--tgate", "v1")
	v2 := run("v2", "--tgate", "v2", "--warm-up", "0", "--sp-interval", "1", "--fi-interval", "1")
	reuse := run("reuse", "--tgate", "v2", "--warm-up", "0", "--sp-interval", "2", "--fi-interval", "2")
	if !reflect.DeepEqual(v1, v2) {
		t.Error("v2 without self-attention reuse differs from v1")
	}
	if reflect.DeepEqual(v1, reuse) {
		t.Error("v2 with self-attention reuse equals v1: the check above proves nothing")
	}
}
