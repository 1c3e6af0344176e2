package lora

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// kohyaFile is the path of the golden kohya-format LoRA.
func kohyaFile(t *testing.T) string {
	t.Helper()
	return filepath.Join(golden.Dir(t, "golden", "lora_tiny"), "sd15_tiny_lora_kohya_r4.safetensors")
}

// kohyaTensors reads the golden kohya LoRA's tensors without this
// package's reader.
func kohyaTensors(t *testing.T) map[string]*tensor.Host {
	t.Helper()
	return golden.Tensors(t, kohyaFile(t))
}

// tinyComponent opens a component folder of the tiny SD 1.5 pipeline.
func tinyComponent(t *testing.T, name string) *hub.Component {
	t.Helper()
	c, err := hub.OpenComponent(golden.Dir(t, "golden", "sd15_tiny_pipeline", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// writeLoRA encodes tensors as a safetensors file held in memory and parses
// it.
func writeLoRA(t *testing.T, name string, tensors map[string]*tensor.Host) (*File, error) {
	t.Helper()
	var named []safetensors.Named
	for n, h := range tensors {
		named = append(named, safetensors.FromHost(n, h, tensor.F32))
	}
	data, err := safetensors.Marshal(map[string]string{"format": "pt"}, named)
	if err != nil {
		t.Fatal(err)
	}
	return ParseBytes(name, data)
}

// kohyaToDiffusers renames a kohya module name to its diffusers module
// path the way diffusers' _convert_unet_lora_key and
// _convert_text_encoder_lora_key do: every '_' becomes '.', then the
// multi-word names of the SD modules are joined again. It is written
// independently of Resolve, which matches against the model's keys.
func kohyaToDiffusers(stem string) (component, path string) {
	switch {
	case strings.HasPrefix(stem, "lora_unet_"):
		component, stem = "unet", strings.TrimPrefix(stem, "lora_unet_")
	case strings.HasPrefix(stem, "lora_te_"):
		component, stem = "text_encoder", strings.TrimPrefix(stem, "lora_te_")
	}
	path = strings.ReplaceAll(stem, "_", ".")
	for _, w := range []string{"down_blocks", "mid_block", "up_blocks", "transformer_blocks", "to_q", "to_k", "to_v",
		"to_out", "proj_in", "proj_out", "text_model", "self_attn", "q_proj", "k_proj", "v_proj", "out_proj"} {
		path = strings.ReplaceAll(path, strings.ReplaceAll(w, "_", "."), w)
	}
	return component, path
}

// renamed returns the golden kohya tensors under diffusers-style names:
// prefix + path + the given down/up suffixes; alphas are kept as
// <path>.alpha when keepAlpha, else folded into the up weights.
func renamed(t *testing.T, prefix, downSuffix, upSuffix string, keepAlpha bool) map[string]*tensor.Host {
	t.Helper()
	src := kohyaTensors(t)
	out := map[string]*tensor.Host{}
	names := make([]string, 0, len(src))
	for n := range src {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		stem, suffix, _ := strings.Cut(n, ".")
		comp, path := kohyaToDiffusers(stem)
		base := prefix + comp + "." + path
		if prefix == "base_model.model." {
			// PEFT's save of one model: no component prefix.
			base = prefix + path
		}
		h := src[n]
		switch suffix {
		case "lora_down.weight":
			out[base+downSuffix] = h
		case "lora_up.weight":
			if !keepAlpha {
				alpha := float64(src[stem+".alpha"].Data[0])
				scaled := tensor.New(h.Shape...)
				for i, v := range h.Data {
					scaled.Data[i] = float32(float64(v) * alpha / float64(h.Shape[1]))
				}
				h = scaled
			}
			out[base+upSuffix] = h
		case "alpha":
			if keepAlpha {
				out[base+".alpha"] = h
			}
		default:
			t.Fatalf("unexpected tensor %q in the golden LoRA", n)
		}
	}
	return out
}
