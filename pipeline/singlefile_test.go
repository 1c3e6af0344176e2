package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// singleFile is the path of ../shared/golden/single_file/<name>.
func singleFile(t *testing.T, name string) string {
	return filepath.Join(golden.Dir(t, "golden", "single_file"), name)
}

// runLatents generates the named run of ../shared/golden/runs with p from
// the run's init.latents and returns the final latents.
func runLatents(t *testing.T, p *Pipeline, name string, edit func(*Request)) (*tensor.Host, map[string]*tensor.Host) {
	t.Helper()
	r := readRun(t, name)
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
	req := requestFor(t, r, gold["init.latents"])
	req.Decoder = DecodeNone
	if edit != nil {
		edit(&req)
	}
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res.Latents, gold
}

// TestSingleFileRuns loads the F32 single file with the tiny folder's
// configs and reproduces the DDIM baseline and T-GATE runs; the baseline
// must equal the folder-loaded pipeline's exactly, and a second baseline
// after T-GATE released the cross-attention and text encoder weights
// (bound again from the file) must equal the first.
func TestSingleFileRuns(t *testing.T) {
	dir := golden.Dir(t, "golden", "sd15_tiny_pipeline")
	var loaded []string
	p, err := LoadSingleFilePath(cpu.New(), singleFile(t, "sd15_tiny_pipeline.safetensors"), dir,
		LoadOptions{Loaded: func(c string) { loaded = append(loaded, c) }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := strings.Join(loaded, ","); got != "text_encoder,unet,vae" {
		t.Errorf("loaded %s, want text_encoder,unet,vae", got)
	}
	if len(p.Notes) != 0 || p.Kind != StableDiffusion {
		t.Errorf("kind %v, notes %v; want %v with nothing assumed", p.Kind, p.Notes, StableDiffusion)
	}
	base, gold := runLatents(t, p, "ddim_baseline", nil)
	abs, _ := golden.Diff(base, gold["final.latents"])
	t.Logf("single file ddim_baseline final latents: max abs diff %.3g from the golden", abs)
	golden.AssertClose(t, "final.latents", base, gold["final.latents"], 1e-3)

	folder, err := Load(cpu.New(), dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer folder.Close()
	want, _ := runLatents(t, folder, "ddim_baseline", nil)
	if abs, _ := golden.Diff(base, want); abs != 0 {
		t.Errorf("single file and folder baselines differ by %g; want identical", abs)
	}

	gated, ggold := runLatents(t, p, "ddim_tgate_v2", func(r *Request) { r.ReleaseTextEncoder = true })
	abs, _ = golden.Diff(gated, ggold["final.latents"])
	t.Logf("single file ddim_tgate_v2 final latents: max abs diff %.3g from the golden", abs)
	golden.AssertClose(t, "tgate final.latents", gated, ggold["final.latents"], 1e-3)

	again, _ := runLatents(t, p, "ddim_baseline", nil)
	if abs, _ := golden.Diff(again, base); abs != 0 {
		t.Errorf("baseline after a T-GATE run (weights bound again from the file) differs by %g", abs)
	}
}

// TestSingleFileFP16 loads the F16 single file: its generation equals that
// of the tiny folder with its weights written as F16 (the same values,
// which the weight comparison in package singlefile checks).
func TestSingleFileFP16(t *testing.T) {
	dir := golden.Dir(t, "golden", "sd15_tiny_pipeline")
	p, err := LoadSingleFilePath(cpu.New(), singleFile(t, "sd15_tiny_pipeline.fp16.safetensors"), dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got, gold := runLatents(t, p, "ddim_baseline", nil)
	half := rewritePipeline(t, func(comp, src, dstDir string) {
		ws := golden.Tensors(t, src)
		var named []safetensors.Named
		for n, h := range ws {
			named = append(named, safetensors.FromHost(n, h, tensor.F16))
		}
		if err := safetensors.WriteFile(filepath.Join(dstDir, stemOf(comp)+".safetensors"), nil, named); err != nil {
			t.Fatal(err)
		}
	})
	f16, err := Load(cpu.New(), half, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f16.Close()
	want, _ := runLatents(t, f16, "ddim_baseline", nil)
	if abs, _ := golden.Diff(got, want); abs != 0 {
		t.Errorf("F16 single file and F16 folder differ by %g; want identical", abs)
	}
	abs, _ := golden.Diff(got, gold["final.latents"])
	t.Logf("F16 single file ddim_baseline final latents: max abs diff %.3g from the F32 golden (diffusers measured 0.070 with F16-rounded weights)", abs)
}

// configFolder copies the tiny folder's configs, tokenizer and scheduler
// (no weights) to a temporary folder, letting edit change each
// component's config.json.
func configFolder(t *testing.T, edit func(comp string, cfg map[string]any)) string {
	t.Helper()
	src := golden.Dir(t, "golden", "sd15_tiny_pipeline")
	dst := t.TempDir()
	copyFile(t, filepath.Join(src, "model_index.json"), filepath.Join(dst, "model_index.json"))
	copyFile(t, filepath.Join(src, "scheduler", "scheduler_config.json"), filepath.Join(dst, "scheduler", "scheduler_config.json"))
	for _, f := range []string{"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"} {
		copyFile(t, filepath.Join(src, "tokenizer", f), filepath.Join(dst, "tokenizer", f))
	}
	for _, comp := range []string{"text_encoder", "unet", "vae"} {
		data, err := os.ReadFile(filepath.Join(src, comp, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := json.Unmarshal(data, &cfg); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(comp, cfg)
		}
		out, _ := json.Marshal(cfg)
		os.MkdirAll(filepath.Join(dst, comp), 0o755)
		if err := os.WriteFile(filepath.Join(dst, comp, "config.json"), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestSingleFileErrors checks the errors of LoadSingleFile: each names
// what is wrong.
func TestSingleFileErrors(t *testing.T) {
	tiny := golden.Dir(t, "golden", "sd15_tiny_pipeline")
	file := singleFile(t, "sd15_tiny_pipeline.safetensors")
	tmp := t.TempDir()
	notST := filepath.Join(tmp, "notes.safetensors")
	os.WriteFile(notST, []byte("this is not a checkpoint at all"), 0o644)

	// A file without the VAE.
	var noVAE []safetensors.Named
	for n, h := range golden.Tensors(t, file) {
		if !strings.HasPrefix(n, "first_stage_model.") {
			noVAE = append(noVAE, safetensors.FromHost(n, h, tensor.F32))
		}
	}
	noVAEPath := filepath.Join(tmp, "no_vae.safetensors")
	if err := safetensors.WriteFile(noVAEPath, nil, noVAE); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, file, config string
		want               []string
	}{
		{"diffusers component file", filepath.Join(tiny, "unet", "diffusion_pytorch_model.safetensors"), tiny,
			[]string{"not an original-layout", "model.diffusion_model."}},
		{"not safetensors", notST, tiny, []string{"safetensors"}},
		{"pickle", filepath.Join(tmp, "model.ckpt"), tiny, []string{"pickled", "safetensors"}},
		{"cross_attention_dim differs", file, configFolder(t, func(comp string, cfg map[string]any) {
			if comp == "unet" {
				cfg["cross_attention_dim"] = 48
			}
		}), []string{"down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", "[32,32]", "[32,48]",
			"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"}},
		{"layers_per_block differs", file, configFolder(t, func(comp string, cfg map[string]any) {
			if comp == "unet" {
				cfg["layers_per_block"] = 2
			}
		}), []string{"no place", "model.diffusion_model.", "layers_per_block [2 2]"}},
		{"no VAE", noVAEPath, tiny, []string{"no vae weights", "first_stage_model."}},
		{"configs not inferable", file, "", []string{"cross-attention context 32", "config folder"}},
	}
	for _, c := range cases {
		p, err := LoadSingleFilePath(cpu.New(), c.file, c.config, LoadOptions{})
		if err == nil {
			p.Close()
			t.Errorf("%s: loaded; want an error", c.name)
			continue
		}
		t.Logf("%s: %v", c.name, err)
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
	// Without its VAE weights the file still serves latent output.
	p, err := LoadSingleFilePath(cpu.New(), noVAEPath, tiny, LoadOptions{SkipVAE: true})
	if err != nil {
		t.Fatalf("SkipVAE: %v", err)
	}
	p.Close()
}
