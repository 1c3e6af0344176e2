package singlefile

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tgate-web/tgate/models/unet"
)

// prefixMap maps original key prefixes (whole dot-separated segments) to
// diffusers prefixes; resnets are the original prefixes of ResNet blocks,
// whose inner layer names are renamed too.
type prefixMap struct {
	to      map[string]string
	resnets map[string]bool
	inner   map[string]string // ResNet inner names: original → diffusers
}

func newPrefixMap(inner map[string]string) *prefixMap {
	return &prefixMap{to: map[string]string{}, resnets: map[string]bool{}, inner: inner}
}

func (m *prefixMap) add(original, diffusers string) { m.to[original] = diffusers }

func (m *prefixMap) resnet(original, diffusers string) {
	m.to[original] = diffusers
	m.resnets[original] = true
}

// convert renames key by its longest mapped prefix (up to 5 segments) and,
// inside a ResNet, its inner layer name (up to 2 segments).
func (m *prefixMap) convert(key string) (string, bool) {
	seg := strings.Split(key, ".")
	for n := min(5, len(seg)-1); n >= 1; n-- {
		head := strings.Join(seg[:n], ".")
		to, ok := m.to[head]
		if !ok {
			continue
		}
		rest := seg[n:]
		if m.resnets[head] {
			renamed := false
			for k := min(2, len(rest)-1); k >= 1; k-- {
				if in, ok := m.inner[strings.Join(rest[:k], ".")]; ok {
					rest = append([]string{in}, rest[k:]...)
					renamed = true
					break
				}
			}
			if !renamed {
				return "", false
			}
		}
		return to + "." + strings.Join(rest, "."), true
	}
	return "", false
}

// unetResnetInner is convert_ldm_unet_checkpoint's renaming inside a
// ResBlock (openaimodel.ResBlock → diffusers ResnetBlock2D).
var unetResnetInner = map[string]string{
	"in_layers.0":     "norm1",
	"in_layers.2":     "conv1",
	"emb_layers.1":    "time_emb_proj",
	"out_layers.0":    "norm2",
	"out_layers.3":    "conv2",
	"skip_connection": "conv_shortcut",
}

// unetLayout is what the original UNet numbering depends on.
type unetLayout struct {
	layers   []int  // layers_per_block per down level
	downAttn []bool // down level i has cross-attention
	upAttn   []bool // up level i (diffusers order) has cross-attention
	mid      string // mid_block_type ("" when null)
}

func parseUNetLayout(configJSON []byte) (*unetLayout, error) {
	if configJSON == nil {
		return nil, fmt.Errorf("no unet config.json")
	}
	var cfg unet.Config
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return nil, fmt.Errorf("unet config.json: %w", err)
	}
	n := len(cfg.DownBlockTypes)
	if n == 0 || len(cfg.UpBlockTypes) != n {
		return nil, fmt.Errorf("unet config.json: %d down_block_types and %d up_block_types; want the same non-zero number", n, len(cfg.UpBlockTypes))
	}
	l := &unetLayout{}
	lpb := cfg.LayersPerBlock
	switch {
	case !lpb.Set || len(lpb.Values) == 0:
		return nil, fmt.Errorf("unet config.json: layers_per_block is missing")
	case lpb.Scalar:
		for range n {
			l.layers = append(l.layers, lpb.Values[0])
		}
	case len(lpb.Values) != n:
		return nil, fmt.Errorf("unet config.json: layers_per_block %v has %d entries for %d down blocks", lpb.Values, len(lpb.Values), n)
	default:
		l.layers = append(l.layers, lpb.Values...)
	}
	for i := range n {
		l.downAttn = append(l.downAttn, strings.HasPrefix(cfg.DownBlockTypes[i], "CrossAttn"))
		l.upAttn = append(l.upAttn, strings.HasPrefix(cfg.UpBlockTypes[i], "CrossAttn"))
	}
	if cfg.MidBlockType != nil {
		l.mid = *cfg.MidBlockType
	}
	return l, nil
}

func (l *unetLayout) String() string {
	return fmt.Sprintf("%d levels, layers_per_block %v, cross-attention in down levels %v and up levels %v, mid block %q",
		len(l.layers), l.layers, l.downAttn, l.upAttn, l.mid)
}

// unetConverter returns convert_ldm_unet_checkpoint's key renaming for the
// UNet configJSON describes. The original numbering (openaimodel.UNetModel)
// is derived from it: input_blocks 0 is conv_in, then per level
// layers_per_block ResBlocks (each followed by a SpatialTransformer at
// index .1 on attention levels) and a Downsample on every level but the
// last; middle_block is ResBlock, SpatialTransformer, ResBlock;
// output_blocks has layers_per_block+1 entries per level (reversed
// layers_per_block), ResBlock at .0, attention at .1, and the level's
// Upsample after them on its last entry of every level but the last.
func unetConverter(configJSON []byte) (func(string) ([]target, bool), error) {
	l, err := parseUNetLayout(configJSON)
	if err != nil {
		return nil, err
	}
	m := newPrefixMap(unetResnetInner)
	m.add("time_embed.0", "time_embedding.linear_1")
	m.add("time_embed.2", "time_embedding.linear_2")
	m.add("label_emb.0.0", "add_embedding.linear_1")
	m.add("label_emb.0.2", "add_embedding.linear_2")
	m.add("input_blocks.0.0", "conv_in")
	m.add("out.0", "conv_norm_out")
	m.add("out.2", "conv_out")
	levels := len(l.layers)
	idx := 1
	for i := range levels {
		for j := range l.layers[i] {
			m.resnet(fmt.Sprintf("input_blocks.%d.0", idx), fmt.Sprintf("down_blocks.%d.resnets.%d", i, j))
			if l.downAttn[i] {
				m.add(fmt.Sprintf("input_blocks.%d.1", idx), fmt.Sprintf("down_blocks.%d.attentions.%d", i, j))
			}
			idx++
		}
		if i < levels-1 {
			m.add(fmt.Sprintf("input_blocks.%d.0.op", idx), fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", i))
			idx++
		}
	}
	if l.mid != "" {
		m.resnet("middle_block.0", "mid_block.resnets.0")
		m.add("middle_block.1", "mid_block.attentions.0")
		m.resnet("middle_block.2", "mid_block.resnets.1")
	}
	idx = 0
	for i := range levels {
		n := l.layers[levels-1-i] + 1
		for j := range n {
			m.resnet(fmt.Sprintf("output_blocks.%d.0", idx), fmt.Sprintf("up_blocks.%d.resnets.%d", i, j))
			next := 1
			if l.upAttn[i] {
				m.add(fmt.Sprintf("output_blocks.%d.1", idx), fmt.Sprintf("up_blocks.%d.attentions.%d", i, j))
				next = 2
			}
			if j == n-1 && i < levels-1 {
				m.add(fmt.Sprintf("output_blocks.%d.%d.conv", idx, next), fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", i))
			}
			idx++
		}
	}
	return func(key string) ([]target, bool) {
		k, ok := m.convert(key)
		if !ok {
			return nil, false
		}
		return []target{{key: k}}, true
	}, nil
}

// describe summarises the block structure a component's config gives, for
// messages.
func describe(component string, configJSON []byte) string {
	switch component {
	case UNet:
		if l, err := parseUNetLayout(configJSON); err == nil {
			return l.String()
		}
	case VAE:
		if l, err := parseVAELayout(configJSON); err == nil {
			return fmt.Sprintf("%d levels, layers_per_block %d", l.levels, l.layers)
		}
	}
	return "config unreadable"
}
