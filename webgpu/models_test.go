//go:build js && wasm

package webgpu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"syscall/js"
	"testing"
	"time"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/fixture"
	"github.com/tgate-web/tgate/internal/npy"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/models/clip"
	"github.com/tgate-web/tgate/models/taesd"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/models/vae"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// modelTol bounds max |webgpu − cpu| relative to max |cpu| for a whole
// model's output. The CPU backend accumulates in float64 and the GPU in
// float32; over the tens of layers of these models the difference stays
// near 1e-6–1e-5 of the output's magnitude, while a wrong kernel (a sign,
// an index, a dropped term) moves the output by far more than 1e-3.
const modelTol = 1e-3

// memSource is an in-memory checkpoint: the weights a fixture generated,
// uploaded in their stored dtype (F16 stays packed on the GPU; the CPU
// backend widens the same bytes).
type memSource map[string]*tensor.Raw

func newMemSource(ws []safetensors.Named) memSource {
	m := memSource{}
	for _, w := range ws {
		m[w.Name] = w.Raw
	}
	return m
}

func (m memSource) Lookup(name string) (tensor.DType, tensor.Shape, bool) {
	r, ok := m[name]
	if !ok {
		return 0, nil, false
	}
	return r.DType, r.Shape, true
}

func (m memSource) Load(b backend.Backend, name string) (backend.Tensor, error) {
	r, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("no tensor %q", name)
	}
	return b.UploadRaw(r), nil
}

// randomWeights declares a model on the meter backend and fills its
// parameters by fixture's seeded rule, stored as dt.
func randomWeights(t *testing.T, decl fixture.Declare, seed uint64, dt tensor.DType) memSource {
	t.Helper()
	params, err := fixture.Params(decl)
	if err != nil {
		t.Fatal(err)
	}
	return newMemSource(fixture.RandomWeights(params, seed, dt))
}

// randn returns a seeded N(0, σ²) host tensor.
func randn(seed uint64, sigma float64, shape ...int) *tensor.Host {
	r := rand.New(rand.NewPCG(seed, 17))
	h := tensor.New(shape...)
	for i := range h.Data {
		h.Data[i] = float32(sigma * r.NormFloat64())
	}
	return h
}

// diff returns max |got − want|, that relative to max |want|, and max
// |want|; NaN anywhere in got gives +Inf errors.
func diff(got, want *tensor.Host) (abs, rel, mag float64) {
	for i := range want.Data {
		g, w := float64(got.Data[i]), float64(want.Data[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			return math.Inf(1), math.Inf(1), mag
		}
		abs = math.Max(abs, math.Abs(g-w))
		mag = math.Max(mag, math.Abs(w))
	}
	if mag > 0 {
		rel = abs / mag
	} else {
		rel = abs
	}
	return abs, rel, mag
}

// compare fails the test when got's shape differs from want's or the
// relative error exceeds tol, and logs the errors either way.
func compare(t *testing.T, name string, got, want *tensor.Host, tol float64) {
	t.Helper()
	if !got.Shape.Equal(want.Shape) {
		t.Errorf("%s: webgpu shape %v, want %v", name, got.Shape, want.Shape)
		return
	}
	abs, rel, mag := diff(got, want)
	if !(rel <= tol) {
		t.Errorf("%s %v: max abs error %.3g, relative %.3g of max |want| %.3g > tolerance %.0e", name, want.Shape, abs, rel, mag, tol)
		return
	}
	t.Logf("%s %v: max abs error %.3g, relative %.3g of max |want| %.3g (tolerance %.0e)", name, want.Shape, abs, rel, mag, tol)
}

func readBack(t *testing.T, b backend.Backend, x backend.Tensor) *tensor.Host {
	t.Helper()
	h, err := b.ReadBack(x)
	if err != nil {
		t.Fatalf("%s ReadBack: %v", b.Name(), err)
	}
	return h
}

// onBoth runs f on a fresh CPU backend and on the shared WebGPU backend
// and returns their outputs (f reads back what it compares and frees
// everything it made). It checks that the GPU holds no more tensor memory
// after f than before and logs each backend's time.
func onBoth(t *testing.T, f func(b backend.Backend) []*tensor.Host) (gpu, ref []*tensor.Host) {
	t.Helper()
	start := time.Now()
	ref = f(cpu.New())
	cpuTime := time.Since(start)
	live := shared.Memory().Live
	start = time.Now()
	gpu = f(shared)
	gpuTime := time.Since(start)
	if err := shared.Err(); err != nil {
		t.Fatalf("webgpu device error: %v", err)
	}
	if m := shared.Memory().Live; m != live {
		t.Errorf("webgpu: %d bytes live after the model was released, %d before", m, live)
	}
	t.Logf("cpu %v, webgpu %v (load and forward)", cpuTime.Round(time.Millisecond), gpuTime.Round(time.Millisecond))
	return gpu, ref
}

// The configs are fixture's presets (fixture/presets.go): the keys of
// the real SD 1.5 / SD 2.1 components, scaled down.
const unetSD15JSON = `{
  "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 4,
  "block_out_channels": [32, 64], "center_input_sample": false, "cross_attention_dim": 32,
  "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "downsample_padding": 1,
  "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 1,
  "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05,
  "norm_num_groups": 8, "num_attention_heads": null, "only_cross_attention": false,
  "out_channels": 4, "resnet_time_scale_shift": "default", "sample_size": 16,
  "time_cond_proj_dim": null, "transformer_layers_per_block": 1,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "upcast_attention": false,
  "use_linear_projection": false
}`

// unetSD21JSON differs from SD 1.5 as SD 2.1 does: per-block head
// counts, linear projections, upcast attention.
var unetSD21JSON = strings.NewReplacer(
	`"attention_head_dim": 4`, `"attention_head_dim": [2, 4]`,
	`"upcast_attention": false`, `"upcast_attention": true`,
	`"use_linear_projection": false`, `"use_linear_projection": true`,
).Replace(unetSD15JSON)

const clipJSON = `{
  "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
  "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 32, "initializer_factor": 1.0,
  "initializer_range": 0.02, "intermediate_size": 128, "layer_norm_eps": 1e-05,
  "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 4,
  "num_hidden_layers": 2, "pad_token_id": 1, "projection_dim": 32, "torch_dtype": "float32",
  "vocab_size": 49408
}`

const vaeJSON = `{
  "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [32, 64],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"], "force_upcast": true,
  "in_channels": 3, "latent_channels": 4, "layers_per_block": 1, "mid_block_add_attention": true,
  "norm_num_groups": 8, "out_channels": 3, "sample_size": 32, "scaling_factor": 0.18215,
  "shift_factor": null, "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
  "use_post_quant_conv": true, "use_quant_conv": true
}`

// TestModelUNet runs the tiny UNet on both backends: the SD 1.5 layout
// with F32 weights (conv projections stored [C, C, 1, 1] as diffusers
// writes them) and the SD 2.1 layout with F16 weights, each on a batch of
// two non-square latents (8×12, so a swapped H and W cannot pass) with
// 77-token conditioning and one timestep per sample.
func TestModelUNet(t *testing.T) {
	for _, c := range []struct {
		name string
		json string
		dt   tensor.DType
	}{
		{"sd15/f32", unetSD15JSON, tensor.F32},
		{"sd21/f16", unetSD21JSON, tensor.F16},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := unet.ParseConfig([]byte(c.json))
			if err != nil {
				t.Fatal(err)
			}
			src := randomWeights(t, func(m *meter.Backend) ([]nn.Param, error) {
				u, err := unet.NewDeclared(m, cfg, tensor.F32)
				if err != nil {
					return nil, err
				}
				params := u.Params()
				if !cfg.UseLinearProj {
					for i, p := range params {
						if len(p.Shape) == 2 && (strings.HasSuffix(p.Name, ".proj_in.weight") || strings.HasSuffix(p.Name, ".proj_out.weight")) {
							params[i].Shape = tensor.Shape{p.Shape[0], p.Shape[1], 1, 1}
						}
					}
				}
				return params, nil
			}, 11, c.dt)
			sample := randn(1, 1, 2, 4, 8, 12)
			ctx := randn(2, 1, 2, 77, 32)
			timesteps := []float64{981, 500.5}

			gpu, ref := onBoth(t, func(b backend.Backend) []*tensor.Host {
				m, err := unet.New(b, src, cfg)
				if err != nil {
					t.Fatalf("%s: %v", b.Name(), err)
				}
				defer m.Release(b)
				x, e := b.Upload(sample), b.Upload(ctx)
				defer nn.Free(b, x, e)
				out, err := m.Forward(b, x, timesteps, e, unet.ForwardOpts{})
				if err != nil {
					t.Fatalf("%s: %v", b.Name(), err)
				}
				defer b.Free(out)
				return []*tensor.Host{readBack(t, b, out)}
			})
			compare(t, "unet "+c.name, gpu[0], ref[0], modelTol)
		})
	}
}

// TestModelCLIP runs the tiny CLIP text encoder (legacy eos_token_id 2:
// pooled at the largest id) on two 77-token rows of prompt-like ids —
// BOS, words, EOS, EOS padding — and compares last_hidden_state and
// pooler_output: SD 1.5's quick_gelu with F32 weights and SD 2.1's erf
// GELU with F16 weights.
func TestModelCLIP(t *testing.T) {
	for _, c := range []struct {
		name string
		json string
		dt   tensor.DType
	}{
		{"sd15/f32", clipJSON, tensor.F32},
		{"sd21/f16", strings.Replace(clipJSON, `"quick_gelu"`, `"gelu"`, 1), tensor.F16},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := clip.ParseConfig([]byte(c.json))
			if err != nil {
				t.Fatal(err)
			}
			src := randomWeights(t, fixture.ScopeParams(func(s *nn.Scope) error {
				_, err := clip.New(s, cfg)
				return err
			}), 12, c.dt)
			r := rand.New(rand.NewPCG(3, 4))
			ids := make([][]int32, 2)
			for i, words := range []int{7, 30} {
				row := []int32{49406}
				for range words {
					row = append(row, int32(r.IntN(49406)))
				}
				for len(row) < 77 {
					row = append(row, 49407)
				}
				ids[i] = row
			}

			gpu, ref := onBoth(t, func(b backend.Backend) []*tensor.Host {
				m, err := clip.Load(b, src, cfg)
				if err != nil {
					t.Fatalf("%s: %v", b.Name(), err)
				}
				defer m.Release(b)
				out, err := m.Forward(b, ids, clip.Options{})
				if err != nil {
					t.Fatalf("%s: %v", b.Name(), err)
				}
				defer out.Release(b)
				return []*tensor.Host{readBack(t, b, out.LastHiddenState), readBack(t, b, out.Pooled)}
			})
			compare(t, "clip "+c.name+" last_hidden_state", gpu[0], ref[0], modelTol)
			compare(t, "clip "+c.name+" pooler_output", gpu[1], ref[1], modelTol)
		})
	}
}

// decodeOnBoth decodes z with the VAE decoder in src on the WebGPU and
// CPU backends and returns both images.
func decodeOnBoth(t *testing.T, src nn.Source, cfg *vae.Config, z *tensor.Host) (gpu, ref []*tensor.Host) {
	return onBoth(t, func(b backend.Backend) []*tensor.Host {
		d, err := vae.LoadDecoder(b, src, cfg)
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
		defer d.Release(b)
		x := b.Upload(z)
		defer b.Free(x)
		out, err := d.Decode(b, x)
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
		defer b.Free(out)
		return []*tensor.Host{readBack(t, b, out)}
	})
}

// TestModelVAE decodes non-square 6×10 latents with the tiny two-level
// AutoencoderKL decoder (post_quant_conv, mid-block attention, nearest
// upsampling) to 12×20 images.
func TestModelVAE(t *testing.T) {
	cfg, err := vae.ParseConfig([]byte(vaeJSON))
	if err != nil {
		t.Fatal(err)
	}
	src := randomWeights(t, fixture.ScopeParams(func(s *nn.Scope) error {
		_, err := vae.NewDecoder(s, cfg)
		return err
	}), 13, tensor.F32)
	z := randn(5, 1, 1, 4, 6, 10)

	gpu, ref := decodeOnBoth(t, src, cfg, z)
	compare(t, "vae decode", gpu[0], ref[0], modelTol)
}

// fetchShared reads a file of the reference data over HTTP: cmd/wasmtest
// serves ../shared (beside the project root) under /shared/.
func fetchShared(t *testing.T, rel string) []byte {
	t.Helper()
	url := js.Global().Get("location").Get("origin").String() + "/shared/" + rel
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("fetching %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("fetching %s: %s (does the test runner serve ../shared under /shared/?)", url, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return data
}

func fetchNPY(t *testing.T, rel string) *tensor.Host {
	t.Helper()
	h, err := npy.Read(bytes.NewReader(fetchShared(t, rel)))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return h
}

// taesdTol bounds the TAESD decoder's error relative to the golden's
// largest magnitude. The golden was computed in float64 from the BF16
// weights (widened exactly); its float32 run differs by 2.8e-6
// (max_abs_diff_fp32_vs_fp64 in tae_goldens.json, output magnitude 1.07),
// and the host test allows 1e-4. The GPU computes in float32 with its own
// summation order, so the same 1e-4 leaves it a margin of over 10× above
// the float32 rounding error while any wrong kernel moves the image by
// far more.
const taesdTol = 1e-4

// TestModelTAESD decodes the golden latent of tae_goldens.json
// (taesd_decoder_bf16: [1, 4, 8, 8] → [1, 3, 64, 64]) with the real
// BF16 TAESD decoder weights, packed BF16 on the GPU, and compares with
// the stored float64 output.
func TestModelTAESD(t *testing.T) {
	// The file also holds entries that are not cases (strings): decode
	// only the one this test runs.
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(fetchShared(t, "assets/goldens/tae_goldens.json"), &entries); err != nil {
		t.Fatalf("tae_goldens.json: %v", err)
	}
	raw, ok := entries["taesd_decoder_bf16"]
	if !ok {
		t.Fatal("tae_goldens.json has no case taesd_decoder_bf16")
	}
	var c struct {
		Weights     string `json:"weights"`
		InputNPY    string `json:"input_npy"`
		OutputNPY   string `json:"output_npy"`
		InputShape  []int  `json:"input_shape"`
		OutputShape []int  `json:"output_shape"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("tae_goldens.json taesd_decoder_bf16: %v", err)
	}
	weights := strings.TrimSuffix(strings.TrimSuffix(c.Weights, ".pth"), ".safetensors") + ".safetensors"
	f, err := safetensors.ParseBytes(fetchShared(t, "assets/"+weights))
	if err != nil {
		t.Fatalf("%s: %v", weights, err)
	}
	var named []safetensors.Named
	for _, n := range f.Names() {
		raw, err := f.ReadRaw(n)
		if err != nil {
			t.Fatalf("%s: %s: %v", weights, n, err)
		}
		named = append(named, safetensors.Named{Name: n, Raw: raw})
	}
	src := newMemSource(named)
	in := fetchNPY(t, "assets/goldens/"+c.InputNPY)
	want := fetchNPY(t, "assets/goldens/"+c.OutputNPY)
	if !in.Shape.Equal(c.InputShape) || !want.Shape.Equal(c.OutputShape) {
		t.Fatalf("npy shapes %v → %v disagree with the JSON's %v → %v", in.Shape, want.Shape, c.InputShape, c.OutputShape)
	}
	if dt, _, _ := src.Lookup("1.weight"); dt != tensor.BF16 {
		t.Fatalf("%s stores 1.weight as %v, want BF16", weights, dt)
	}

	b := shared
	live := b.Memory().Live
	start := time.Now()
	d, err := taesd.LoadDecoder(b, src)
	if err != nil {
		t.Fatal(err)
	}
	x := b.Upload(in)
	out, err := d.Decode(b, x)
	if err != nil {
		t.Fatal(err)
	}
	got := readBack(t, b, out)
	elapsed := time.Since(start)
	nn.Free(b, x, out)
	d.Release(b)
	if m := b.Memory().Live; m != live {
		t.Errorf("webgpu: %d bytes live after the decoder was released, %d before", m, live)
	}
	t.Logf("webgpu %v → %v in %v", in.Shape, got.Shape, elapsed.Round(time.Millisecond))
	compare(t, "taesd decoder vs tae_goldens.json", got, want, taesdTol)
}
