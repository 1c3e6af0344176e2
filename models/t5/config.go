// Package t5 is the T5 encoder of transformers' modeling_t5.py
// (T5EncoderModel, v4.44) as the t5-v1_1 checkpoints use it: PixArt-α and
// PixArt-Σ (T5-XXL), SD3's text_encoder_3. It runs on any
// backend.Backend, binds weights by transformers' key names
// (shared.weight, encoder.block.N.layer.0.SelfAttention.q.weight, ...),
// and can encode while streaming one block at a time from an nn.Source so
// that a browser never holds more than one block of T5-XXL.
package t5

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tgate-web/tgate/backend"
)

// Config is transformers' T5Config, read from a text encoder's
// config.json. Missing keys take T5Config's defaults.
type Config struct {
	VocabSize                    int     `json:"vocab_size"`
	DModel                       int     `json:"d_model"`
	DKV                          int     `json:"d_kv"`
	DFF                          int     `json:"d_ff"`
	NumLayers                    int     `json:"num_layers"`
	NumHeads                     int     `json:"num_heads"`
	RelativeAttentionNumBuckets  int     `json:"relative_attention_num_buckets"`
	RelativeAttentionMaxDistance int     `json:"relative_attention_max_distance"`
	LayerNormEpsilon             float64 `json:"layer_norm_epsilon"`
	// FeedForwardProj is "relu", "gated-gelu" (t5-v1_1), "gated-silu", ...:
	// an optional "gated-" prefix and the activation name.
	FeedForwardProj string `json:"feed_forward_proj"`
}

// DefaultConfig returns T5Config's defaults (t5-small).
func DefaultConfig() Config {
	return Config{
		VocabSize:                    32128,
		DModel:                       512,
		DKV:                          64,
		DFF:                          2048,
		NumLayers:                    6,
		NumHeads:                     8,
		RelativeAttentionNumBuckets:  32,
		RelativeAttentionMaxDistance: 128,
		LayerNormEpsilon:             1e-6,
		FeedForwardProj:              "relu",
	}
}

// UnmarshalJSON fills c from a config.json: keys present override
// DefaultConfig's values.
func (c *Config) UnmarshalJSON(data []byte) error {
	type plain Config // no UnmarshalJSON: avoids recursion
	p := plain(DefaultConfig())
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("t5 config: %w", err)
	}
	*c = Config(p)
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

// Inner is num_heads · d_kv, the width of q, k and v.
func (c *Config) Inner() int { return c.NumHeads * c.DKV }

// Gated reports whether the feed-forward is T5DenseGatedActDense (wi_0,
// wi_1, wo) rather than T5DenseActDense (wi, wo).
func (c *Config) Gated() bool { return strings.HasPrefix(c.FeedForwardProj, "gated-") }

// Activation is the feed-forward activation as T5Config derives
// dense_act_fn from feed_forward_proj ("gated-gelu" means gelu_new, the
// tanh approximation) and transformers' ACT2FN maps it.
func (c *Config) Activation() (backend.UnaryOp, error) {
	parts := strings.Split(c.FeedForwardProj, "-")
	name := parts[len(parts)-1]
	if len(parts) > 2 || len(parts) == 2 && parts[0] != "gated" {
		return 0, fmt.Errorf("t5 config: feed_forward_proj %q, want `{ACT_FN}` or `gated-{ACT_FN}`", c.FeedForwardProj)
	}
	if c.FeedForwardProj == "gated-gelu" {
		name = "gelu_new"
	}
	switch name {
	case "relu":
		return backend.ReLU, nil
	case "gelu":
		return backend.GELU, nil
	case "gelu_new", "gelu_pytorch_tanh":
		return backend.GELUTanh, nil
	case "silu", "swish":
		return backend.SiLU, nil
	}
	return 0, fmt.Errorf("t5 config: feed_forward_proj %q: activation %q is not supported (relu, gelu, gelu_new, silu)", c.FeedForwardProj, name)
}

// Validate reports the first inconsistency in c.
func (c *Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"vocab_size", c.VocabSize}, {"d_model", c.DModel}, {"d_kv", c.DKV}, {"d_ff", c.DFF},
		{"num_layers", c.NumLayers}, {"num_heads", c.NumHeads},
		{"relative_attention_num_buckets", c.RelativeAttentionNumBuckets},
		{"relative_attention_max_distance", c.RelativeAttentionMaxDistance},
	} {
		if f.v <= 0 {
			return fmt.Errorf("t5 config: %s = %d; must be positive", f.name, f.v)
		}
	}
	if c.RelativeAttentionNumBuckets < 4 {
		return fmt.Errorf("t5 config: relative_attention_num_buckets = %d; must be at least 4", c.RelativeAttentionNumBuckets)
	}
	if c.RelativeAttentionMaxDistance <= c.RelativeAttentionNumBuckets/4 {
		return fmt.Errorf("t5 config: relative_attention_max_distance = %d; must exceed num_buckets/4 = %d", c.RelativeAttentionMaxDistance, c.RelativeAttentionNumBuckets/4)
	}
	if !(c.LayerNormEpsilon > 0) {
		return fmt.Errorf("t5 config: layer_norm_epsilon = %v; must be positive", c.LayerNormEpsilon)
	}
	if _, err := c.Activation(); err != nil {
		return err
	}
	return nil
}
