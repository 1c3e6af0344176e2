package vae

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

const tol = 1e-4

var goldenDir = []string{"golden", "sd15_tiny_pipeline", "vae"}

func openComponent(t *testing.T, dir string) (*hub.Component, *Config) {
	t.Helper()
	comp, err := hub.OpenComponent(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { comp.Close() })
	var cfg Config
	if err := comp.DecodeConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	return comp, &cfg
}

// decodeGolden decodes the golden's decode.in.z with the VAE in dir and
// compares with decode.out.sample; it returns the decoded image.
func decodeGolden(t *testing.T, dir string) *tensor.Host {
	t.Helper()
	b := cpu.New()
	comp, cfg := openComponent(t, dir)
	d, err := LoadDecoder(b, comp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	io := golden.Tensors(t, filepath.Join(golden.Dir(t, goldenDir...), "io.safetensors"))
	z := b.Upload(io["decode.in.z"])
	out, err := d.Decode(b, z)
	if err != nil {
		t.Fatal(err)
	}
	got := golden.ReadBack(t, b, out)
	golden.AssertClose(t, "decode.sample", got, io["decode.out.sample"], tol)
	nn.Free(b, out, z)
	d.Release(b)
	if live := b.Memory().Live; live != 0 {
		t.Errorf("%d bytes live after freeing the output and releasing the decoder", live)
	}
	return got
}

func TestDecodeGolden(t *testing.T) {
	decodeGolden(t, golden.Dir(t, goldenDir...))
}

func TestEncodeGolden(t *testing.T) {
	b := cpu.New()
	comp, cfg := openComponent(t, golden.Dir(t, goldenDir...))
	e, err := LoadEncoder(b, comp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	weights := b.Memory().Live
	io := golden.Tensors(t, filepath.Join(golden.Dir(t, goldenDir...), "io.safetensors"))
	x := b.Upload(io["encode.in.x"])
	dist, err := e.Encode(b, x)
	if err != nil {
		t.Fatal(err)
	}
	std := dist.Std(b)
	golden.AssertClose(t, "encode.mean", golden.ReadBack(t, b, dist.Mean), io["encode.out.mean"], tol)
	golden.AssertClose(t, "encode.logvar", golden.ReadBack(t, b, dist.LogVar), io["encode.out.logvar"], tol)
	golden.AssertClose(t, "encode.std", golden.ReadBack(t, b, std), io["encode.out.std"], tol)
	nn.Free(b, std, x)
	dist.Release(b)
	if live := b.Memory().Live; live != weights {
		t.Errorf("%d bytes live after the pass, want the %d of the weights", live, weights)
	}
	e.Release(b)
	if live := b.Memory().Live; live != 0 {
		t.Errorf("%d bytes live after Release", live)
	}
}

// TestOldAttentionNames rewrites the golden VAE with the pre-0.14 names of
// the mid-block attention (query, key, value, proj_attn, stored as
// [C, C, 1, 1] kernels like the SD1.5 repo file) and expects the same
// decoded image.
func TestOldAttentionNames(t *testing.T) {
	src := golden.Dir(t, goldenDir...)
	f, err := safetensors.Open(filepath.Join(src, "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rename := map[string]string{"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
	var out []safetensors.Named
	renamed := 0
	for _, name := range f.Names() {
		raw, err := f.ReadRaw(name)
		if err != nil {
			t.Fatal(err)
		}
		for nw, old := range rename {
			p := "decoder.mid_block.attentions.0." + nw + "."
			if rest, ok := strings.CutPrefix(name, p); ok {
				name = "decoder.mid_block.attentions.0." + old + "." + rest
				if rest == "weight" {
					raw.Shape = append(raw.Shape.Clone(), 1, 1)
				}
				renamed++
			}
		}
		out = append(out, safetensors.Named{Name: name, Raw: raw})
	}
	if renamed != 8 {
		t.Fatalf("renamed %d tensors, want 8", renamed)
	}
	dir := t.TempDir()
	if err := safetensors.WriteFile(filepath.Join(dir, "diffusion_pytorch_model.safetensors"), nil, out); err != nil {
		t.Fatal(err)
	}
	comp, _ := openComponent(t, src)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), comp.ConfigJSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	decodeGolden(t, dir)
}

// TestShapeMismatch loads the golden weights with configs that disagree
// with them: the error names the tensor and both shapes, and nothing stays
// allocated.
func TestShapeMismatch(t *testing.T) {
	b := cpu.New()
	comp, cfg := openComponent(t, golden.Dir(t, goldenDir...))
	for _, c := range []struct {
		edit func(*Config)
		want []string
	}{
		{func(c *Config) { c.BlockOutChannels = []int{32, 128} }, []string{"decoder.conv_in.weight", "[64,4,3,3]", "[128,4,3,3]"}},
		{func(c *Config) { c.LatentChannels = 8 }, []string{"post_quant_conv.weight", "[4,4,1,1]", "[8,8,1,1]"}},
		{func(c *Config) { c.LayersPerBlock = 2 }, []string{"decoder.up_blocks.0.resnets.2.norm1.weight", "missing"}},
	} {
		bad := *cfg
		bad.BlockOutChannels = append([]int(nil), cfg.BlockOutChannels...)
		c.edit(&bad)
		_, err := LoadDecoder(b, comp, &bad)
		if err == nil {
			t.Errorf("no error for %+v", bad)
			continue
		}
		for _, s := range c.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not mention %s", err, s)
			}
		}
	}
	if live := b.Memory().Live; live != 0 {
		t.Errorf("%d bytes live after failed loads", live)
	}
}

func TestDecodeInputError(t *testing.T) {
	b := cpu.New()
	comp, cfg := openComponent(t, golden.Dir(t, goldenDir...))
	d, err := LoadDecoder(b, comp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	z := b.Upload(tensor.New(1, 3, 8, 8))
	if _, err := d.Decode(b, z); err == nil || !strings.Contains(err.Error(), "[1,3,8,8]") {
		t.Errorf("3-channel latents: error %v", err)
	}
	d.Release(b)
	if _, err := d.Decode(b, b.Upload(tensor.New(1, 4, 8, 8))); err == nil {
		t.Error("Decode after Release did not fail")
	}
}

func TestConfig(t *testing.T) {
	// No scaling_factor key: 0.18215. shift_factor null: no shift.
	c, err := ParseConfig([]byte(`{"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
		"down_block_types": ["DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D"],
		"up_block_types": ["UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D"],
		"shift_factor": null}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ScalingFactor != 0.18215 || c.Shift() != 0 || c.NormNumGroups != 32 || !c.UsePostQuantConv || !c.MidBlockAddAttention {
		t.Errorf("parsed %+v", c)
	}
	c, err = ParseConfig([]byte(`{"scaling_factor": 1.5305, "shift_factor": 0.0609, "latent_channels": 16,
		"block_out_channels": [32], "norm_num_groups": 8}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ScalingFactor != 1.5305 || c.Shift() != 0.0609 || c.LatentChannels != 16 {
		t.Errorf("parsed %+v", c)
	}
	for _, bad := range []struct{ json, want string }{
		{`{"block_out_channels": [30], "norm_num_groups": 8}`, "block_out_channels[0] = 30"},
		{`{"block_out_channels": [32, 64], "norm_num_groups": 8}`, "1 down_block_types for 2"},
		{`{"up_block_types": ["UpBlock2D"], "block_out_channels": [32], "norm_num_groups": 8}`, `"UpBlock2D" is not supported`},
		{`{"act_fn": "gelu", "block_out_channels": [32], "norm_num_groups": 8}`, `act_fn "gelu"`},
		{`{"block_out_channels": []}`, "empty"},
		{`{"layers_per_block": [2]}`, "vae config"},
	} {
		_, err := ParseConfig([]byte(bad.json))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: error %v, want one mentioning %q", bad.json, err, bad.want)
		}
	}
}

// TestRealConfig builds the SD1.5 VAE from its real config.json on the
// shape-only meter backend: the parameter counts match the published
// AutoencoderKL size (83,653,863 = encoder 34,163,592 + quant_conv 72 +
// post_quant_conv 20 + decoder 49,490,179), a 64×64 latent decodes to
// 512×512, and only the weights stay live afterwards.
func TestRealConfig(t *testing.T) {
	comp, err := hub.OpenConfigOnly(golden.Dir(t, "assets", "configs", "runwayml", "stable-diffusion-v1-5", "vae"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := comp.DecodeConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	mb := meter.New()
	count := func(s *nn.Scope) int64 {
		var n int64
		for _, p := range s.Params() {
			n += int64(p.Shape.Numel())
		}
		return n
	}
	sd := nn.NewDeclaredScope(mb, tensor.F16)
	d, err := NewDecoder(sd, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	se := nn.NewDeclaredScope(mb, tensor.F16)
	e, err := NewEncoder(se, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if nd, ne := count(sd), count(se); nd != 49490179+20 || ne != 34163592+72 {
		t.Errorf("decoder %d and encoder %d parameters, want 49490199 and 34163664", nd, ne)
	}
	weights := mb.Memory().Live
	z := mb.Upload(tensor.New(1, 4, 64, 64))
	img, err := d.Decode(mb, z)
	if err != nil {
		t.Fatal(err)
	}
	if !img.Shape().Equal(tensor.Shape{1, 3, 512, 512}) {
		t.Errorf("decoded shape %v", img.Shape())
	}
	dist, err := e.Encode(mb, img)
	if err != nil {
		t.Fatal(err)
	}
	if !dist.Mean.Shape().Equal(tensor.Shape{1, 4, 64, 64}) {
		t.Errorf("encoded mean shape %v", dist.Mean.Shape())
	}
	nn.Free(mb, z, img)
	dist.Release(mb)
	if live := mb.Memory().Live; live != weights {
		t.Errorf("%d bytes live after the passes, want the %d of the weights", live, weights)
	}
}

// TestPipelineDecodes decodes the final latents of the pipeline runs with
// each pipeline's VAE (scaling factors 0.18215 for SD1.5 and PixArt,
// 0.13025 for SDXL, read from config.json) and compares with the decoded
// images the pipelines produced. These latents are large (absmax in the
// hundreds after the division), which the GroupNorms must absorb.
func TestPipelineDecodes(t *testing.T) {
	for _, c := range []struct{ run, pipeline string }{
		{"ddim_baseline", "sd15_tiny_pipeline"},
		{"sdxl_euler_baseline", "sdxl_tiny_pipeline"},
		{"pixart_dpm_baseline", "pixart_tiny_pipeline"},
	} {
		t.Run(c.run, func(t *testing.T) {
			b := cpu.New()
			comp, cfg := openComponent(t, golden.Dir(t, "golden", c.pipeline, "vae"))
			run := golden.Tensors(t, golden.Dir(t, "golden", "runs", c.run+".safetensors"))
			lat, in := run["final.latents"], run["final.vae_decode_input"]
			scaled := tensor.New(lat.Shape...)
			for i, v := range lat.Data {
				scaled.Data[i] = float32(float64(v) / cfg.ScalingFactor)
			}
			golden.AssertClose(t, "latents/scaling_factor", scaled, in, 1e-6)
			d, err := LoadDecoder(b, comp, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Release(b)
			z := b.Upload(in)
			defer b.Free(z)
			out, err := d.Decode(b, z)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Free(out)
			golden.AssertClose(t, "vae_decoded", golden.ReadBack(t, b, out), run["final.vae_decoded"], tol)
		})
	}
}
