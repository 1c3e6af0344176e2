package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/pipeline"
)

// TestGenerateEditing runs `tgate generate` with --init-image, --mask and
// --strength on the shared img2img and inpainting runs (their input PNGs
// written to files), and with --lora on the LoRA run, and compares the
// saved final latents with diffusers'.
func TestGenerateEditing(t *testing.T) {
	runs := golden.Dir(t, "golden", "runs")
	for _, tc := range []struct {
		run, model string
		args       []string
		image      bool
		mask       bool
	}{
		{"img2img_ddim_s06", "sd15_tiny_pipeline", []string{"--strength", "0.6", "--seed", "7"}, true, false},
		{"inpaint_ddim", "sd15_inpaint_tiny_pipeline", []string{"--strength", "1", "--seed", "21"}, true, true},
		{"lora_ddim_scale1", "sd15_tiny_pipeline", []string{"--width", "32", "--height", "32",
			"--lora", filepath.Join(golden.Dir(t, "golden", "lora_tiny"), "sd15_tiny_lora_kohya_r4.safetensors") + ":1"}, false, false},
	} {
		t.Run(tc.run, func(t *testing.T) {
			file := filepath.Join(runs, tc.run+".safetensors")
			gold := golden.Tensors(t, file)
			u8 := golden.Bytes(t, file)
			dir := t.TempDir()
			write := func(name string, data []byte) string {
				path := filepath.Join(dir, name)
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				return path
			}
			outLat := filepath.Join(dir, "final.npy")
			args := append([]string{"--model", golden.Dir(t, "golden", tc.model), "--prompt", runPrompt, "--negative-prompt", "",
				"--steps", "10", "--guidance", "7.5", "--scheduler", "ddim", "--quiet",
				"--save-latents", outLat, "--out", ""}, tc.args...)
			if tc.image {
				args = append(args, "--init-image", write("init.png", u8["input.image_png"].Data))
			} else {
				args = append(args, "--latents", writeTempNPY(t, gold["init.latents"]))
			}
			if tc.mask {
				args = append(args, "--mask", write("mask.png", u8["input.mask_png"].Data))
			}
			var stdout, stderr bytes.Buffer
			if code := generate(context.Background(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			golden.AssertClose(t, "final.latents", readNPY(t, outLat), gold["final.latents"], 1e-3)
		})
	}
}

// TestGenerateSingleFile runs `tgate generate` on the single-file form of
// the tiny pipeline, with its folder as --config, and compares the final
// latents with diffusers' ddim_baseline.
func TestGenerateSingleFile(t *testing.T) {
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "ddim_baseline.safetensors"))
	outLat := filepath.Join(t.TempDir(), "final.npy")
	args := []string{"--model", filepath.Join(golden.Dir(t, "golden", "single_file"), "sd15_tiny_pipeline.safetensors"),
		"--config", golden.Dir(t, "golden", "sd15_tiny_pipeline"), "--prompt", runPrompt, "--negative-prompt", "",
		"--steps", "10", "--guidance", "7.5", "--scheduler", "ddim", "--width", "32", "--height", "32", "--quiet",
		"--latents", writeTempNPY(t, gold["init.latents"]), "--save-latents", outLat, "--out", ""}
	var stdout, stderr bytes.Buffer
	if code := generate(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	golden.AssertClose(t, "final.latents", readNPY(t, outLat), gold["final.latents"], 1e-3)

	// --config without a single file is a usage error.
	stderr.Reset()
	args = []string{"--model", golden.Dir(t, "golden", "sd15_tiny_pipeline"), "--config", golden.Dir(t, "golden", "sd15_tiny_pipeline"), "--prompt", "x"}
	if code := generate(context.Background(), args, &stdout, &stderr); code == 0 || !bytes.Contains(stderr.Bytes(), []byte("--config is for a single-file")) {
		t.Errorf("--config with a folder: exit %d, %s", code, stderr.String())
	}
}

// TestGenerateModels runs `tgate generate` with the runs' initial latents
// on the SD-XL and PixArt reference runs and the DeepCache runs (with and
// without T-GATE), and compares the saved final latents with the runs'
// within 1e-3 of their largest magnitude (PixArt's latents reach ~1e3).
func TestGenerateModels(t *testing.T) {
	runs := golden.Dir(t, "golden", "runs")
	sdxl := []string{"--prompt", "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k", "--guidance", "5"}
	pixart := []string{"--prompt", "A small cactus with a happy face in the Sahara desert.", "--negative-prompt", "",
		"--guidance", "4.5", "--resolution-binning=false", "--max-sequence-length", "120"}
	sd := []string{"--prompt", runPrompt, "--negative-prompt", "", "--guidance", "7.5", "--scheduler", "ddim"}
	v2 := func(g, sp, fi, w string) []string {
		return []string{"--tgate", "v2", "--gate-step", g, "--sp-interval", sp, "--fi-interval", fi, "--warm-up", w}
	}
	for _, tc := range []struct {
		run, model string
		args       []string
	}{
		{"sdxl_euler_baseline", "sdxl_tiny_pipeline", sdxl},
		{"sdxl_euler_tgate_v2", "sdxl_tiny_pipeline", append(v2("4", "2", "1", "1"), sdxl...)},
		{"sdxl_tgate_deepcache_a", "sdxl_tiny_pipeline", append(append(v2("5", "1", "1", "0"), sdxl...), "--deepcache-interval", "3")},
		{"pixart_dpm_baseline", "pixart_tiny_pipeline", append([]string{"--tgate", "off"}, pixart...)},
		{"pixart_dpm_tgate_v2", "pixart_tiny_pipeline", append(v2("6", "3", "1", "1"), pixart...)},
		{"deepcache_ddim_i3_b0", "sd15_tiny_pipeline", append([]string{"--deepcache-interval", "3", "--deepcache-branch", "0"}, sd...)},
	} {
		t.Run(tc.run, func(t *testing.T) {
			gold := golden.Tensors(t, filepath.Join(runs, tc.run+".safetensors"))
			outLat := filepath.Join(t.TempDir(), "final.npy")
			args := append([]string{"--model", golden.Dir(t, "golden", tc.model), "--steps", "10", "--width", "32", "--height", "32",
				"--quiet", "--latents", writeTempNPY(t, gold["init.latents"]), "--save-latents", outLat, "--out", ""}, tc.args...)
			var stdout, stderr bytes.Buffer
			if code := generate(context.Background(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			golden.AssertClose(t, "final.latents", readNPY(t, outLat), gold["final.latents"], 1e-3)
		})
	}
}

// TestGenerateSDXLEditing runs `tgate generate` on the tiny SD-XL pipeline
// with --init-image (and --strength), and with --mask at the default
// strength, on the img2img and inpainting runs' input PNGs, and compares
// the saved final latents with pipeline.Generate's for the same request.
func TestGenerateSDXLEditing(t *testing.T) {
	model := golden.Dir(t, "golden", "sdxl_tiny_pipeline")
	p, err := pipeline.Load(cpu.New(), model, pipeline.LoadOptions{SkipVAE: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	runs := golden.Dir(t, "golden", "runs")
	for _, tc := range []struct {
		name, run string
		strength  []string
		mask      bool
	}{
		{"img2img", "img2img_ddim_s06", []string{"--strength", "0.6"}, false},
		{"inpaint default strength", "inpaint_ddim", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u8 := golden.Bytes(t, filepath.Join(runs, tc.run+".safetensors"))
			dir := t.TempDir()
			write := func(name string, data []byte) string {
				path := filepath.Join(dir, name)
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				return path
			}
			outLat := filepath.Join(dir, "final.npy")
			args := append([]string{"--model", model, "--prompt", "a red fox", "--steps", "6", "--guidance", "5", "--seed", "3",
				"--quiet", "--save-latents", outLat, "--out", "", "--init-image", write("init.png", u8["input.image_png"].Data)}, tc.strength...)
			req := pipeline.Request{Prompt: "a red fox", Steps: 6, Guidance: 5, Seed: 3, Decoder: pipeline.DecodeNone}
			if req.InitImage, err = pipeline.ImageFromPNG(u8["input.image_png"].Data); err != nil {
				t.Fatal(err)
			}
			if tc.strength != nil {
				req.Strength = 0.6
			}
			if tc.mask {
				args = append(args, "--mask", write("mask.png", u8["input.mask_png"].Data))
				if req.Mask, err = pipeline.MaskFromPNG(u8["input.mask_png"].Data); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			if code := generate(context.Background(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			want, err := p.Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			golden.AssertClose(t, "final.latents", readNPY(t, outLat), want.Latents, 1e-6)
		})
	}
}

// TestGenerateEditingPlan checks that generate plans an image-to-image run
// over the steps its strength keeps: 10 steps at strength 0.5 run 5,
// labelled 1/5 to 5/5, and a gate step of 6 is reported as never passed.
func TestGenerateEditingPlan(t *testing.T) {
	u8 := golden.Bytes(t, filepath.Join(golden.Dir(t, "golden", "runs"), "img2img_ddim_s06.safetensors"))
	init := filepath.Join(t.TempDir(), "init.png")
	if err := os.WriteFile(init, u8["input.image_png"].Data, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--model", golden.Dir(t, "golden", "sd15_tiny_pipeline"), "--prompt", runPrompt, "--steps", "10",
		"--scheduler", "ddim", "--init-image", init, "--strength", "0.5", "--tgate", "v1", "--gate-step", "6",
		"--out", "", "--save-latents", filepath.Join(t.TempDir(), "l.npy")}
	var stdout, stderr bytes.Buffer
	if code := generate(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stderr.String()
	if n := countPrefixed(out, "step "); n != 5 || !strings.Contains(out, "step 1/5") || !strings.Contains(out, "step 5/5") {
		t.Errorf("want 5 progress lines labelled 1/5..5/5:\n%s", out)
	}
	if !strings.Contains(out, "gate step 6 is not below the 5 steps") {
		t.Errorf("no warning that the gate is never passed:\n%s", out)
	}
	stderr.Reset()
	bad := append(args[:len(args):len(args)], "--strength", "0")
	if code := generate(context.Background(), bad, &stdout, &stderr); code != 2 {
		t.Errorf("--strength 0: exit %d, want 2 (%s)", code, stderr.String())
	}
}
