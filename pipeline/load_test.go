package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// copyFile copies src to dst, creating dst's folder.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// weightsOf reads a component's weights as float32, sorted by name.
func weightsOf(t *testing.T, path string) ([]string, map[string]*tensor.Host) {
	t.Helper()
	ws := golden.Tensors(t, path)
	names := make([]string, 0, len(ws))
	for n := range ws {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, ws
}

// rewritePipeline copies the tiny SD pipeline into a temporary folder,
// writing each model's weights with write(component, srcPath, dstDir).
func rewritePipeline(t *testing.T, write func(comp, src, dstDir string)) string {
	t.Helper()
	src := golden.Dir(t, "golden", "sd15_tiny_pipeline")
	dst := t.TempDir()
	copyFile(t, filepath.Join(src, "model_index.json"), filepath.Join(dst, "model_index.json"))
	copyFile(t, filepath.Join(src, "scheduler", "scheduler_config.json"), filepath.Join(dst, "scheduler", "scheduler_config.json"))
	for _, f := range []string{"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"} {
		copyFile(t, filepath.Join(src, "tokenizer", f), filepath.Join(dst, "tokenizer", f))
	}
	for comp, file := range map[string]string{"text_encoder": "model.safetensors", "unet": "diffusion_pytorch_model.safetensors", "vae": "diffusion_pytorch_model.safetensors"} {
		copyFile(t, filepath.Join(src, comp, "config.json"), filepath.Join(dst, comp, "config.json"))
		write(comp, filepath.Join(src, comp, file), filepath.Join(dst, comp))
	}
	return dst
}

// stemOf is the weight file stem of a component.
func stemOf(comp string) string {
	if comp == "text_encoder" {
		return "model"
	}
	return "diffusion_pytorch_model"
}

func generateIn(t *testing.T, dir string) *Result {
	t.Helper()
	p, err := Load(cpu.New(), dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	res, err := p.Generate(context.Background(), Request{Prompt: "an owl at night", Steps: 2, Guidance: 6, Seed: 9,
		Width: 32, Height: 32, Scheduler: "ddim", Decoder: DecodeVAE})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestLoadHalfAndSharded loads the pipeline from F16 weights (the fp16
// variant file names) and from sharded F32 weights. F16 weights must give
// exactly the result of F32 weights holding the same (F16-rounded)
// values; sharded weights exactly the result of the single files.
func TestLoadHalfAndSharded(t *testing.T) {
	half := rewritePipeline(t, func(comp, src, dst string) {
		names, ws := weightsOf(t, src)
		var out []safetensors.Named
		for _, n := range names {
			out = append(out, safetensors.FromHost(n, ws[n], tensor.F16))
		}
		if err := safetensors.WriteFile(filepath.Join(dst, stemOf(comp)+".fp16.safetensors"), map[string]string{"format": "pt"}, out); err != nil {
			t.Fatal(err)
		}
	})
	rounded := rewritePipeline(t, func(comp, src, dst string) {
		names, ws := weightsOf(t, src)
		var out []safetensors.Named
		for _, n := range names {
			h := ws[n]
			enc := make([]byte, 2*len(h.Data))
			tensor.EncodeFloat32(enc, h.Data, tensor.F16)
			r := tensor.New(h.Shape...)
			tensor.DecodeFloat32(r.Data, enc, tensor.F16)
			out = append(out, safetensors.FromHost(n, r, tensor.F32))
		}
		if err := safetensors.WriteFile(filepath.Join(dst, stemOf(comp)+".safetensors"), map[string]string{"format": "pt"}, out); err != nil {
			t.Fatal(err)
		}
	})
	sharded := rewritePipeline(t, func(comp, src, dst string) {
		names, ws := weightsOf(t, src)
		stem := stemOf(comp)
		weightMap := map[string]string{}
		shards := [2][]safetensors.Named{}
		for i, n := range names {
			shards[i%2] = append(shards[i%2], safetensors.FromHost(n, ws[n], tensor.F32))
			weightMap[n] = fmt.Sprintf("%s-%05d-of-00002.safetensors", stem, i%2+1)
		}
		for k, s := range shards {
			if err := safetensors.WriteFile(filepath.Join(dst, fmt.Sprintf("%s-%05d-of-00002.safetensors", stem, k+1)), map[string]string{"format": "pt"}, s); err != nil {
				t.Fatal(err)
			}
		}
		idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
		if err := os.WriteFile(filepath.Join(dst, stem+".safetensors.index.json"), idx, 0o644); err != nil {
			t.Fatal(err)
		}
	})

	ref := generateIn(t, golden.Dir(t, "golden", "sd15_tiny_pipeline"))
	fromShards := generateIn(t, sharded)
	if abs, _ := golden.Diff(fromShards.Latents, ref.Latents); abs != 0 {
		t.Errorf("sharded weights: latents differ by %g", abs)
	}
	if abs, _ := golden.Diff(fromShards.Image, ref.Image); abs != 0 {
		t.Errorf("sharded weights: image differs by %g", abs)
	}
	fromHalf := generateIn(t, half)
	fromRounded := generateIn(t, rounded)
	if abs, _ := golden.Diff(fromHalf.Latents, fromRounded.Latents); abs != 0 {
		t.Errorf("F16 weights: latents differ from F16-rounded F32 weights by %g", abs)
	}
	if abs, _ := golden.Diff(fromHalf.Image, fromRounded.Image); abs != 0 {
		t.Errorf("F16 weights: image differs from F16-rounded F32 weights by %g", abs)
	}
	abs, rel := golden.Diff(fromHalf.Latents, ref.Latents)
	t.Logf("F16 vs F32 weights: latents max abs %.3g, relative %.3g", abs, rel)
	if abs == 0 {
		t.Error("F16 weights gave exactly the F32 result: the F16 files were not used")
	}
}

func TestLoadErrors(t *testing.T) {
	b := cpu.New()
	if _, err := Load(b, t.TempDir(), LoadOptions{}); err == nil || !strings.Contains(err.Error(), "model_index.json") {
		t.Errorf("empty folder: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "model_index.json"), []byte(`{"_class_name": "StableDiffusion3Pipeline"}`), 0o644)
	if _, err := Load(b, dir, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "StableDiffusion3Pipeline") {
		t.Errorf("unsupported class: %v", err)
	}
	// A UNet whose weights disagree with its config fails at load naming
	// the tensor.
	bad := rewritePipeline(t, func(comp, src, dst string) {
		names, ws := weightsOf(t, src)
		var out []safetensors.Named
		for _, n := range names {
			h := ws[n]
			if comp == "unet" && n == "conv_in.weight" {
				h = tensor.New(h.Shape[0], h.Shape[1], 1, 1)
			}
			out = append(out, safetensors.FromHost(n, h, tensor.F32))
		}
		if err := safetensors.WriteFile(filepath.Join(dst, stemOf(comp)+".safetensors"), nil, out); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := Load(b, bad, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "conv_in.weight") {
		t.Errorf("bad conv_in: %v", err)
	}
	if live := b.Memory().Live; live != 0 {
		t.Errorf("%d bytes live after failed loads", live)
	}
}

func TestRequestErrors(t *testing.T) {
	p := loadGolden(t, "sd15_tiny_pipeline", LoadOptions{SkipVAE: true})
	for _, req := range []Request{
		{Prompt: "x", Steps: 2, Width: 30, Height: 32},
		{Prompt: "x", Steps: 2, Width: 32, Height: 32, Latents: tensor.New(1, 4, 8, 8)},
		{Prompt: "x", Steps: 2, Width: 32, Height: 32, GuidanceRescale: 1.5},
		{Prompt: "x", Steps: 2, Width: 32, Height: 32, Decoder: DecodeVAE},   // VAE not loaded
		{Prompt: "x", Steps: 2, Width: 32, Height: 32, Decoder: DecodeTAESD}, // no TAESD
	} {
		if _, err := p.Generate(context.Background(), req); err == nil {
			t.Errorf("%+v: no error", req)
		} else {
			t.Logf("%v", err)
		}
	}
}

// TestTAESDDecode decodes with the real TAESD decoder: the raw latents
// (no scaling factor) go in and the clamped output comes out, 8x larger.
func TestTAESDDecode(t *testing.T) {
	p := loadGolden(t, "sd15_tiny_pipeline", LoadOptions{SkipVAE: true})
	if err := p.LoadTAESD(golden.Dir(t, "assets", "taesd", "bf16_comfyui_fork", "taesd_decoder.safetensors")); err != nil {
		t.Fatal(err)
	}
	res, err := p.Generate(context.Background(), Request{Prompt: "an owl", Steps: 2, Guidance: 7.5, Seed: 2,
		Width: 16, Height: 16, Scheduler: "ddim", Decoder: DecodeTAESD})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Image.Shape.Equal(tensor.Shape{1, 3, 64, 64}) {
		t.Fatalf("image shape %v", res.Image.Shape)
	}
	b := p.b
	z := b.Upload(res.Latents)
	raw, err := p.TAESD.Decode(b, z)
	b.Free(z)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := b.ReadBack(raw)
	b.Free(raw)
	clamped, inside := 0, 0
	for i, v := range h.Data {
		want := float32(math.Min(math.Max(float64(v), 0), 1))
		if res.Image.Data[i] != want {
			t.Fatalf("pixel %d: %v, want clamp(%v)", i, res.Image.Data[i], v)
		}
		if v < 0 || v > 1 {
			clamped++
		} else {
			inside++
		}
	}
	t.Logf("TAESD image: %d values clamped, %d inside [0,1]", clamped, inside)
	if inside == 0 {
		t.Error("every pixel was clamped")
	}
}

func TestPNGRounding(t *testing.T) {
	// Values and the bytes numpy_to_pil gives: (x·255).round() half to
	// even on float32 products (0.5·255 = 127.5 → 128, float32(0.3)·255
	// rounds to 76.5 → 76, float32(0.1)·255 to 25.5 → 26), clamped.
	vals := []float32{0, 1, 0.5, 0.25, 0.1, 0.3, -0.3, 2, float32(math.NaN())}
	want := []uint8{0, 255, 128, 64, 26, 76, 0, 255, 0}
	img := tensor.New(1, 3, 1, len(vals))
	for c := 0; c < 3; c++ {
		copy(img.Data[c*len(vals):], vals)
	}
	data, err := EncodePNG(img)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		r, g, bl, a := dec.At(i, 0).RGBA()
		if uint8(r>>8) != w || uint8(g>>8) != w || uint8(bl>>8) != w || a != 0xffff {
			t.Errorf("value %v: pixel %d %d %d %d, want %d", vals[i], r>>8, g>>8, bl>>8, a>>8, w)
		}
	}
	if _, err := EncodePNG(tensor.New(1, 4, 2, 2)); err == nil {
		t.Error("no error for a 4-channel tensor")
	}
}
