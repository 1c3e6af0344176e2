package pipeline

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/tensor"
)

// TestPixArtBins checks the derived tables against entries of diffusers'
// literal ASPECT_RATIO_512_BIN / _256_BIN, and the bin choice.
func TestPixArtBins(t *testing.T) {
	for _, c := range []struct {
		kind       Kind
		sample     int
		ratio      string
		h, w       int
		wantErrors bool
	}{
		{PixArtAlpha, 64, "0.28", 256, 928, false},
		{PixArtAlpha, 32, "0.48", 176, 368, false},
		{PixArtAlpha, 128, "2.09", 1472, 704, false},
		{PixArtSigma, 256, "3.11", 3584, 1152, false},
		{PixArtAlpha, 256, "", 0, 0, true},
		{PixArtAlpha, 16, "", 0, 0, true},
	} {
		bins, err := binsFor(c.kind, c.sample)
		if c.wantErrors {
			if err == nil {
				t.Errorf("%v sample_size %d: no error", c.kind, c.sample)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range bins {
			if e.ratio == c.ratio {
				found = true
				if e.height != c.h || e.width != c.w {
					t.Errorf("%v %d %s: %dx%d, want %dx%d", c.kind, c.sample, c.ratio, e.height, e.width, c.h, c.w)
				}
			}
		}
		if !found {
			t.Errorf("%v %d: no bin %s", c.kind, c.sample, c.ratio)
		}
	}
	bins, _ := binsFor(PixArtAlpha, 128)
	for _, c := range []struct{ h, w, wantH, wantW int }{
		{1024, 1024, 1024, 1024}, // already a bin: unchanged
		{832, 1216, 832, 1216},   // already a bin: unchanged
		{768, 1360, 768, 1344},   // 0.5647 → "0.57"
		{512, 512, 1024, 1024},   // same ratio, the bin's size
		{100, 1000, 512, 2048},   // beyond the table → "0.25"
	} {
		if h, w := classifyBin(bins, c.h, c.w); h != c.wantH || w != c.wantW {
			t.Errorf("classify %dx%d: %dx%d, want %dx%d", c.h, c.w, h, w, c.wantH, c.wantW)
		}
	}
}

// TestResizeBilinear checks F.interpolate(x, size=(4, 4), mode="bilinear",
// align_corners=False) of [[0, 1], [2, 3]], worked out by hand from
// PyTorch's source-index rule, and resize_and_crop_tensor's centre crop.
func TestResizeBilinear(t *testing.T) {
	x := tensor.FromData([]float32{0, 1, 2, 3}, 1, 1, 2, 2)
	got := resizeBilinear(x, 4, 4)
	want := []float32{0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3}
	for i := range want {
		if math.Abs(float64(got.Data[i]-want[i])) > 1e-6 {
			t.Fatalf("resized %v, want %v", got.Data, want)
		}
	}
	// 2×4 → 4×4: scaled by max(4/2, 4/4) = 2 to 4×8, then columns 2..5.
	wide := tensor.FromData([]float32{0, 1, 2, 3, 4, 5, 6, 7}, 1, 1, 2, 4)
	full := resizeBilinear(wide, 4, 8)
	crop := resizeAndCrop(wide, 4, 4)
	if !crop.Shape.Equal(tensor.Shape{1, 1, 4, 4}) {
		t.Fatalf("crop shape %v", crop.Shape)
	}
	for y := 0; y < 4; y++ {
		for x := 0; x < 4; x++ {
			if crop.Data[y*4+x] != full.Data[y*8+2+x] {
				t.Fatalf("crop (%d,%d) = %g, want %g", y, x, crop.Data[y*4+x], full.Data[y*8+2+x])
			}
		}
	}
	if same := resizeAndCrop(wide, 2, 4); same != wide {
		t.Error("resizeAndCrop of an image already at the size made a copy")
	}
}

// TestPixArtBinningNeedsTable: the tiny model (sample_size 16) has no
// aspect-ratio table, as in diffusers, so binning (the default) fails with
// a message naming the way out.
func TestPixArtBinningNeedsTable(t *testing.T) {
	b := cpu.New()
	p := loadPixArtGolden(t, b)
	_, _, _, _, err := p.pixartSize(Request{})
	if err == nil || !strings.Contains(err.Error(), "NoResolutionBinning") {
		t.Errorf("error %v; want one naming NoResolutionBinning", err)
	}
	if _, err := p.denoisePixArt(context.Background(), Request{Decoder: DecodeNone}, &pixartText{}, &Result{}, newPhaseTimer(nil)); err == nil {
		t.Error("generation with binning on the tiny model: no error")
	}
	h, w, gh, gw, err := p.pixartSize(Request{PixArtOptions: PixArtOptions{NoResolutionBinning: true}})
	if err != nil || h != 32 || w != 32 || gh != 32 || gw != 32 {
		t.Errorf("default size without binning: %dx%d generated %dx%d (%v), want 32x32", w, h, gw, gh, err)
	}
}

// TestPixArtBinningGenerate checks binning on a copy of the tiny folder
// whose transformer config says sample_size 32 (no weight depends on it),
// so the pipeline uses ASPECT_RATIO_256_BIN: 200×312 (ratio 0.641) is
// generated at the "0.68" bin, 208×304 — Generate asks for latents of
// that size — and decoding resizes the image back to 200×312. (The tiny
// VAE's scale factor is 2; a whole generation at 208×304 is too slow for
// a unit test on the CPU, so the decode runs on small latents.)
func TestPixArtBinningGenerate(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(golden.Dir(t, "golden", "pixart_tiny_pipeline"))); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "transformer", "config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"sample_size": 16`), []byte(`"sample_size": 32`), 1)
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b := cpu.New()
	p, err := Load(b, dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	req := Request{Prompt: "a red cube", Steps: 1, Width: 312, Height: 200, Decoder: DecodeNone}
	if h, w, err := p.PixArtGenerationSize(req); err != nil || h != 208 || w != 304 {
		t.Fatalf("generation size %dx%d (%v), want 304x208", w, h, err)
	}
	// Latents of the requested size are refused: the loop runs at the bin.
	req.Latents = tensor.New(1, 4, 100, 156)
	if _, err := p.Generate(context.Background(), req); err == nil || !strings.Contains(err.Error(), "[1,4,104,152]") {
		t.Errorf("Generate with latents of the unbinned size: %v; want an error naming [1,4,104,152]", err)
	}
	if shape, err := p.LatentShape(200, 312); err != nil || !shape.Equal(tensor.Shape{1, 4, 100, 156}) {
		t.Errorf("LatentShape(200, 312) = %v (%v), want [1,4,100,156]", shape, err)
	}

	// Decoding 8×12 latents (a 16×24 image) to 15×25: scaled by
	// max(15/16, 25/24) to 16×25, rows 0..14.
	z := tensor.New(1, 4, 8, 12)
	for i := range z.Data {
		z.Data[i] = float32(math.Sin(float64(i)))
	}
	x := b.Upload(z)
	defer b.Free(x)
	img, err := p.decodePixArt(x, DecodeVAE, 15, 25)
	if err != nil {
		t.Fatal(err)
	}
	if !img.Shape.Equal(tensor.Shape{1, 3, 15, 25}) {
		t.Fatalf("image %v, want [1,3,15,25]", img.Shape)
	}
	full, err := p.decodePixArt(x, DecodeVAE, 16, 24)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range img.Data {
		if !(v >= 0 && v <= 1) {
			t.Fatalf("image value %g outside [0, 1]", v)
		}
	}
	// The height is not scaled (int(16·25/24) = 16) and column 0 of the
	// 24→25 stretch reads source column 0 only, so the crop's first column
	// is the plain decode's.
	for c := 0; c < 3; c++ {
		for y := 0; y < 15; y++ {
			got, want := img.Data[(c*15+y)*25], full.Data[(c*16+y)*24]
			if math.Abs(float64(got-want)) > 1e-5 {
				t.Fatalf("channel %d row %d column 0: %g, want %g", c, y, got, want)
			}
		}
	}
}

// TestPixArtRefusesUNetSettings checks that settings of the UNet
// pipelines are refused by name on PixArt rather than ignored.
func TestPixArtRefusesUNetSettings(t *testing.T) {
	p := &Pipeline{Kind: PixArtAlpha}
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{DeepCache: DeepCache{Interval: 3}}, "DeepCache"},
		{Request{AdaptiveGuidance: 0.9}, "Adaptive Guidance"},
		{Request{EditOptions: EditOptions{Strength: 0.5}}, "image to image"},
		{Request{SDXLOptions: SDXLOptions{Prompt2: "x"}}, "SD-XL options"},
		{Request{GuidanceRescale: 0.7}, "guidance rescale"},
	} {
		if err := p.checkPixArtRequest(c.req); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %s", c.req, err, c.want)
		}
	}
	if err := p.checkPixArtRequest(Request{SDXLOptions: SDXLOptions{EncodeEmptyNegativePrompt: true}}); err != nil {
		t.Errorf("an explicit empty negative prompt was refused: %v", err)
	}
}
