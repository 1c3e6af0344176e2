//go:build js && wasm

package webgpu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"syscall/js"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/fixture"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/models/pixart"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// pixartJSON is a scaled-down PixArt-α transformer config (the keys of
// PixArt-XL-2's transformer/config.json): 3 heads so that the inner width
// 24 splits into the three size embeddings of the addcond variant.
const pixartJSON = `{
  "_class_name": "PixArtTransformer2DModel", "activation_fn": "gelu-approximate",
  "attention_bias": true, "attention_head_dim": 8, "attention_type": "default",
  "caption_channels": 20, "cross_attention_dim": 24, "dropout": 0.0, "in_channels": 4,
  "interpolation_scale": null, "norm_elementwise_affine": false, "norm_eps": 1e-06,
  "norm_num_groups": 32, "norm_type": "ada_norm_single", "num_attention_heads": 3,
  "num_embeds_ada_norm": 1000, "num_layers": 2, "out_channels": 8, "patch_size": 2,
  "sample_size": 8, "upcast_attention": false, "use_additional_conditions": false
}`

// TestModelPixArt runs the tiny PixArt transformer on both backends: F32
// weights without size conditions and F16 weights with them (the
// scale_shift_tables are widened from F16), each on a batch of two
// non-square 8×12 latents (a 4×6 patch grid, so the positional embedding
// is recomputed and a swapped H and W cannot pass) with a 10-token caption
// whose mask hides the last tokens of one row, one timestep per sample.
func TestModelPixArt(t *testing.T) {
	for _, c := range []struct {
		name string
		json string
		dt   tensor.DType
	}{
		{"alpha/f32", pixartJSON, tensor.F32},
		{"addcond/f16", strings.Replace(pixartJSON, `"use_additional_conditions": false`, `"use_additional_conditions": true`, 1), tensor.F16},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := pixart.ParseConfig([]byte(c.json))
			if err != nil {
				t.Fatal(err)
			}
			src := randomWeights(t, fixture.ScopeParams(func(s *nn.Scope) error {
				_, err := pixart.Bind(s, cfg)
				return err
			}), 21, c.dt)
			sample := randn(1, 1, 2, 4, 8, 12)
			ctx := randn(2, 1, 2, 10, 20)
			mask := tensor.New(2, 10)
			for i := range mask.Data {
				if i < 10 || i%10 < 6 {
					mask.Data[i] = 1
				}
			}
			opt := pixart.ForwardOpts{EncoderMask: mask}
			if cfg.AdditionalConditions() {
				opt.Resolution = []float64{64, 96, 1024, 768}
				opt.AspectRatio = []float64{1.5, 0.75}
			}

			gpu, ref := onBoth(t, func(b backend.Backend) []*tensor.Host {
				m, err := pixart.New(b, src, cfg)
				if err != nil {
					t.Fatalf("%s: %v", b.Name(), err)
				}
				defer m.Release(b)
				x, e := b.Upload(sample), b.Upload(ctx)
				defer nn.Free(b, x, e)
				out, err := m.Forward(b, x, []float64{999, 250}, e, opt)
				if err != nil {
					t.Fatalf("%s: %v", b.Name(), err)
				}
				defer b.Free(out)
				return []*tensor.Host{readBack(t, b, out)}
			})
			compare(t, "pixart "+c.name, gpu[0], ref[0], modelTol)
		})
	}
}

// sharedFolder is a model folder of the reference data read over HTTP
// (cmd/wasmtest serves ../shared under /shared/): a hub.Folder for
// pipeline.LoadFolder in the browser.
type sharedFolder string

func (f sharedFolder) get(name string) ([]byte, error) {
	url := js.Global().Get("location").Get("origin").String() + "/shared/" + string(f) + "/" + name
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%s: %w", url, fs.ErrNotExist)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func (f sharedFolder) ReadFile(name string) ([]byte, error) { return f.get(name) }

func (f sharedFolder) Exists(name string) (bool, error) {
	_, err := f.get(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (f sharedFolder) Open(name string) (safetensors.RangeReader, error) {
	data, err := f.get(name)
	if err != nil {
		return nil, err
	}
	return safetensors.Bytes(data), nil
}

func (f sharedFolder) String() string { return "/shared/" + string(f) }

// TestPipelinePixArt runs the tiny PixArt-α pipeline (T5 encoder,
// transformer, VAE) end to end on WebGPU and on the CPU with the
// pixart_dpm_tgate_v2 settings — T-GATE v2, gate 6, with the
// cross-attention weights released after it — from the run's initial
// latents, and compares the final latents with each other and with the
// run's, and the images with each other.
func TestPipelinePixArt(t *testing.T) {
	run, err := safetensors.ParseBytes(fetchShared(t, "golden/runs/pixart_dpm_tgate_v2.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) *tensor.Host {
		h, err := run.ReadFloat32(name)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	init, final := read("init.latents"), read("final.latents")
	req := pipeline.Request{
		Prompt: "A small cactus with a happy face in the Sahara desert.", Steps: 10, Guidance: 4.5,
		Width: 32, Height: 32, Latents: init, Decoder: pipeline.DecodeVAE,
		Gate:          gate.Config{Mode: gate.V2, GateStep: 6, SPInterval: 3, FIInterval: 1, WarmUp: 1},
		PixArtOptions: pipeline.PixArtOptions{NoResolutionBinning: true},
	}
	gpu, ref := onBoth(t, func(b backend.Backend) []*tensor.Host {
		p, err := pipeline.LoadFolder(b, sharedFolder("golden/pixart_tiny_pipeline"), pipeline.LoadOptions{StreamTextEncoder: true})
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
		defer p.Close()
		res, err := p.Generate(context.Background(), req)
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
		return []*tensor.Host{res.Latents, res.Image}
	})
	compare(t, "pixart final latents (webgpu vs cpu)", gpu[0], ref[0], modelTol)
	compare(t, "pixart final latents (webgpu vs diffusers)", gpu[0], final, modelTol)
	compare(t, "pixart image (webgpu vs cpu)", gpu[1], ref[1], modelTol)
}
