// Package vae is diffusers' AutoencoderKL (autoencoder_kl.py, vae.py
// Encoder/Decoder, the UNetMidBlock2D/UpDecoderBlock2D/DownEncoderBlock2D
// blocks and ResnetBlock2D) written against backend.Backend, binding
// weights by diffusers' key names. The decoder turns latents into RGB in
// [−1, 1]; the encoder gives the diagonal Gaussian posterior.
package vae

import (
	"encoding/json"
	"fmt"
)

// DefaultScalingFactor is LDM_VAE_DEFAULT_SCALING_FACTOR, used when an old
// config has no scaling_factor.
const DefaultScalingFactor = 0.18215

// Config is AutoencoderKL's config.json. Missing keys take the class
// defaults (diffusers 0.30 autoencoder_kl.py), except scaling_factor,
// which defaults to the SD value 0.18215.
type Config struct {
	InChannels           int      `json:"in_channels"`
	OutChannels          int      `json:"out_channels"`
	DownBlockTypes       []string `json:"down_block_types"`
	UpBlockTypes         []string `json:"up_block_types"`
	BlockOutChannels     []int    `json:"block_out_channels"`
	LayersPerBlock       int      `json:"layers_per_block"`
	ActFn                string   `json:"act_fn"`
	LatentChannels       int      `json:"latent_channels"`
	NormNumGroups        int      `json:"norm_num_groups"`
	SampleSize           int      `json:"sample_size"`
	ScalingFactor        float64  `json:"scaling_factor"`
	ShiftFactor          *float64 `json:"shift_factor"` // nil: no shift (SD, SDXL)
	ForceUpcast          bool     `json:"force_upcast"` // ignored: activations are F32
	UseQuantConv         bool     `json:"use_quant_conv"`
	UsePostQuantConv     bool     `json:"use_post_quant_conv"`
	MidBlockAddAttention bool     `json:"mid_block_add_attention"`
}

// DefaultConfig returns AutoencoderKL's constructor defaults with the SD
// scaling factor.
func DefaultConfig() Config {
	return Config{
		InChannels:           3,
		OutChannels:          3,
		DownBlockTypes:       []string{"DownEncoderBlock2D"},
		UpBlockTypes:         []string{"UpDecoderBlock2D"},
		BlockOutChannels:     []int{64},
		LayersPerBlock:       1,
		ActFn:                "silu",
		LatentChannels:       4,
		NormNumGroups:        32,
		SampleSize:           32,
		ScalingFactor:        DefaultScalingFactor,
		ForceUpcast:          true,
		UseQuantConv:         true,
		UsePostQuantConv:     true,
		MidBlockAddAttention: true,
	}
}

// UnmarshalJSON fills c from config.json; keys present override
// DefaultConfig. A null scaling_factor keeps the default.
func (c *Config) UnmarshalJSON(data []byte) error {
	type plain Config
	p := plain(DefaultConfig())
	var sf struct {
		ScalingFactor *float64 `json:"scaling_factor"`
	}
	if err := json.Unmarshal(data, &sf); err != nil {
		return fmt.Errorf("vae config: %w", err)
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("vae config: %w", err)
	}
	if sf.ScalingFactor == nil {
		p.ScalingFactor = DefaultScalingFactor
	}
	*c = Config(p)
	return nil
}

// ParseConfig parses and validates a VAE's config.json.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Shift returns shift_factor, or 0 when the config has none. The pipeline
// decodes z/scaling_factor + shift (SD3, FLUX) before the decoder.
func (c *Config) Shift() float64 {
	if c.ShiftFactor == nil {
		return 0
	}
	return *c.ShiftFactor
}

// Validate reports the first inconsistency in c.
func (c *Config) Validate() error {
	if len(c.BlockOutChannels) == 0 {
		return fmt.Errorf("vae config: block_out_channels is empty")
	}
	for name, v := range map[string]int{"in_channels": c.InChannels, "out_channels": c.OutChannels,
		"latent_channels": c.LatentChannels, "norm_num_groups": c.NormNumGroups} {
		if v <= 0 {
			return fmt.Errorf("vae config: %s = %d; must be positive", name, v)
		}
	}
	if c.LayersPerBlock < 1 {
		return fmt.Errorf("vae config: layers_per_block = %d; must be at least 1", c.LayersPerBlock)
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 || ch%c.NormNumGroups != 0 {
			return fmt.Errorf("vae config: block_out_channels[%d] = %d is not a positive multiple of norm_num_groups %d", i, ch, c.NormNumGroups)
		}
	}
	if len(c.DownBlockTypes) != len(c.BlockOutChannels) {
		return fmt.Errorf("vae config: %d down_block_types for %d block_out_channels", len(c.DownBlockTypes), len(c.BlockOutChannels))
	}
	if len(c.UpBlockTypes) != len(c.BlockOutChannels) {
		return fmt.Errorf("vae config: %d up_block_types for %d block_out_channels", len(c.UpBlockTypes), len(c.BlockOutChannels))
	}
	for i, t := range c.DownBlockTypes {
		if t != "DownEncoderBlock2D" {
			return fmt.Errorf("vae config: down_block_types[%d] = %q is not supported (DownEncoderBlock2D)", i, t)
		}
	}
	for i, t := range c.UpBlockTypes {
		if t != "UpDecoderBlock2D" {
			return fmt.Errorf("vae config: up_block_types[%d] = %q is not supported (UpDecoderBlock2D)", i, t)
		}
	}
	if c.ActFn != "silu" && c.ActFn != "swish" {
		return fmt.Errorf("vae config: act_fn %q is not supported (silu)", c.ActFn)
	}
	if !(c.ScalingFactor > 0) {
		return fmt.Errorf("vae config: scaling_factor = %v; must be positive", c.ScalingFactor)
	}
	return nil
}
