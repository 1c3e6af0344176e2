package macs

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/models/pixart"
	"github.com/tgate-web/tgate/tensor"
)

// pixartAlpha1024JSON is the transformer config of PixArt-XL-2-1024-MS
// (PixArt-alpha/PixArt-XL-2-1024-MS, transformer/config.json), the model
// of the T-GATE paper's PixArt-α rows.
const pixartAlpha1024JSON = `{
  "_class_name": "Transformer2DModel", "activation_fn": "gelu-approximate", "attention_bias": true,
  "attention_head_dim": 72, "attention_type": "default", "caption_channels": 4096,
  "cross_attention_dim": 1152, "double_self_attention": false, "dropout": 0.0, "in_channels": 4,
  "norm_elementwise_affine": false, "norm_eps": 1e-06, "norm_num_groups": 32,
  "norm_type": "ada_norm_single", "num_attention_heads": 16, "num_embeds_ada_norm": 1000,
  "num_layers": 28, "num_vector_embeds": null, "only_cross_attention": false, "out_channels": 8,
  "patch_size": 2, "sample_size": 128, "upcast_attention": false, "use_linear_projection": false
}`

// TestPixArtPaperRows reproduces the T-GATE paper's PixArt-α MACs
// (README of HaozheLiu-ST/T-GATE: 107.031T without T-GATE, 65.318T with
// the first release's gate at step 8, 73.971T with v2's gate 15, sp 3,
// fi 1, warm-up 2; 25 steps, guidance, 1024×1024) within 1%. The counts
// land within 0.02%: after the gate the original still runs the caption
// projection (4096 → 1152 → 1152 on 120 tokens, 0.725G per evaluation),
// which the pipeline here skips once the cross-attention is cached.
func TestPixArtPaperRows(t *testing.T) {
	cfg, err := pixart.ParseConfig([]byte(pixartAlpha1024JSON))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		gate gate.Config
		want float64
	}{
		{"baseline", gate.Config{GateStep: 25}, 107.031e12},
		{"v1", gate.Config{Mode: gate.V1, GateStep: 8}, 65.318e12},
		{"v2", PixArtDefaultSpec().Gate, 73.971e12},
	} {
		spec := PixArtDefaultSpec()
		spec.Gate = c.gate
		rep, err := CountPixArt(cfg, spec)
		if err != nil {
			t.Fatal(err)
		}
		got := float64(rep.CalflopsMACs())
		rel := got/c.want - 1
		t.Logf("%s: %.3fT (paper %.3fT, %+.2f%%); evaluations %d + %d, gate %+v", c.name, got/1e12, c.want/1e12, 100*rel,
			rep.Semantics.Evals, rep.Fidelity.Evals, rep.Gate)
		if math.Abs(rel) > 0.01 {
			t.Errorf("%s: %.3fT, paper %.3fT: off by %.2f%%", c.name, got/1e12, c.want/1e12, 100*rel)
		}
	}
}

// TestLoadPixArt reads the tiny PixArt folder's configs, and returns nil
// for a Stable Diffusion folder.
func TestLoadPixArt(t *testing.T) {
	pm, err := LoadPixArt(golden.Dir(t, "golden", "pixart_tiny_pipeline"))
	if err != nil {
		t.Fatal(err)
	}
	if pm == nil || pm.Class != "PixArtAlphaPipeline" || pm.Transformer.NumLayers != 3 || pm.Scheduler == nil {
		t.Fatalf("LoadPixArt: %+v", pm)
	}
	rep, err := CountPixArt(pm.Transformer, PixArtSpec{Steps: 10, Guidance: true, WeightDType: tensor.F32, VAEScaleFactor: pm.VAEScaleFactor(),
		Scheduler: pm.Scheduler, Gate: gate.Config{Mode: gate.V2, GateStep: 6, SPInterval: 3, FIInterval: 1, WarmUp: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Width != 32 || rep.Height != 32 {
		t.Errorf("default size %dx%d, want 32x32 (sample_size 16, VAE scale factor 2)", rep.Width, rep.Height)
	}
	// The gate's counters match pipeline's run of pixart_dpm_tgate_v2.
	if st := rep.Gate; st.CrossComputed != 18 || st.CrossReused != 12 || st.SelfReused != 6 {
		t.Errorf("gate stats %+v", st)
	}
	sd, err := LoadPixArt(golden.Dir(t, "golden", "sd15_tiny_pipeline"))
	if err != nil || sd != nil {
		t.Errorf("LoadPixArt of an SD folder: %v, %v; want nil, nil", sd, err)
	}
}
