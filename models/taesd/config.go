// Package taesd is the Tiny AutoEncoder for Stable Diffusion
// (madebyollin's taesd.py; diffusers' AutoencoderTiny holds the same
// weights under other names): a small convolutional decoder from UNet
// latents to RGB and an encoder back, for fast previews and for latents of
// SD1.x/2.x, SDXL, SD3 and FLUX (4 or 16 channels), and FLUX.2 (32
// channels, with TAEF2's GroupNorm branch in some blocks).
//
// It follows taesd.py's conventions: the decoder takes raw UNet latents
// (no scaling factor) and returns an image nominally in [0, 1] (not
// clamped); the encoder takes an image in [0, 1].
package taesd

import (
	"fmt"

	"github.com/tgate-web/tgate/nn"
)

// Layout names the key scheme of a checkpoint.
type Layout int

const (
	// Original is taesd.py's: the nn.Sequential indices of the decoder
	// ("1.weight", "3.conv.0.weight", ...; index 0 is the parameterless
	// Clamp) or encoder ("0.weight", ...), one file each.
	Original Layout = iota
	// Diffusers is AutoencoderTiny's: "decoder.layers.{i−1}.*" and
	// "encoder.layers.{i}.*" (convert_tiny_autoencoder_to_diffusers.py),
	// both in one file.
	Diffusers
)

func (l Layout) String() string {
	if l == Diffusers {
		return "diffusers AutoencoderTiny"
	}
	return "taesd.py"
}

// Config describes a TAESD encoder or decoder. It is read from the weights
// (DetectDecoder, DetectEncoder), since taesd.py checkpoints carry no
// config file.
type Config struct {
	Layout         Layout
	LatentChannels int // 4 (SD, SDXL), 16 (SD3, FLUX.1), 32 (FLUX.2)
	// MidBlockGN is true for TAEF2 checkpoints: the blocks at the
	// latent resolution add a GroupNorm "pool" branch (use_midblock_gn).
	MidBlockGN bool
	// Downscale32 is true for taesd.py's F32Encoder (TAESANA, for Sana's
	// DC-AE): two stride-2 convs in front give a 32× spatial downscale
	// instead of 8×. Only encoders have this variant here.
	Downscale32 bool
}

// width is the channel count of every hidden layer of Encoder/Decoder.
const width = 64

// prefix returns the key prefix of a layout's Sequential elements.
func prefix(l Layout, encoder bool) string {
	if l == Original {
		return ""
	}
	if encoder {
		return "encoder.layers."
	}
	return "decoder.layers."
}

// DetectDecoder inspects src's key names and shapes: taesd.py's layout has
// "1.weight" [64, C, 3, 3] (index 0 is the Clamp), AutoencoderTiny's
// "decoder.layers.0.weight"; C is the latent channel count; a
// "…3.pool.0.weight" tensor marks TAEF2's GroupNorm branch.
func DetectDecoder(src nn.Source) (Config, error) {
	var cfg Config
	var first string
	switch {
	case has(src, "decoder.layers.0.weight"):
		cfg.Layout, first = Diffusers, "decoder.layers.0.weight"
	case has(src, "1.weight"):
		cfg.Layout, first = Original, "1.weight"
	default:
		return cfg, fmt.Errorf("taesd: no TAESD decoder in the checkpoint (neither taesd.py's %q nor AutoencoderTiny's %q)%s",
			"1.weight", "decoder.layers.0.weight", hint(src, false))
	}
	_, sh, _ := src.Lookup(first)
	if len(sh) != 4 || sh[2] != 3 || sh[3] != 3 || sh[1] < 1 {
		return cfg, fmt.Errorf("taesd: decoder input conv %q has shape %v; want [%d, latent_channels, 3, 3]", first, sh, width)
	}
	if sh[0] != width {
		return cfg, fmt.Errorf("taesd: decoder input conv %q has %d output channels; only %d-channel decoders are supported (taesd.py's F32Decoder is not)", first, sh[0], width)
	}
	cfg.LatentChannels = sh[1]
	cfg.MidBlockGN = has(src, decoderKey(cfg.Layout, 3, "pool.0.weight"))
	return cfg, nil
}

// DetectEncoder inspects src's key names and shapes: taesd.py's layout has
// "0.weight" [64, 3, 3, 3] ([32, 3, 3, 3] for F32Encoder),
// AutoencoderTiny's "encoder.layers.0.weight"; the last conv gives the
// latent channel count; a "…11.pool.0.weight" tensor marks TAEF2's
// GroupNorm branch.
func DetectEncoder(src nn.Source) (Config, error) {
	var cfg Config
	switch {
	case has(src, "encoder.layers.0.weight"):
		cfg.Layout = Diffusers
	case has(src, "0.weight"):
		cfg.Layout = Original
	default:
		return cfg, fmt.Errorf("taesd: no TAESD encoder in the checkpoint (neither taesd.py's %q nor AutoencoderTiny's %q)%s",
			"0.weight", "encoder.layers.0.weight", hint(src, true))
	}
	p := prefix(cfg.Layout, true)
	_, sh, _ := src.Lookup(p + "0.weight")
	switch {
	case len(sh) == 4 && sh[0] == width && sh[1] == 3:
	case len(sh) == 4 && sh[0] == width/2 && sh[1] == 3:
		cfg.Downscale32 = true
	default:
		return cfg, fmt.Errorf("taesd: encoder input conv %q has shape %v; want [%d, 3, 3, 3] (or [%d, 3, 3, 3] for the 32× encoder)", p+"0.weight", sh, width, width/2)
	}
	last := fmt.Sprintf("%s%d.weight", p, len(encoderPlan(cfg))-1)
	_, sh, ok := src.Lookup(last)
	if !ok {
		return cfg, fmt.Errorf("taesd: encoder output conv %q is missing from the checkpoint", last)
	}
	if len(sh) != 4 || sh[1] != width || sh[0] < 1 {
		return cfg, fmt.Errorf("taesd: encoder output conv %q has shape %v; want [latent_channels, %d, 3, 3]", last, sh, width)
	}
	cfg.LatentChannels = sh[0]
	if !cfg.Downscale32 {
		cfg.MidBlockGN = has(src, fmt.Sprintf("%s%d.pool.0.weight", p, 11))
	}
	return cfg, nil
}

// decoderKey returns the key of a tensor of the decoder's Sequential
// element i (taesd.py numbering) in the given layout.
func decoderKey(l Layout, i int, name string) string {
	if l == Diffusers {
		i--
	}
	return fmt.Sprintf("%s%d.%s", prefix(l, false), i, name)
}

func has(src nn.Source, name string) bool {
	_, _, ok := src.Lookup(name)
	return ok
}

// hint tells a decoder checkpoint passed as an encoder (and vice versa)
// apart from something else entirely.
func hint(src nn.Source, encoder bool) string {
	if encoder && (has(src, "1.weight") && !has(src, "0.weight")) {
		return "; it looks like a taesd.py decoder"
	}
	if !encoder && has(src, "0.weight") {
		return "; it looks like a taesd.py encoder"
	}
	if has(src, "decoder.conv_in.weight") || has(src, "encoder.conv_in.weight") {
		return "; it looks like an AutoencoderKL, not a tiny autoencoder"
	}
	return ""
}
