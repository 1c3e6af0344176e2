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
	"github.com/tgate-web/tgate/lora"
	"github.com/tgate-web/tgate/models/clip"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// goldenLoRA is the golden kohya-format LoRA of the tiny SD 1.5 pipeline.
func goldenLoRA(t *testing.T, scale float64) LoRA {
	t.Helper()
	return LoRA{Name: filepath.Join(golden.Dir(t, "golden", "lora_tiny"), "sd15_tiny_lora_kohya_r4.safetensors"), Scale: scale}
}

// loadTiny loads the tiny SD 1.5 pipeline with the given LoRAs.
func loadTiny(t *testing.T, loras ...LoRA) *Pipeline {
	t.Helper()
	p, err := Load(cpu.New(), golden.Dir(t, "golden", "sd15_tiny_pipeline"), LoadOptions{LoRAs: loras})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// textEmbeddings runs the pipeline's text encoder on [negative; prompt]
// and returns the two [1, 77, D] embeddings.
func textEmbeddings(t *testing.T, p *Pipeline, prompt, negative string) (neg, pos *tensor.Host) {
	t.Helper()
	ids, _ := p.Tokenizer.EncodeForModel(prompt)
	nids, _ := p.Tokenizer.EncodeForModel(negative)
	out, err := p.TextEncoder.Forward(p.b, [][]int32{nids, ids}, clip.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release(p.b)
	h := golden.ReadBack(t, p.b, out.LastHiddenState)
	l, d := h.Shape[1], h.Shape[2]
	neg = tensor.FromData(append([]float32(nil), h.Data[:l*d]...), 1, l, d)
	pos = tensor.FromData(append([]float32(nil), h.Data[l*d:]...), 1, l, d)
	return neg, pos
}

// loraRunModules reads the module lists of runs/NAME.json's "lora" entry:
// the layers peft wrapped, per model.
func loraRunModules(t *testing.T, name string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(golden.Dir(t, "golden", "runs"), name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		LoRA struct {
			Layers map[string]struct {
				Modules []string `json:"modules"`
			} `json:"peft_layers"`
		} `json:"lora"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s.json: %v", name, err)
	}
	out := map[string][]string{}
	for comp, l := range r.LoRA.Layers {
		out[comp] = l.Modules
	}
	return out
}

// TestLoRAParity reproduces runs/lora_ddim_scale1 (the kohya LoRA at scale
// 1, fused at load): the LoRA'd text embeddings, every step's latents, the
// final latents and the decoded image. diffusers ran the LoRA unfused;
// fusing differs from it by ~1e-4 (the run's fuse_lora comparison).
func TestLoRAParity(t *testing.T) {
	const name = "lora_ddim_scale1"
	r := readRun(t, name)
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
	p := loadTiny(t, goldenLoRA(t, 1))

	// The fused weights are exactly the layers peft wrapped.
	for comp, modules := range loraRunModules(t, name) {
		var c loraBase
		switch comp {
		case lora.UNet:
			c = p.unetComp
		case lora.TextEncoder:
			c = p.teComp
		default:
			t.Fatalf("run wraps layers of %q", comp)
		}
		src, err := p.withLoRAs(comp, c)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, m := range modules {
			want = append(want, m+".weight")
		}
		sort.Strings(want)
		if got := src.(*lora.Source).Plan().Keys(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: fused weights\n%v\nthe run wrapped\n%v", comp, got, want)
		}
	}

	neg, pos := textEmbeddings(t, p, r.Call.Prompt, *r.Call.NegativePrompt)
	golden.AssertClose(t, "text.prompt_embeds", pos, gold["text.prompt_embeds"], 1e-3)
	golden.AssertClose(t, "text.negative_prompt_embeds", neg, gold["text.negative_prompt_embeds"], 1e-3)

	req := requestFor(t, r, gold["init.latents"])
	var steps []*tensor.Host
	req.Progress = func(pr Progress) { steps = append(steps, golden.ReadBack(t, p.b, pr.Latents)) }
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != r.UNetEvaluations {
		t.Fatalf("%d evaluations, run has %d", len(steps), r.UNetEvaluations)
	}
	for i, h := range steps {
		golden.AssertClose(t, fmt.Sprintf("step.%02d.latents", i), h, gold[fmt.Sprintf("step.%02d.latents", i)], 1e-3)
	}
	golden.AssertClose(t, "final.latents", res.Latents, gold["final.latents"], 1e-3)
	golden.AssertClose(t, "final.image_np", res.Image, nhwcToNCHW(gold["final.image_np"]), 1e-3)

	// Without the LoRA the same call lands far away, so the comparison
	// above tests the LoRA.
	base := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "ddim_baseline.safetensors"))
	if _, rel := golden.Diff(res.Latents, base["final.latents"]); rel < 0.1 {
		t.Errorf("LoRA result within %.3g of the run without LoRA", rel)
	}
}

// TestSetLoRAs adds the LoRA to a pipeline loaded without one, checks the
// text embeddings become the LoRA run's, then removes it and checks the
// base embeddings (runs/ddim_baseline) come back, with the UNet rebound
// each time.
func TestSetLoRAs(t *testing.T) {
	const prompt = "a photo of an astronaut riding a horse on mars"
	runs := golden.Dir(t, "golden", "runs")
	withLoRA := golden.Tensors(t, filepath.Join(runs, "lora_ddim_scale1.safetensors"))
	base := golden.Tensors(t, filepath.Join(runs, "ddim_baseline.safetensors"))
	p := loadTiny(t)
	neg0, pos0 := textEmbeddings(t, p, prompt, "")
	golden.AssertClose(t, "base text.prompt_embeds", pos0, base["text.prompt_embeds"], 1e-3)

	if err := p.SetLoRAs([]LoRA{goldenLoRA(t, 1)}); err != nil {
		t.Fatal(err)
	}
	if got := p.LoRAs(); len(got) != 1 || got[0].Scale != 1 {
		t.Errorf("LoRAs() = %v", got)
	}
	neg, pos := textEmbeddings(t, p, prompt, "")
	golden.AssertClose(t, "LoRA text.prompt_embeds", pos, withLoRA["text.prompt_embeds"], 1e-3)
	golden.AssertClose(t, "LoRA text.negative_prompt_embeds", neg, withLoRA["text.negative_prompt_embeds"], 1e-3)
	unetPatched := p.UNet

	// A file that does not fit leaves the pipeline as it was.
	bad := LoRA{Name: filepath.Join(golden.Dir(t, "golden", "sd15_tiny_pipeline", "vae"), "diffusion_pytorch_model.safetensors"), Scale: 1}
	if err := p.SetLoRAs([]LoRA{bad}); err == nil || !strings.Contains(err.Error(), "not LoRA weights") {
		t.Errorf("SetLoRAs with a VAE file: %v", err)
	}
	if p.UNet != unetPatched || len(p.LoRAs()) != 1 {
		t.Error("a failed SetLoRAs changed the pipeline")
	}

	if err := p.SetLoRAs(nil); err != nil {
		t.Fatal(err)
	}
	neg1, pos1 := textEmbeddings(t, p, prompt, "")
	if d, _ := golden.Diff(pos1, pos0); d != 0 {
		t.Errorf("after removing the LoRA the prompt embeddings differ from the base by %.3g", d)
	}
	if d, _ := golden.Diff(neg1, neg0); d != 0 {
		t.Errorf("after removing the LoRA the negative embeddings differ from the base by %.3g", d)
	}
	if p.UNet == unetPatched {
		t.Error("the UNet was not rebound")
	}
}

// TestLoRALoadErrors checks that a LoRA whose modules match nothing fails
// the load with their names, and loads with IgnoreUnmatched.
func TestLoRALoadErrors(t *testing.T) {
	// The golden file with one module copied under a name the tiny UNet
	// lacks (its mid block has one attention).
	dir := t.TempDir()
	src := golden.Tensors(t, goldenLoRA(t, 1).Name)
	const stem = "lora_unet_mid_block_attentions_0_proj_in"
	for _, suf := range []string{".lora_down.weight", ".lora_up.weight", ".alpha"} {
		src["lora_unet_mid_block_attentions_3_proj_in"+suf] = src[stem+suf]
	}
	path := filepath.Join(dir, "extra.safetensors")
	writeTensors(t, path, src)

	_, err := Load(cpu.New(), golden.Dir(t, "golden", "sd15_tiny_pipeline"), LoadOptions{LoRAs: []LoRA{{Name: path, Scale: 1}}})
	if err == nil || !strings.Contains(err.Error(), "lora_unet_mid_block_attentions_3_proj_in") {
		t.Fatalf("load error %v; want one naming the unmatched module", err)
	}
	t.Logf("load error: %v", err)
	p := loadTiny(t, LoRA{Name: path, Scale: 1, IgnoreUnmatched: true})
	neg, pos := textEmbeddings(t, p, "a photo of an astronaut riding a horse on mars", "")
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "lora_ddim_scale1.safetensors"))
	golden.AssertClose(t, "text.prompt_embeds", pos, gold["text.prompt_embeds"], 1e-3)
	golden.AssertClose(t, "text.negative_prompt_embeds", neg, gold["text.negative_prompt_embeds"], 1e-3)
}

// writeTensors writes tensors as an F32 safetensors file.
func writeTensors(t *testing.T, path string, tensors map[string]*tensor.Host) {
	t.Helper()
	var named []safetensors.Named
	for n, h := range tensors {
		named = append(named, safetensors.FromHost(n, h, tensor.F32))
	}
	if err := safetensors.WriteFile(path, map[string]string{"format": "pt"}, named); err != nil {
		t.Fatal(err)
	}
}

// TestLoRAAfterRelease runs a T-GATE generation that releases the
// cross-attention weights and the text encoder, then the golden LoRA call
// again: the rebound models must still carry the LoRA.
func TestLoRAAfterRelease(t *testing.T) {
	const name = "lora_ddim_scale1"
	r := readRun(t, name)
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
	p := loadTiny(t, goldenLoRA(t, 1))
	req := requestFor(t, r, gold["init.latents"])
	gated := req
	gated.Gate = gate.Config{Mode: gate.V2, GateStep: 4, SPInterval: 1, FIInterval: 1}
	gated.ReleaseTextEncoder = true
	if _, err := p.Generate(context.Background(), gated); err != nil {
		t.Fatal(err)
	}
	if !p.crossReleased || p.TextEncoder != nil {
		t.Fatalf("the gated run kept its weights (cross released %v, text encoder %v)", p.crossReleased, p.TextEncoder != nil)
	}
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	golden.AssertClose(t, "final.latents after a release", res.Latents, gold["final.latents"], 1e-3)
}

func TestParseLoRA(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		name  string
		scale float64
		bad   bool
	}{
		{"style.safetensors", "style.safetensors", 1, false},
		{"style.safetensors:0.7", "style.safetensors", 0.7, false},
		{"dir/a:b.safetensors", "dir/a:b.safetensors", 1, false},
		{"dir/a:b.safetensors:-0.25", "dir/a:b.safetensors", -0.25, false},
		{":0.5", "", 0, true},
		{"x.safetensors:NaN", "", 0, true},
	} {
		l, err := ParseLoRA(tc.spec)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: no error", tc.spec)
			}
			continue
		}
		if err != nil || l.Name != tc.name || l.Scale != tc.scale || l.Folder != nil {
			t.Errorf("%q: %+v, %v; want %s scale %g", tc.spec, l, err, tc.name, tc.scale)
		}
	}
}
