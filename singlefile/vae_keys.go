package singlefile

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tgate-web/tgate/models/vae"
)

// vaeResnetInner is convert_ldm_vae_checkpoint's renaming inside a
// ResnetBlock (ldm diffusionmodules.model.ResnetBlock → ResnetBlock2D).
var vaeResnetInner = map[string]string{
	"norm1":        "norm1",
	"conv1":        "conv1",
	"norm2":        "norm2",
	"conv2":        "conv2",
	"nin_shortcut": "conv_shortcut",
}

// vaeAttentionInner is the renaming inside the mid block's AttnBlock
// (single_file_utils.py's update_vae_attentions_ldm_to_diffusers).
var vaeAttentionInner = map[string]string{
	"norm":     "group_norm",
	"q":        "to_q",
	"k":        "to_k",
	"v":        "to_v",
	"proj_out": "to_out.0",
}

// vaeLayout is what the original VAE numbering depends on.
type vaeLayout struct {
	levels, layers int
}

func parseVAELayout(configJSON []byte) (*vaeLayout, error) {
	if configJSON == nil {
		return nil, fmt.Errorf("no vae config.json")
	}
	cfg := vae.DefaultConfig()
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return nil, fmt.Errorf("vae config.json: %w", err)
	}
	if len(cfg.BlockOutChannels) == 0 || cfg.LayersPerBlock < 1 {
		return nil, fmt.Errorf("vae config.json: block_out_channels %v and layers_per_block %d describe no blocks", cfg.BlockOutChannels, cfg.LayersPerBlock)
	}
	return &vaeLayout{levels: len(cfg.BlockOutChannels), layers: cfg.LayersPerBlock}, nil
}

// vaeConverter returns convert_ldm_vae_checkpoint's key renaming for the
// AutoencoderKL configJSON describes: encoder.down.i.block.j →
// encoder.down_blocks.i.resnets.j (j < layers_per_block) and
// down.i.downsample.conv → down_blocks.i.downsamplers.0.conv; decoder
// levels run the other way, decoder.up.(L−1−i).block.j →
// decoder.up_blocks.i.resnets.j (j ≤ layers_per_block); mid.block_1/2 →
// mid_block.resnets.0/1; mid.attn_1 → mid_block.attentions.0, whose 1×1
// conv projections q/k/v/proj_out [C, C, 1, 1] become the Linear weights
// to_q/to_k/to_v/to_out.0 [C, C] (diffusers' conv_attn_to_linear).
func vaeConverter(configJSON []byte) (func(string) ([]target, bool), error) {
	l, err := parseVAELayout(configJSON)
	if err != nil {
		return nil, err
	}
	m := newPrefixMap(vaeResnetInner)
	attn := map[string]string{}
	for _, side := range []string{"encoder", "decoder"} {
		m.add(side+".conv_in", side+".conv_in")
		m.add(side+".conv_out", side+".conv_out")
		m.add(side+".norm_out", side+".conv_norm_out")
		m.resnet(side+".mid.block_1", side+".mid_block.resnets.0")
		m.resnet(side+".mid.block_2", side+".mid_block.resnets.1")
		attn[side+".mid.attn_1"] = side + ".mid_block.attentions.0"
	}
	m.add("quant_conv", "quant_conv")
	m.add("post_quant_conv", "post_quant_conv")
	for i := range l.levels {
		for j := range l.layers {
			m.resnet(fmt.Sprintf("encoder.down.%d.block.%d", i, j), fmt.Sprintf("encoder.down_blocks.%d.resnets.%d", i, j))
		}
		if i < l.levels-1 {
			m.add(fmt.Sprintf("encoder.down.%d.downsample.conv", i), fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", i))
		}
		orig := l.levels - 1 - i
		for j := range l.layers + 1 {
			m.resnet(fmt.Sprintf("decoder.up.%d.block.%d", orig, j), fmt.Sprintf("decoder.up_blocks.%d.resnets.%d", i, j))
		}
		if i < l.levels-1 {
			m.add(fmt.Sprintf("decoder.up.%d.upsample.conv", orig), fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", i))
		}
	}
	return func(key string) ([]target, bool) {
		seg := strings.Split(key, ".")
		if len(seg) == 5 {
			if to, ok := attn[strings.Join(seg[:3], ".")]; ok {
				in, ok := vaeAttentionInner[seg[3]]
				if !ok {
					return nil, false
				}
				t := target{key: to + "." + in + "." + seg[4]}
				t.squeeze = in != "group_norm" && seg[4] == "weight"
				return []target{t}, true
			}
		}
		k, ok := m.convert(key)
		if !ok {
			return nil, false
		}
		return []target{{key: k}}, true
	}, nil
}
