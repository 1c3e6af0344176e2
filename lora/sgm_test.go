package lora

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/tensor"
)

// TestSGMNames resolves kohya SD-XL names, which use the original UNet's
// flat block indices, against the tiny SD-XL UNet (layers_per_block 2;
// down blocks DownBlock2D, CrossAttnDownBlock2D ×2; up blocks
// CrossAttnUpBlock2D ×2, UpBlock2D). The expected diffusers names follow
// the original SD-XL layout (input_blocks.1–2 the first block's ResNets,
// .3 its downsampler; output_blocks.2.2 the first up block's upsampler).
func TestSGMNames(t *testing.T) {
	want := map[string]string{
		"lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q":      "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight",
		"lora_unet_input_blocks_8_1_transformer_blocks_1_attn2_to_k":      "down_blocks.2.attentions.1.transformer_blocks.1.attn2.to_k.weight",
		"lora_unet_middle_block_1_proj_in":                                "mid_block.attentions.0.proj_in.weight",
		"lora_unet_output_blocks_0_1_transformer_blocks_0_ff_net_2":       "up_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight",
		"lora_unet_output_blocks_5_1_proj_out":                            "up_blocks.1.attentions.2.proj_out.weight",
		"lora_unet_output_blocks_3_1_transformer_blocks_0_attn1_to_out_0": "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0.weight",
		"lora_unet_input_blocks_1_0_in_layers_2":                          "down_blocks.0.resnets.0.conv1.weight",
		"lora_unet_input_blocks_3_0_op":                                   "down_blocks.0.downsamplers.0.conv.weight",
		"lora_unet_output_blocks_2_2_conv":                                "up_blocks.0.upsamplers.0.conv.weight",
		"lora_unet_output_blocks_8_0_skip_connection":                     "up_blocks.2.resnets.2.conv_shortcut.weight",
		"lora_unet_middle_block_2_out_layers_3":                           "mid_block.resnets.1.conv2.weight",
		"lora_unet_input_blocks_5_0_emb_layers_1":                         "down_blocks.1.resnets.1.time_emb_proj.weight",
		"lora_unet_label_emb_0_0":                                         "add_embedding.linear_1.weight",
		"lora_unet_down_blocks_1_attentions_1_proj_in":                    "down_blocks.1.attentions.1.proj_in.weight",
	}
	base, err := hub.OpenComponent(golden.Dir(t, "golden", "sdxl_tiny_pipeline", "unet"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	ts := map[string]*tensor.Host{}
	for stem, key := range want {
		_, shape, ok := base.Lookup(key)
		if !ok {
			t.Fatalf("the tiny SD-XL UNet has no %q", key)
		}
		down := append(tensor.Shape{2}, shape[1:]...)
		up := tensor.Shape{shape[0], 2}
		if len(shape) == 4 {
			up = append(up, 1, 1)
		}
		ts[stem+".lora_down.weight"] = tensor.New(down...)
		ts[stem+".lora_up.weight"] = tensor.New(up...)
	}
	f, err := writeLoRA(t, "sdxl-kohya", ts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSource(base, UNet, []Layer{{File: f, Scale: 1}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for key, terms := range s.Plan().Terms {
		for _, tm := range terms {
			got[tm.Module.Key] = key
		}
	}
	for stem, key := range want {
		if got[stem] != key {
			t.Errorf("%s resolved to %q, want %q", stem, got[stem], key)
		}
	}
}

// TestSGMNamesAgainstConversion checks the original name of every UNet
// weight against the key map diffusers' conversion script wrote for the
// tiny SD 1.5 single-file checkpoint (layers_per_block 1; golden
// single_file/key_map.json).
func TestSGMNamesAgainstConversion(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(golden.Dir(t, "golden", "single_file"), "key_map.json"))
	if err != nil {
		t.Fatal(err)
	}
	var km struct {
		Map []struct {
			Component, Diffusers, Original string
		} `json:"map"`
	}
	if err := json.Unmarshal(data, &km); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range km.Map {
		if e.Component == "unet" {
			keys = append(keys, e.Diffusers)
		}
	}
	layout, ok := sgmLayoutOf(keys)
	if !ok || layout.layersPerBlock != 1 {
		t.Fatalf("layout %+v from %d keys", layout, len(keys))
	}
	n := 0
	for _, e := range km.Map {
		path, isWeight := strings.CutSuffix(e.Diffusers, ".weight")
		if e.Component != "unet" || !isWeight {
			continue
		}
		want := strings.TrimSuffix(strings.TrimPrefix(e.Original, "model.diffusion_model."), ".weight")
		if got := layout.sgmPath(path); got != want {
			t.Errorf("%s: original name %q, conversion says %q", path, got, want)
		}
		n++
	}
	t.Logf("%d UNet weights checked", n)
}
