package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/internal/npy"
	"github.com/tgate-web/tgate/pnginfo"
	"github.com/tgate-web/tgate/tensor"
)

const runPrompt = "a photo of an astronaut riding a horse on mars"

func writeTempNPY(t *testing.T, h *tensor.Host) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "init.npy")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := npy.Write(f, h); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func readNPY(t *testing.T, path string) *tensor.Host {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := npy.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestGenerateReproducesRuns runs `tgate generate` on the tiny golden
// pipeline with the runs' initial latents and compares the saved final
// latents with the goldens (DDIM from the folder's PNDM config, as the run
// files say).
func TestGenerateReproducesRuns(t *testing.T) {
	model := golden.Dir(t, "golden", "sd15_tiny_pipeline")
	for _, tc := range []struct {
		run  string
		gate []string
	}{
		{"ddim_baseline", nil}, // T-GATE is off unless asked for
		{"ddim_tgate_v2", []string{"--tgate", "v2", "--gate-step", "4", "--sp-interval", "2", "--fi-interval", "1", "--warm-up", "1"}},
	} {
		t.Run(tc.run, func(t *testing.T) {
			gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), tc.run+".safetensors"))
			dir := t.TempDir()
			in := writeTempNPY(t, gold["init.latents"])
			outLat := filepath.Join(dir, "final.npy")
			outPNG := filepath.Join(dir, "out.png")
			args := append([]string{"--model", model, "--prompt", runPrompt, "--negative-prompt", "",
				"--steps", "10", "--guidance", "7.5", "--scheduler", "ddim", "--width", "32", "--height", "32",
				"--latents", in, "--save-latents", outLat, "--out", outPNG}, tc.gate...)
			var stdout, stderr bytes.Buffer
			if code := generate(context.Background(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			golden.AssertClose(t, "final.latents", readNPY(t, outLat), gold["final.latents"], 1e-3)
			if n := countPrefixed(stderr.String(), "step "); n != 10 {
				t.Errorf("%d progress lines on stderr, want 10:\n%s", n, stderr.String())
			}
			f, err := os.Open(outPNG)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			// Pixel (0,0) red channel against the golden image, rounded as
			// diffusers' numpy_to_pil does (within one level).
			want := gold["final.image_np"].Data[0] * 255
			r, _, _, _ := img.At(0, 0).RGBA()
			if d := float32(r>>8) - want; d > 1 || d < -1 || img.Bounds().Dx() != 32 {
				t.Errorf("PNG pixel (0,0) red %d, golden %.2f; size %v", r>>8, want, img.Bounds())
			}
		})
	}
}

func TestGenerateFlagErrors(t *testing.T) {
	model := golden.Dir(t, "golden", "sd15_tiny_pipeline")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--scheduler", "heun"}, []string{`"heun"`, "ddim", "pndm", "euler", "euler-a", "dpm++2m", "lcm"}},
		{[]string{"--tgate", "v3"}, []string{`"v3"`, "off", "v1", "v2"}},
		{[]string{"--decoder", "png"}, []string{`"png"`, "vae", "taesd"}},
		{[]string{"--timestep-spacing", "karras"}, []string{`"karras"`, "leading", "trailing", "linspace"}},
		{[]string{"--tgate", "v1", "--gate-step", "0"}, []string{"gate step 0"}},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"--model", model, "--prompt", "x", "--out", filepath.Join(t.TempDir(), "x.png")}, tc.args...)
		if code := generate(context.Background(), args, &stdout, &stderr); code == 0 {
			t.Errorf("%v: exit 0", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%v: stderr %q does not mention %s", tc.args, stderr.String(), w)
			}
		}
	}
}

// TestGenerateTruncationWarning checks that a prompt longer than CLIP's
// 77-token window is reported on stderr.
func TestGenerateTruncationWarning(t *testing.T) {
	model := golden.Dir(t, "golden", "sd15_tiny_pipeline")
	long := strings.Repeat("a red apple on a wooden table, ", 12) + "zebra"
	var stdout, stderr bytes.Buffer
	args := []string{"--model", model, "--prompt", long, "--steps", "1", "--scheduler", "ddim", "--quiet",
		"--out", "", "--save-latents", filepath.Join(t.TempDir(), "l.npy")}
	if code := generate(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "WARNING:") || !strings.Contains(stderr.String(), "zebra") {
		t.Errorf("no truncation warning naming the dropped text on stderr: %q", stderr.String())
	}
}

// readSettings reads the "parameters" text chunk of a PNG file and parses
// it, checking that the file still decodes as an image of the given size.
func readSettings(t *testing.T, path string, width, height int) pnginfo.Params {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("image/png cannot decode %s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Errorf("image is %dx%d, want %dx%d", b.Dx(), b.Dy(), width, height)
	}
	texts, err := pnginfo.Read(data)
	if err != nil {
		t.Fatal(err)
	}
	text, ok := texts[pnginfo.Key]
	if !ok {
		t.Fatalf("no %q text chunk; chunks: %q", pnginfo.Key, texts)
	}
	s, err := pnginfo.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGeneratePNGSettings checks the settings `tgate generate` stores in
// its PNG: every option as given, and the defaults as resolved (50 steps,
// guidance 7.5, the folder's PNDM scheduler, and 32 pixels: the UNet's
// sample_size 16 times the tiny VAE's scale factor 2).
func TestGeneratePNGSettings(t *testing.T) {
	model := golden.Dir(t, "golden", "sd15_tiny_pipeline")
	dir := t.TempDir()

	out := filepath.Join(dir, "given.png")
	args := []string{"--model", model, "--prompt", "a fox, red: bright", "--negative-prompt", "blurry, dark",
		"--steps", "3", "--guidance", "6.5", "--scheduler", "euler-a", "--seed", "77", "--width", "32", "--height", "48",
		"--tgate", "v2", "--gate-step", "2", "--sp-interval", "2", "--fi-interval", "1", "--warm-up", "1",
		"--guidance-rescale", "0.7", "--timestep-spacing", "trailing", "--quiet", "--out", out}
	var stdout, stderr bytes.Buffer
	if code := generate(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	got := readSettings(t, out, 32, 48)
	want := pnginfo.Params{
		Prompt: "a fox, red: bright", NegativePrompt: "blurry, dark", Steps: 3, Sampler: "euler-a", Guidance: 6.5,
		Seed: 77, Width: 32, Height: 48, Model: "sd15_tiny_pipeline",
		Extra: []pnginfo.KV{{Key: "Guidance rescale", Value: "0.7"}, {Key: "Timestep spacing", Value: "trailing"},
			{Key: "T-GATE", Value: "v2"}, {Key: "Gate step", Value: "2"}, {Key: "SP interval", Value: "2"},
			{Key: "FI interval", Value: "1"}, {Key: "Warm up", Value: "1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("settings\n%+v\nwant\n%+v", got, want)
	}

	// Defaults resolved; T-GATE v1 records only its gate step; a model
	// path ending in a slash still gives the folder's name.
	out = filepath.Join(dir, "defaults.png")
	args = []string{"--model", model + string(filepath.Separator), "--prompt", "x", "--tgate", "v1", "--gate-step", "3",
		"--quiet", "--out", out}
	stdout.Reset()
	stderr.Reset()
	if code := generate(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	got = readSettings(t, out, 32, 32)
	want = pnginfo.Params{
		Prompt: "x", Steps: 50, Sampler: "pndm", Guidance: 7.5, Width: 32, Height: 32, Model: "sd15_tiny_pipeline",
		Extra: []pnginfo.KV{{Key: "T-GATE", Value: "v1"}, {Key: "Gate step", Value: "3"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("settings\n%+v\nwant\n%+v", got, want)
	}
}

// countPrefixed counts the lines of s that start with prefix.
func countPrefixed(s, prefix string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}
