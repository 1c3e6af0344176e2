// Package clip is the CLIP text encoder of transformers' modeling_clip.py
// (v4.44): CLIPTextModel, and CLIPTextModelWithProjection's text
// projection used by SDXL's second encoder. It runs on any
// backend.Backend and binds weights by transformers' key names
// (text_model.embeddings.token_embedding.weight, ...).
package clip

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Config is transformers' CLIPTextConfig, read from a text encoder's
// config.json. Missing keys take CLIPTextConfig's defaults.
type Config struct {
	VocabSize             int     `json:"vocab_size"`
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	ProjectionDim         int     `json:"projection_dim"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	HiddenAct             string  `json:"hidden_act"` // quick_gelu, gelu, gelu_new, gelu_pytorch_tanh
	LayerNormEps          float64 `json:"layer_norm_eps"`
	PadTokenID            int     `json:"pad_token_id"`
	BOSTokenID            int     `json:"bos_token_id"`
	// EOSTokenID selects the pooled position: 2 (the legacy value of the
	// SD1.x/2.x/SDXL configs) means argmax(ids), anything else the first
	// position holding EOSTokenID (modeling_clip.py CLIPTextTransformer).
	EOSTokenID    int      `json:"eos_token_id"`
	Architectures []string `json:"architectures"`

	// WithProjection is true for CLIPTextModelWithProjection (from
	// Architectures): the model also has text_projection.weight
	// [projection_dim, hidden_size] and returns text_embeds.
	WithProjection bool `json:"-"`
}

// DefaultConfig returns CLIPTextConfig's defaults (transformers 4.44).
func DefaultConfig() Config {
	return Config{
		VocabSize:             49408,
		HiddenSize:            512,
		IntermediateSize:      2048,
		ProjectionDim:         512,
		NumHiddenLayers:       12,
		NumAttentionHeads:     8,
		MaxPositionEmbeddings: 77,
		HiddenAct:             "quick_gelu",
		LayerNormEps:          1e-5,
		PadTokenID:            1,
		BOSTokenID:            49406,
		EOSTokenID:            49407,
	}
}

// UnmarshalJSON fills c from a config.json: keys present override
// DefaultConfig's values. A full CLIPConfig (with a nested text_config) is
// accepted too; its text_config is used.
func (c *Config) UnmarshalJSON(data []byte) error {
	var outer struct {
		TextConfig    json.RawMessage `json:"text_config"`
		Architectures []string        `json:"architectures"`
	}
	if err := json.Unmarshal(data, &outer); err != nil {
		return fmt.Errorf("clip config: %w", err)
	}
	type plain Config // no UnmarshalJSON: avoids recursion
	p := plain(DefaultConfig())
	src := data
	if len(outer.TextConfig) > 0 && string(outer.TextConfig) != "null" {
		src = outer.TextConfig
	}
	if err := json.Unmarshal(src, &p); err != nil {
		return fmt.Errorf("clip config: %w", err)
	}
	*c = Config(p)
	c.Architectures = outer.Architectures
	c.WithProjection = slices.Contains(outer.Architectures, "CLIPTextModelWithProjection")
	return nil
}

// ParseConfig parses and validates a text encoder's config.json.
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

// HeadDim is hidden_size / num_attention_heads.
func (c *Config) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }

// Validate reports the first inconsistency in c.
func (c *Config) Validate() error {
	pos := map[string]int{
		"vocab_size":              c.VocabSize,
		"hidden_size":             c.HiddenSize,
		"intermediate_size":       c.IntermediateSize,
		"num_hidden_layers":       c.NumHiddenLayers,
		"num_attention_heads":     c.NumAttentionHeads,
		"max_position_embeddings": c.MaxPositionEmbeddings,
	}
	for _, k := range []string{"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings"} {
		if pos[k] <= 0 {
			return fmt.Errorf("clip config: %s = %d; must be positive", k, pos[k])
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("clip config: hidden_size %d is not divisible by num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	if c.WithProjection && c.ProjectionDim <= 0 {
		return fmt.Errorf("clip config: projection_dim = %d; must be positive for CLIPTextModelWithProjection", c.ProjectionDim)
	}
	if _, err := activation(c.HiddenAct); err != nil {
		return err
	}
	if !(c.LayerNormEps > 0) {
		return fmt.Errorf("clip config: layer_norm_eps = %v; must be positive", c.LayerNormEps)
	}
	return nil
}
