package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/fixture"
)

// tinyModel writes the fixture model of preset into a temporary folder.
func tinyModel(t *testing.T, preset fixture.Preset) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), string(preset))
	if err := fixture.Write(dir, fixture.Options{Preset: preset, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runGenerateCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = generate(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

// TestGenerateStepsBeforeLoading: a --steps value the scheduler cannot
// place is refused in the user's terms, with the largest count that
// works, before any weights are read (the UNet's weights are missing
// here, and the message is still about the steps).
func TestGenerateStepsBeforeLoading(t *testing.T) {
	model := tinyModel(t, fixture.SD15)
	if err := os.Remove(filepath.Join(model, "unet", "diffusion_pytorch_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x.png")
	for _, c := range []struct {
		args []string
		line string
	}{
		// leading spacing with steps_offset 1 puts 1000 steps' last timestep at 1000
		{[]string{"--scheduler", "ddim", "--steps", "1000"}, "--steps 1000 is more than the ddim scheduler of this model can place: use at most 999"},
		{[]string{"--steps", "1000"}, "--steps 1000 is more than the pndm scheduler of this model can place: use at most 999"},
		{[]string{"--scheduler", "euler", "--steps", "1500"}, "--steps 1500 is more than the euler scheduler of this model can place: use at most 1000"},
		{[]string{"--steps", "-1"}, "--steps -1: must be at least 1 (0 picks the model's default)"},
		{[]string{"--steps", "20", "--tgate", "v2", "--sp-interval", "0"}, "T-GATE sp_interval 0: must be at least 1"},
	} {
		args := append([]string{"--model", model, "--prompt", "x", "--out", out}, c.args...)
		code, stdout, stderr := runGenerateCmd(args...)
		want := "tgate generate: " + c.line + "\nRun 'tgate generate -h' for its flags.\n"
		if code != 2 || stdout != "" || stderr != want {
			t.Errorf("%q: exit %d, stderr\n%q\nwant\n%q", c.args, code, stderr, want)
		}
	}
	// A placeable count gets as far as loading, which fails on the
	// missing weights.
	code, _, stderr := runGenerateCmd("--model", model, "--prompt", "x", "--out", out, "--scheduler", "ddim", "--steps", "999", "--quiet")
	if code != 1 || !strings.Contains(stderr, "unet") {
		t.Errorf("--steps 999: exit %d, stderr %q", code, stderr)
	}
}

// TestGenerateOutputsBeforeLoading: --out and --save-latents that cannot
// be written are reported before any weights are read.
func TestGenerateOutputsBeforeLoading(t *testing.T) {
	model := tinyModel(t, fixture.SD15)
	if err := os.Remove(filepath.Join(model, "unet", "diffusion_pytorch_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		line string
	}{
		{[]string{"--out", filepath.Join(tmp, "no", "x.png")}, "cannot write --out " + filepath.Join(tmp, "no", "x.png") + ": folder " + filepath.Join(tmp, "no") + " does not exist"},
		{[]string{"--out", tmp}, "cannot write --out " + tmp + ": it is a folder"},
		{[]string{"--out", filepath.Join(file, "x.png")}, "cannot write --out " + filepath.Join(file, "x.png") + ": " + file + " is not a folder"},
		{[]string{"--out", "", "--save-latents", filepath.Join(tmp, "no", "l.npy")}, "cannot write --save-latents " + filepath.Join(tmp, "no", "l.npy") + ": folder " + filepath.Join(tmp, "no") + " does not exist"},
	}
	if st, err := os.Stat("/proc"); err == nil && st.IsDir() {
		cases = append(cases, struct {
			args []string
			line string
		}{[]string{"--save-latents", "/proc/l.npy"}, "cannot write --save-latents /proc/l.npy: folder /proc is not writable"})
	}
	for _, c := range cases {
		args := append([]string{"--model", model, "--prompt", "x", "--steps", "2"}, c.args...)
		code, _, stderr := runGenerateCmd(args...)
		if want := "tgate generate: " + c.line + "\n"; code != 1 || stderr != want {
			t.Errorf("%q: exit %d, stderr\n%q\nwant\n%q", c.args, code, stderr, want)
		}
	}
	entries, err := os.ReadDir(tmp)
	if err != nil || len(entries) != 1 {
		t.Errorf("the checks left files behind: %v %v", entries, err)
	}
}

// TestCheckWritable: an existing writable file and a new file in a
// writable folder pass, and neither is created or changed.
func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "old.png")
	if err := os.WriteFile(existing, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{existing, filepath.Join(dir, "new.png")} {
		if err := checkWritable("out", p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if b, err := os.ReadFile(existing); err != nil || string(b) != "keep" {
		t.Errorf("existing file changed: %q %v", b, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("folder holds %d entries, want 1", len(entries))
	}
}
