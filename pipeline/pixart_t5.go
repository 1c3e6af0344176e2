package pipeline

import (
	"fmt"
	"strings"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/models/t5"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// t5Text is the t5Encoder of a PixArt folder's text_encoder/: the whole
// encoder on the backend, or, streaming, only its embedding, relative
// attention bias and final norm, each block bound from the folder just
// before it runs and released after (T5-XXL in a browser).
type t5Text struct {
	enc       *t5.Encoder
	src       nn.Source
	streaming bool
	// progress, when set, is called after each encoder block.
	progress func(done, total int)
}

// loadT5 binds the T5 encoder of c (streaming or whole), with its Linear
// weights as 8-bit when eight is set.
func loadT5(b backend.Backend, c *hub.Component, streaming, eight bool) (*t5Text, error) {
	cfg, err := t5.ParseConfig(c.ConfigJSON())
	if err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	load := t5.Load
	if streaming {
		load = t5.LoadStreaming
	}
	var src nn.Source = c
	if eight {
		if _, ok := b.(backend.Quantizer); !ok {
			return nil, fmt.Errorf("8-bit text encoder weights: the %s backend cannot hold them", b.Name())
		}
		src = nn.Quantized8(c, t5Weight8)
	}
	enc, err := load(b, src, cfg)
	if err != nil {
		return nil, err
	}
	return &t5Text{enc: enc, src: src, streaming: streaming}, nil
}

// t5Weight8 picks the T5 weights 8-bit storage suits: the attention and
// feed-forward projections, not the relative position bias table (read
// row by row) or the token embedding.
func t5Weight8(name string, shape tensor.Shape) bool {
	return nn.LinearOrConvWeight(name, shape) && !strings.Contains(name, "relative_attention_bias")
}

// Encode returns T5EncoderModel(ids, attention_mask).last_hidden_state.
func (t *t5Text) Encode(b backend.Backend, ids, mask [][]int32) (backend.Tensor, error) {
	opt := t5.Options{Progress: t.progress}
	var out *t5.Output
	var err error
	if t.streaming {
		out, err = t.enc.ForwardStreaming(b, t.src, ids, mask, opt)
	} else {
		out, err = t.enc.Forward(b, ids, mask, opt)
	}
	if err != nil {
		return nil, err
	}
	h := out.LastHiddenState
	out.LastHiddenState = nil
	out.Release(b)
	return h, nil
}

// Release frees the encoder's weights.
func (t *t5Text) Release(b backend.Backend) { t.enc.Release(b) }
