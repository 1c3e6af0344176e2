package pixart

import (
	"encoding/json"
	"fmt"
)

// Config is the config.json of diffusers' PixArtTransformer2DModel
// (transformers/pixart_transformer_2d.py, v0.30.3). Keys missing from the
// file take the class defaults of PixArtTransformer2DModel.__init__.
type Config struct {
	NumAttentionHeads int    `json:"num_attention_heads"`
	AttentionHeadDim  int    `json:"attention_head_dim"`
	InChannels        int    `json:"in_channels"`
	OutChannels       *int   `json:"out_channels"` // nil: in_channels
	NumLayers         int    `json:"num_layers"`
	CrossAttentionDim *int   `json:"cross_attention_dim"`
	AttentionBias     bool   `json:"attention_bias"`
	SampleSize        int    `json:"sample_size"`
	PatchSize         int    `json:"patch_size"`
	ActivationFn      string `json:"activation_fn"`
	NumEmbedsAdaNorm  *int   `json:"num_embeds_ada_norm"`
	UpcastAttention   bool   `json:"upcast_attention"`
	NormType          string `json:"norm_type"`
	// NormElementwiseAffine gives norm1/norm2 of every block a weight and
	// bias (false in every published PixArt checkpoint).
	NormElementwiseAffine bool    `json:"norm_elementwise_affine"`
	NormEps               float64 `json:"norm_eps"`
	// InterpolationScale scales the positional-embedding grid; nil means
	// max(sample_size // 64, 1).
	InterpolationScale *float64 `json:"interpolation_scale"`
	// CaptionChannels is the text encoder's width (4096 for T5-XXL); nil
	// means no caption projection.
	CaptionChannels *int `json:"caption_channels"`
	// UseAdditionalConditions turns on the resolution and aspect-ratio
	// embeddings; nil means sample_size == 128 (the 1024-pixel models).
	UseAdditionalConditions *bool  `json:"use_additional_conditions"`
	OnlyCrossAttention      bool   `json:"only_cross_attention"`
	AttentionType           string `json:"attention_type"`
	ClassName               string `json:"_class_name"`
}

// DefaultConfig returns PixArtTransformer2DModel.__init__'s defaults.
func DefaultConfig() Config {
	return Config{
		NumAttentionHeads: 16,
		AttentionHeadDim:  72,
		InChannels:        4,
		NumLayers:         28,
		AttentionBias:     true,
		SampleSize:        128,
		PatchSize:         2,
		ActivationFn:      "gelu-approximate",
		NormType:          "ada_norm_single",
		NormEps:           1e-6,
		AttentionType:     "default",
	}
}

// ParseConfig reads a transformer config.json over DefaultConfig and
// checks that it describes a model this package implements.
func ParseConfig(data []byte) (*Config, error) {
	c := DefaultConfig()
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("pixart config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// InnerDim is num_attention_heads · attention_head_dim, the token width.
func (c *Config) InnerDim() int { return c.NumAttentionHeads * c.AttentionHeadDim }

// Out is out_channels (in_channels when unset); 2·in_channels means the
// model also predicts the variance (learned sigma).
func (c *Config) Out() int {
	if c.OutChannels != nil {
		return *c.OutChannels
	}
	return c.InChannels
}

// CrossDim is cross_attention_dim (the inner width when unset).
func (c *Config) CrossDim() int {
	if c.CrossAttentionDim != nil {
		return *c.CrossAttentionDim
	}
	return c.InnerDim()
}

// AdditionalConditions reports whether the timestep embedding adds the
// resolution and aspect-ratio embeddings (use_additional_conditions, by
// default sample_size == 128).
func (c *Config) AdditionalConditions() bool {
	if c.UseAdditionalConditions != nil {
		return *c.UseAdditionalConditions
	}
	return c.SampleSize == 128
}

// Interpolation is the positional-embedding interpolation scale:
// interpolation_scale, or max(sample_size // 64, 1).
func (c *Config) Interpolation() float64 {
	if c.InterpolationScale != nil {
		return *c.InterpolationScale
	}
	return float64(max(c.SampleSize/64, 1))
}

// BaseSize is PatchEmbed's base_size: sample_size // patch_size, the grid
// size the positional embedding is normalised to.
func (c *Config) BaseSize() int { return c.SampleSize / c.PatchSize }

// Validate reports a config value this package does not implement.
func (c *Config) Validate() error {
	switch {
	case c.NormType != "ada_norm_single":
		return fmt.Errorf("pixart config: norm_type %q is not supported (PixArtTransformer2DModel needs ada_norm_single)", c.NormType)
	case c.NumAttentionHeads < 1 || c.AttentionHeadDim < 1:
		return fmt.Errorf("pixart config: num_attention_heads %d and attention_head_dim %d must be positive", c.NumAttentionHeads, c.AttentionHeadDim)
	case c.InChannels < 1 || c.Out() < 1 || c.NumLayers < 0:
		return fmt.Errorf("pixart config: in_channels %d, out_channels %d, num_layers %d are invalid", c.InChannels, c.Out(), c.NumLayers)
	case c.PatchSize < 1 || c.SampleSize < c.PatchSize:
		return fmt.Errorf("pixart config: patch_size %d and sample_size %d are invalid", c.PatchSize, c.SampleSize)
	case c.ActivationFn != "gelu-approximate" && c.ActivationFn != "gelu":
		return fmt.Errorf("pixart config: activation_fn %q is not supported (gelu-approximate, gelu)", c.ActivationFn)
	case c.OnlyCrossAttention:
		return fmt.Errorf("pixart config: only_cross_attention is not supported")
	case c.AttentionType != "" && c.AttentionType != "default":
		return fmt.Errorf("pixart config: attention_type %q is not supported (default)", c.AttentionType)
	case c.AdditionalConditions() && c.InnerDim()%3 != 0:
		return fmt.Errorf("pixart config: with use_additional_conditions the inner width %d must be divisible by 3", c.InnerDim())
	case c.Interpolation() <= 0:
		return fmt.Errorf("pixart config: interpolation_scale %g must be positive", c.Interpolation())
	}
	return nil
}
