package lora

import (
	"fmt"
	"strconv"
	"strings"
)

// The original (CompVis / Stability "sgm") UNet names modules by flat
// block index: input_blocks.4.1 is the second layer of the fourth input
// block. kohya's SD-XL LoRAs use these names (lora_unet_input_blocks_4_1_
// transformer_blocks_0_attn1_to_q), which diffusers maps onto its own
// module names in _maybe_map_sgm_blocks_to_diffusers
// (loaders/lora_conversion_utils.py). Here the map runs the other way: each
// diffusers key of the model gets its original name, from the model's own
// key list, so that the kohya name resolves against the model.

// sgmResnetInner renames a ResNet's inner layers (diffusers → original).
var sgmResnetInner = map[string]string{
	"norm1":         "in_layers.0",
	"conv1":         "in_layers.2",
	"time_emb_proj": "emb_layers.1",
	"norm2":         "out_layers.0",
	"conv2":         "out_layers.3",
	"conv_shortcut": "skip_connection",
}

// sgmTopLevel renames the UNet's modules outside the blocks.
var sgmTopLevel = map[string]string{
	"conv_in":                 "input_blocks.0.0",
	"time_embedding.linear_1": "time_embed.0",
	"time_embedding.linear_2": "time_embed.2",
	"add_embedding.linear_1":  "label_emb.0.0",
	"add_embedding.linear_2":  "label_emb.0.2",
	"conv_norm_out":           "out.0",
	"conv_out":                "out.2",
	"mid_block.resnets.0":     "middle_block.0",
	"mid_block.attentions.0":  "middle_block.1",
	"mid_block.resnets.1":     "middle_block.2",
}

// sgmLayout is what the renaming needs to know of a UNet: the layers per
// down block and which up blocks have attentions.
type sgmLayout struct {
	layersPerBlock int
	upAttention    map[int]bool
}

// sgmLayoutOf reads the layout from a UNet's diffusers keys; ok is false
// when the keys are not a UNet's.
func sgmLayoutOf(keys []string) (sgmLayout, bool) {
	l := sgmLayout{upAttention: map[int]bool{}}
	for _, k := range keys {
		seg := strings.Split(k, ".")
		if len(seg) < 4 {
			continue
		}
		n, err := strconv.Atoi(seg[3])
		if err != nil {
			continue
		}
		if seg[0] == "down_blocks" && seg[1] == "0" && seg[2] == "resnets" {
			l.layersPerBlock = max(l.layersPerBlock, n+1)
		}
		if b, err := strconv.Atoi(seg[1]); err == nil && seg[0] == "up_blocks" && seg[2] == "attentions" {
			l.upAttention[b] = true
		}
	}
	return l, l.layersPerBlock > 0
}

// sgmPath returns the original name of a diffusers module path, or "".
func (l sgmLayout) sgmPath(path string) string {
	for from, to := range sgmTopLevel {
		if rest, ok := strings.CutPrefix(path, from); ok && (rest == "" || rest[0] == '.') {
			if strings.Contains(from, "resnets") {
				return resnetInner(to, strings.TrimPrefix(rest, "."))
			}
			return to + rest
		}
	}
	seg := strings.SplitN(path, ".", 5)
	if len(seg) < 4 {
		return ""
	}
	b, err1 := strconv.Atoi(seg[1])
	n, err2 := strconv.Atoi(seg[3])
	if err1 != nil || err2 != nil {
		return ""
	}
	rest := ""
	if len(seg) == 5 {
		rest = seg[4]
	}
	per := l.layersPerBlock + 1
	switch seg[0] + "." + seg[2] {
	case "down_blocks.resnets":
		return resnetInner(fmt.Sprintf("input_blocks.%d.0", b*per+n+1), rest)
	case "down_blocks.attentions":
		return join(fmt.Sprintf("input_blocks.%d.1", b*per+n+1), rest)
	case "down_blocks.downsamplers":
		if r, ok := strings.CutPrefix(rest, "conv"); ok {
			return fmt.Sprintf("input_blocks.%d.0.op", (b+1)*per) + r
		}
	case "up_blocks.resnets":
		return resnetInner(fmt.Sprintf("output_blocks.%d.0", b*per+n), rest)
	case "up_blocks.attentions":
		return join(fmt.Sprintf("output_blocks.%d.1", b*per+n), rest)
	case "up_blocks.upsamplers":
		j := 1
		if l.upAttention[b] {
			j = 2
		}
		return join(fmt.Sprintf("output_blocks.%d.%d", b*per+l.layersPerBlock, j), rest)
	}
	return ""
}

// resnetInner appends a ResNet's inner layer path, renamed.
func resnetInner(prefix, rest string) string {
	if rest == "" {
		return prefix
	}
	head, tail, _ := strings.Cut(rest, ".")
	in, ok := sgmResnetInner[head]
	if !ok {
		return ""
	}
	return join(prefix+"."+in, tail)
}

func join(a, b string) string {
	if b == "" {
		return a
	}
	return a + "." + b
}
