package hub

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// TestGoldenComponent opens a diffusers-written component folder: the
// weights come from diffusion_pytorch_model.safetensors, never from the
// io.safetensors beside it, and Load returns the stored values.
func TestGoldenComponent(t *testing.T) {
	dir := golden.Dir(t, "golden", "sd15_tiny_pipeline", "unet")
	c, err := OpenComponent(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, ok := c.Lookup("t981.in.sample"); ok {
		t.Error("io.safetensors was taken for weights")
	}
	dt, shape, ok := c.Lookup("conv_in.weight")
	if !ok || dt != tensor.F32 || !shape.Equal(tensor.Shape{32, 4, 3, 3}) {
		t.Fatalf("conv_in.weight: %v %v %v", ok, dt, shape)
	}
	var cfg struct {
		BlockOut []int `json:"block_out_channels"`
	}
	if err := c.DecodeConfig(&cfg); err != nil || len(cfg.BlockOut) != 2 || cfg.BlockOut[1] != 64 {
		t.Fatalf("config: %+v %v", cfg, err)
	}
	b := cpu.New()
	w, err := c.Load(b, "conv_in.weight")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := b.ReadBack(w)
	f, err := safetensors.Open(filepath.Join(dir, "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want, _ := f.ReadFloat32("conv_in.weight")
	golden.AssertClose(t, "conv_in.weight", got, want, 0)
}

func TestMissingPieces(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenComponent(dir); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("folder without config.json: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644)
	if _, err := OpenComponent(dir); err == nil || !strings.Contains(err.Error(), "diffusion_pytorch_model.safetensors") {
		t.Errorf("folder without weights: %v, want the file names looked for", err)
	}
	if _, err := ReadModelIndex(dir); err == nil || !strings.Contains(err.Error(), "not a diffusers model folder") {
		t.Errorf("folder without model_index.json: %v", err)
	}
}

func TestModelIndex(t *testing.T) {
	mi, err := ReadModelIndex(golden.Dir(t, "golden", "lcm_tiny_pipeline"))
	if err != nil {
		t.Fatal(err)
	}
	if mi.ClassName != "LatentConsistencyModelPipeline" || mi.Class("scheduler") != "LCMScheduler" {
		t.Errorf("%+v", mi)
	}
	if _, ok := mi.Components["safety_checker"]; ok {
		t.Error("a [null, null] component is listed")
	}
}
