package pipeline

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// Tensor names of a prompt embeddings file: the values diffusers'
// PixArtAlphaPipeline.encode_prompt (and PixArtSigmaPipeline's) returns,
// under the names of the __call__ arguments that take them back.
const (
	NamePromptEmbeds                = "prompt_embeds"
	NamePromptAttentionMask         = "prompt_attention_mask"
	NameNegativePromptEmbeds        = "negative_prompt_embeds"
	NameNegativePromptAttentionMask = "negative_prompt_attention_mask"
)

// PromptEmbeds are a PixArt prompt's T5 embeddings made elsewhere (another
// machine, an earlier run): what PixArtAlphaPipeline.encode_prompt returns
// and __call__ accepts as prompt_embeds= and friends. With them a PixArt
// generation does not run the T5 encoder for the prompt.
type PromptEmbeds struct {
	// PromptEmbeds is the prompt's T5 last_hidden_state [1, L, D], D the
	// transformer's caption_channels.
	PromptEmbeds *tensor.Host
	// PromptAttentionMask is its attention mask [1, L] (1 = token, 0 =
	// padding).
	PromptAttentionMask *tensor.Host
	// NegativePromptEmbeds and NegativePromptAttentionMask are the negative
	// prompt's, of the same shapes; both nil when the file has none, and
	// then a generation with guidance encodes Request.NegativePrompt with
	// T5, padded to L as encode_prompt does.
	NegativePromptEmbeds        *tensor.Host
	NegativePromptAttentionMask *tensor.Host
}

// promptEmbedsHelp says what a prompt embeddings file holds and how to
// make one; it ends the errors about such files.
const promptEmbedsHelp = "a prompt embeddings file holds prompt_embeds [1, L, D] and prompt_attention_mask [1, L] " +
	"(optionally negative_prompt_embeds and negative_prompt_attention_mask), as PixArtAlphaPipeline.encode_prompt " +
	"returns them; tgate generate --save-prompt-embeds FILE makes one"

// LoadPromptEmbedsFile reads a prompt embeddings safetensors file from the
// local disk (see PromptEmbeds; F32, F16 or BF16 embeddings, integer or
// float masks).
func LoadPromptEmbedsFile(path string) (*PromptEmbeds, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prompt embeddings: %w", err)
	}
	return ParsePromptEmbeds(path, data)
}

// LoadPromptEmbeds reads the prompt embeddings file name of f (a model
// folder, a URL, the browser's files).
func LoadPromptEmbeds(f hub.Folder, name string) (*PromptEmbeds, error) {
	data, err := f.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("prompt embeddings: %s/%s: %w", strings.TrimSuffix(f.String(), "/"), name, err)
	}
	return ParsePromptEmbeds(name, data)
}

// ParsePromptEmbeds decodes the bytes of a prompt embeddings file; name
// labels errors. It checks the shapes agree with one another; the checks
// against a model come at generation (see Pipeline.checkPromptEmbeds).
func ParsePromptEmbeds(name string, data []byte) (*PromptEmbeds, error) {
	f, err := safetensors.ParseBytes(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ck := safetensors.Single(f)
	read := func(key string, need bool) (*tensor.Host, error) {
		if _, ok := ck.Info(key); !ok {
			if need {
				return nil, fmt.Errorf("%s: no tensor %q (%s)", name, key, promptEmbedsHelp)
			}
			return nil, nil
		}
		h, err := ck.ReadFloat32(key)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", name, key, err)
		}
		return h, nil
	}
	e := &PromptEmbeds{}
	if e.PromptEmbeds, err = read(NamePromptEmbeds, true); err != nil {
		return nil, err
	}
	if e.PromptAttentionMask, err = read(NamePromptAttentionMask, true); err != nil {
		return nil, err
	}
	if e.NegativePromptEmbeds, err = read(NameNegativePromptEmbeds, false); err != nil {
		return nil, err
	}
	if e.NegativePromptAttentionMask, err = read(NameNegativePromptAttentionMask, false); err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return e, nil
}

// Validate checks that the tensors agree with one another: embeddings
// [1, L, D] with L, D ≥ 1, masks [1, L] of zeros and ones, and the
// negative pair both present or both absent, of the prompt's shapes.
func (e *PromptEmbeds) Validate() error {
	if e.PromptEmbeds == nil || e.PromptAttentionMask == nil {
		return fmt.Errorf("prompt embeddings: %s and %s are both required (%s)", NamePromptEmbeds, NamePromptAttentionMask, promptEmbedsHelp)
	}
	s := e.PromptEmbeds.Shape
	if len(s) != 3 || s[0] != 1 || s[1] < 1 || s[2] < 1 {
		return fmt.Errorf("prompt embeddings: %s has shape %v; want [1, L, D] (one prompt, L tokens of width D)", NamePromptEmbeds, s)
	}
	if err := checkMask(NamePromptAttentionMask, e.PromptAttentionMask, s[1]); err != nil {
		return err
	}
	switch neg, nmask := e.NegativePromptEmbeds, e.NegativePromptAttentionMask; {
	case neg == nil && nmask == nil:
	case neg == nil || nmask == nil:
		return fmt.Errorf("prompt embeddings: %s and %s go together; give both or neither", NameNegativePromptEmbeds, NameNegativePromptAttentionMask)
	case !neg.Shape.Equal(s):
		return fmt.Errorf("prompt embeddings: %s has shape %v but %s has %v; they must match", NameNegativePromptEmbeds, neg.Shape, NamePromptEmbeds, s)
	default:
		if err := checkMask(NameNegativePromptAttentionMask, nmask, s[1]); err != nil {
			return err
		}
	}
	return nil
}

// checkMask checks an attention mask is [1, l] of zeros and ones.
func checkMask(name string, m *tensor.Host, l int) error {
	if len(m.Shape) != 2 || m.Shape[0] != 1 || m.Shape[1] != l {
		return fmt.Errorf("prompt embeddings: %s has shape %v; want [1, %d] (one entry per embedding token)", name, m.Shape, l)
	}
	for i, v := range m.Data {
		if v != 0 && v != 1 {
			return fmt.Errorf("prompt embeddings: %s[0, %d] is %g; an attention mask holds only 0 and 1", name, i, v)
		}
	}
	return nil
}

// checkPromptEmbeds checks e against the pipeline's transformer: the
// embedding width must be caption_channels (the transformer's inner dim
// without a caption projection) and L at most the max sequence length
// maxSeq.
func (p *Pipeline) checkPromptEmbeds(e *PromptEmbeds, maxSeq int) error {
	if err := e.Validate(); err != nil {
		return err
	}
	cfg := &p.pixart.Transformer.Config
	width, what := cfg.InnerDim(), "inner dim"
	if cfg.CaptionChannels != nil {
		width, what = *cfg.CaptionChannels, "caption_channels"
	}
	s := e.PromptEmbeds.Shape
	if s[2] != width {
		return fmt.Errorf("prompt embeddings: width %d, but this %s transformer takes %d (its %s); the embeddings were made by another text encoder", s[2], p.Kind, width, what)
	}
	if s[1] > maxSeq {
		return fmt.Errorf("prompt embeddings: %d tokens, more than the max sequence length %d (set PixArtOptions.MaxSequenceLength / --max-sequence-length to at least %d)", s[1], maxSeq, s[1])
	}
	return nil
}

// Marshal returns e as the bytes of a safetensors file: the embeddings as
// F32 and the masks as I64 (torch.long, as the tokenizer makes them), so
// that safetensors.torch.load_file gives back what encode_prompt returned.
func (e *PromptEmbeds) Marshal() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	ts := []safetensors.Named{
		safetensors.FromHost(NamePromptEmbeds, e.PromptEmbeds, tensor.F32),
		maskI64(NamePromptAttentionMask, e.PromptAttentionMask),
	}
	if e.NegativePromptEmbeds != nil {
		ts = append(ts, safetensors.FromHost(NameNegativePromptEmbeds, e.NegativePromptEmbeds, tensor.F32),
			maskI64(NameNegativePromptAttentionMask, e.NegativePromptAttentionMask))
	}
	return safetensors.Marshal(map[string]string{"format": "pt"}, ts)
}

// SavePromptEmbeds writes e to a new safetensors file at path (see
// Marshal).
func SavePromptEmbeds(path string, e *PromptEmbeds) error {
	data, err := e.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("prompt embeddings: %w", err)
	}
	return nil
}

// maskI64 encodes a 0/1 mask as little-endian int64 for writing.
func maskI64(name string, m *tensor.Host) safetensors.Named {
	b := make([]byte, 8*len(m.Data))
	for i, v := range m.Data {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(int64(v)))
	}
	return safetensors.Named{Name: name, Raw: &tensor.Raw{DType: tensor.I64, Shape: m.Shape.Clone(), Bytes: b}}
}

// promptEmbedsFromText reads the conditioning of a generation back from
// the device as PromptEmbeds: rows [negative; prompt] with guidance, the
// prompt alone without.
func promptEmbedsFromText(b backend.Backend, text *pixartText) (*PromptEmbeds, error) {
	all, err := b.ReadBack(text.embeds)
	if err != nil {
		return nil, err
	}
	rows, l, d := all.Shape[0], all.Shape[1], all.Shape[2]
	row := func(h *tensor.Host, i, width int, shape ...int) *tensor.Host {
		return &tensor.Host{Shape: tensor.Shape(shape), Data: append([]float32(nil), h.Data[i*width:(i+1)*width]...)}
	}
	e := &PromptEmbeds{
		PromptEmbeds:        row(all, rows-1, l*d, 1, l, d),
		PromptAttentionMask: row(text.mask, rows-1, l, 1, l),
	}
	if rows == 2 {
		e.NegativePromptEmbeds = row(all, 0, l*d, 1, l, d)
		e.NegativePromptAttentionMask = row(text.mask, 0, l, 1, l)
	}
	return e, nil
}
