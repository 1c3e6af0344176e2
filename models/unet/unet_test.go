package unet

import (
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// tol is the largest error allowed relative to an output's largest
// magnitude: the float32 goldens and float64 re-runs differ by under 1e-6
// of it (golden README), and the CPU backend accumulates in float64.
const tol = 1e-4

func loadModel(t *testing.T, b backend.Backend, rel ...string) *Model {
	t.Helper()
	c, err := hub.OpenComponent(golden.Dir(t, rel...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	m, err := Load(b, c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func floats(h *tensor.Host) []float64 {
	out := make([]float64, len(h.Data))
	for i, v := range h.Data {
		out[i] = float64(v)
	}
	return out
}

// runCase runs one golden case of io.safetensors and compares the output.
func runCase(t *testing.T, b backend.Backend, m *Model, io map[string]*tensor.Host, name string, opt ForwardOpts) *tensor.Host {
	t.Helper()
	x := b.Upload(io[name+".in.sample"])
	ctx := b.Upload(io[name+".in.encoder_hidden_states"])
	defer nn.Free(b, x, ctx)
	out, err := m.Forward(b, x, floats(io[name+".in.timestep"]), ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	got := golden.ReadBack(t, b, out)
	b.Free(out)
	golden.AssertClose(t, name, got, io[name+".out.sample"], tol)
	return got
}

func TestSD15Golden(t *testing.T) {
	b := cpu.New()
	m := loadModel(t, b, "golden", "sd15_tiny_pipeline", "unet")
	io := golden.Tensors(t, golden.Dir(t, "golden", "sd15_tiny_pipeline", "unet", "io.safetensors"))
	live := b.Memory().Live
	for _, c := range []string{"t981", "t500_5", "tbatch"} {
		runCase(t, b, m, io, c, ForwardOpts{})
	}
	if after := b.Memory().Live; after != live {
		t.Errorf("live bytes %d after the forward passes, %d before: intermediates leak", after, live)
	}
}

func TestSD21Golden(t *testing.T) {
	b := cpu.New()
	m := loadModel(t, b, "golden", "unet_sd21_tiny")
	io := golden.Tensors(t, golden.Dir(t, "golden", "unet_sd21_tiny", "io.safetensors"))
	runCase(t, b, m, io, "lat12x20", ForwardOpts{})
	// 10×18 is not a multiple of 4: the upsamplers resize 3×5 → 5×9 → 10×18.
	runCase(t, b, m, io, "lat10x18_resize", ForwardOpts{})
}

func TestLCMGolden(t *testing.T) {
	b := cpu.New()
	m := loadModel(t, b, "golden", "lcm_tiny_pipeline", "unet")
	io := golden.Tensors(t, golden.Dir(t, "golden", "lcm_tiny_pipeline", "unet", "io.safetensors"))

	// timestep_cond computed here from w must match the stored one.
	w := floats(io["t999.in.guidance_w"])
	cond := GuidanceScaleEmbedding(w, *m.Config.TimeCondProjDim)
	golden.AssertClose(t, "guidance embedding", cond, io["t999.in.timestep_cond"], 1e-6)

	tc := b.Upload(cond)
	defer b.Free(tc)
	runCase(t, b, m, io, "t999", ForwardOpts{TimestepCond: tc})

	// Without timestep_cond cond_proj is skipped, which must change the
	// output (the test above is not passing by ignoring the condition).
	x := b.Upload(io["t999.in.sample"])
	ctx := b.Upload(io["t999.in.encoder_hidden_states"])
	defer nn.Free(b, x, ctx)
	out, err := m.Forward(b, x, []float64{999}, ctx, ForwardOpts{})
	if err != nil {
		t.Fatal(err)
	}
	got := golden.ReadBack(t, b, out)
	b.Free(out)
	if _, rel := golden.Diff(got, io["t999.out.sample"]); rel < 1e-2 {
		t.Errorf("output without timestep_cond is within %.2g of the golden: cond_proj has no effect", rel)
	}
}

func TestSDXLGolden(t *testing.T) {
	b := cpu.New()
	m := loadModel(t, b, "golden", "sdxl_tiny_pipeline", "unet")
	io := golden.Tensors(t, golden.Dir(t, "golden", "sdxl_tiny_pipeline", "unet", "io.safetensors"))
	for _, c := range []string{"t901", "lat10x14_resize"} {
		// add_time_proj: the sinusoid of the flattened time ids.
		ids := floats(io[c+".in.time_ids"])
		proj := TimestepSinusoid(ids, *m.Config.AdditionTimeEmbedDim, true, 0)
		golden.AssertClose(t, c+" add_time_proj", proj, io[c+".out.add_time_proj"], 1e-6)

		te := b.Upload(io[c+".in.text_embeds"])
		runCase(t, b, m, io, c, ForwardOpts{TextEmbeds: te, TimeIDs: ids})
		b.Free(te)
	}
}

// TestConfigWeightMismatch loads the SD1.5 weights under a config whose
// cross_attention_dim disagrees with them: the load must fail naming the
// first weight and both shapes.
func TestConfigWeightMismatch(t *testing.T) {
	b := cpu.New()
	c, err := hub.OpenComponent(golden.Dir(t, "golden", "sd15_tiny_pipeline", "unet"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var cfg Config
	if err := c.DecodeConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	cfg.CrossAttentionDim = Int(48)
	_, err = New(b, c, &cfg)
	if err == nil {
		t.Fatal("load succeeded with cross_attention_dim 48 for weights made with 32")
	}
	msg := err.Error()
	for _, want := range []string{"down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", "[32,32]", "[32,48]"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if live := b.Memory().Live; live != 0 {
		t.Errorf("%d bytes still live after the failed load", live)
	}

	// A block count that disagrees: the weights lack nothing the config
	// asks for but have a different layer count.
	cfg2 := cfg
	cfg2.CrossAttentionDim = Int(32)
	cfg2.LayersPerBlock = Int(2)
	if _, err := New(b, c, &cfg2); err == nil || !strings.Contains(err.Error(), "down_blocks.0.resnets.1.norm1.weight") {
		t.Errorf("layers_per_block 2 on 1-layer weights: error %v, want the missing down_blocks.0.resnets.1 weight named", err)
	}
}
