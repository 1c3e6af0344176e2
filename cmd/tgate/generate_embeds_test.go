package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/pipeline"
)

// TestGeneratePromptEmbeds runs `tgate generate` on the tiny PixArt
// pipeline with --save-prompt-embeds, then with --prompt-embeds of the
// file written (no --prompt, and the T5 weights left unread since the
// file holds the negative prompt's embeddings too): both runs' final
// latents are runs/pixart_dpm_baseline's, and the file's embeddings the
// run's recorded ones.
func TestGeneratePromptEmbeds(t *testing.T) {
	run := golden.Tensors(t, golden.Dir(t, "golden", "runs", "pixart_dpm_baseline.safetensors"))
	model := golden.Dir(t, "golden", "pixart_tiny_pipeline")
	dir := t.TempDir()
	embeds := filepath.Join(dir, "cactus.safetensors")
	common := []string{"--model", model, "--steps", "10", "--width", "32", "--height", "32", "--guidance", "4.5",
		"--resolution-binning=false", "--quiet", "--latents", writeTempNPY(t, run["init.latents"]), "--out", ""}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"save", []string{"--prompt", "A small cactus with a happy face in the Sahara desert.", "--negative-prompt", "", "--save-prompt-embeds", embeds}},
		{"load", []string{"--prompt-embeds", embeds}},
	} {
		outLat := filepath.Join(dir, c.name+".npy")
		var stdout, stderr bytes.Buffer
		if code := generate(context.Background(), append(append(common, "--save-latents", outLat), c.args...), &stdout, &stderr); code != 0 {
			t.Fatalf("%s: exit %d: %s", c.name, code, stderr.String())
		}
		golden.AssertClose(t, c.name+": final.latents", readNPY(t, outLat), run["final.latents"], 1e-3)
		if c.name == "save" {
			e, err := pipeline.LoadPromptEmbedsFile(embeds)
			if err != nil {
				t.Fatal(err)
			}
			golden.AssertClose(t, "saved prompt_embeds", e.PromptEmbeds, run["text.prompt_embeds"], 1e-4)
			golden.AssertClose(t, "saved negative_prompt_embeds", e.NegativePromptEmbeds, run["text.negative_prompt_embeds"], 1e-4)
		}
	}

	// The file holds the negative prompt's embeddings: T5 is not loaded.
	var x embedsFlags
	x.load = embeds
	if err := x.check(); err != nil {
		t.Fatal(err)
	}
	var opt pipeline.LoadOptions
	x.loadOptions(&opt)
	if !opt.SkipTextEncoder {
		t.Error("--prompt-embeds with negative embeddings still loads the T5 encoder")
	}
}

// TestGeneratePromptEmbedsErrors checks the flags' usage errors: a UNet
// model, a missing file.
func TestGeneratePromptEmbedsErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		model string
		args  []string
		want  string
	}{
		{"UNet model", "sd15_tiny_pipeline", []string{"--prompt-embeds", filepath.Join(dir, "x.safetensors")}, "--prompt-embeds is for PixArt models"},
		{"UNet model, save", "sd15_tiny_pipeline", []string{"--save-prompt-embeds", filepath.Join(dir, "x.safetensors")}, "--save-prompt-embeds is for PixArt models"},
		{"missing file", "pixart_tiny_pipeline", []string{"--prompt-embeds", filepath.Join(dir, "missing.safetensors")}, "missing.safetensors"},
	} {
		args := append([]string{"--model", golden.Dir(t, "golden", c.model), "--out", "", "--save-latents", filepath.Join(dir, "l.npy")}, c.args...)
		var stdout, stderr bytes.Buffer
		code := generate(context.Background(), args, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%s: exit %d, %q; want exit 2 and %q", c.name, code, stderr.String(), c.want)
		}
	}
}
