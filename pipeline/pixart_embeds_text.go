package pipeline

import (
	"errors"
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
	"github.com/tgate-web/tgate/tokenizer"
)

// errNoT5 is the error of a generation that needs the T5 encoder of a
// pipeline loaded without it.
var errNoT5 = errors.New("pipeline: the T5 text encoder was not loaded (LoadOptions.SkipTextEncoder); " +
	"pass precomputed embeddings in PixArtOptions.PromptEmbeds (tgate generate --prompt-embeds FILE), " +
	"or load the pipeline without SkipTextEncoder")

// pixartConditioning returns the encoded text of a PixArt generation: T5
// hidden states [negative; prompt] [2, L, D] with guidance (cfg), the
// prompt's [1, L, D] without, and their masks — diffusers v0.30.3
// PixArtAlphaPipeline.encode_prompt. The prompt's come from
// req.PromptEmbeds when set (prompt_embeds=, prompt_attention_mask=; the
// negative prompt is then encoded at their length L unless the file has
// its embeddings too), else from the T5 encoder, through the cache of
// recent encodings (promptCache).
func (p *Pipeline) pixartConditioning(req Request, maxSeq int, cfg bool, warn func(string), phase func(string, bool)) (*pixartText, error) {
	b := p.b
	if e := req.PromptEmbeds; e != nil {
		if err := p.checkPromptEmbeds(e, maxSeq); err != nil {
			return nil, err
		}
		phase(PhaseTokenize, false)
		phase(PhaseTokenize, true)
		phase(PhaseTextEncoder, false)
		pos := b.Upload(e.PromptEmbeds)
		if !cfg {
			if req.NegativePrompt != "" {
				warn("the negative prompt is ignored without classifier-free guidance")
			}
			phase(PhaseTextEncoder, true)
			return &pixartText{embeds: pos, mask: e.PromptAttentionMask}, nil
		}
		var neg backend.Tensor
		var negMask *tensor.Host
		if e.NegativePromptEmbeds != nil {
			neg, negMask = b.Upload(e.NegativePromptEmbeds), e.NegativePromptAttentionMask
		} else {
			if p.pixart.teComp == nil {
				b.Free(pos)
				return nil, fmt.Errorf("prompt embeddings: no %s for classifier-free guidance, and the T5 text encoder was not loaded (LoadOptions.SkipTextEncoder) to encode the negative prompt: add %s and %s to the file, turn guidance off (guidance ≤ 1), or load the pipeline without SkipTextEncoder",
					NameNegativePromptEmbeds, NameNegativePromptEmbeds, NameNegativePromptAttentionMask)
			}
			// encode_prompt pads the negative prompt to prompt_embeds.shape[1].
			l := e.PromptEmbeds.Shape[1]
			ids, mask, truncated := p.pixart.Tokenizer.EncodePadded(tokenizer.PixArtPreprocess(req.NegativePrompt, req.CleanCaption), l)
			if truncated {
				warn(fmt.Sprintf("negative prompt: truncated to %d T5 tokens (the prompt embeddings' length)", l))
			}
			text, err := p.encodeT5(req, [][]int32{ids}, [][]int32{mask})
			if err != nil {
				b.Free(pos)
				return nil, err
			}
			neg, negMask = text.embeds, text.mask
		}
		embeds := b.Concat(0, neg, pos)
		b.Free(neg)
		b.Free(pos)
		mask := tensor.New(2, negMask.Shape[1])
		copy(mask.Data, negMask.Data)
		copy(mask.Data[negMask.Shape[1]:], e.PromptAttentionMask.Data)
		phase(PhaseTextEncoder, true)
		return &pixartText{embeds: embeds, mask: mask}, nil
	}

	if p.pixart.teComp == nil {
		return nil, errNoT5
	}
	phase(PhaseTokenize, false)
	tok := p.pixart.Tokenizer
	ids, mask, truncated := tok.EncodePadded(tokenizer.PixArtPreprocess(req.Prompt, req.CleanCaption), maxSeq)
	if truncated {
		warn(fmt.Sprintf("the prompt was truncated to %d T5 tokens (max sequence length)", maxSeq))
	}
	rows, masks := [][]int32{ids}, [][]int32{mask}
	if cfg {
		nids, nmask, ntr := tok.EncodePadded(tokenizer.PixArtPreprocess(req.NegativePrompt, req.CleanCaption), maxSeq)
		if ntr {
			warn(fmt.Sprintf("negative prompt: truncated to %d T5 tokens (max sequence length)", maxSeq))
		}
		rows, masks = [][]int32{nids, ids}, [][]int32{nmask, mask}
	} else if req.NegativePrompt != "" {
		warn("the negative prompt is ignored without classifier-free guidance")
	}
	phase(PhaseTokenize, true)

	phase(PhaseTextEncoder, false)
	text, err := p.encodeT5(req, rows, masks)
	if err != nil {
		return nil, err
	}
	phase(PhaseTextEncoder, true)
	return text, nil
}

// encodeT5 returns T5EncoderModel(ids, mask).last_hidden_state for rows of
// padded ids from the cache of recent encodings, or else from the encoder
// (bound first if a generation released it, and released after when
// req.ReleaseTextEncoder), keeping the result in the cache. The returned
// embeddings are the caller's to free.
func (p *Pipeline) encodeT5(req Request, ids, masks [][]int32) (*pixartText, error) {
	b, px := p.b, p.pixart
	key := promptCacheKey(ids, masks)
	if embeds, mask, ok := px.promptCache.get(b, key); ok {
		return &pixartText{embeds: embeds, mask: mask}, nil
	}
	if px.TextEncoder == nil {
		if err := p.bindT5(); err != nil {
			return nil, err
		}
	}
	if t, ok := px.TextEncoder.(*t5Text); ok {
		t.progress = req.TextEncoderProgress
	}
	embeds, err := px.TextEncoder.Encode(b, ids, masks)
	if err != nil {
		return nil, fmt.Errorf("text encoder: %w", err)
	}
	if req.ReleaseTextEncoder {
		px.TextEncoder.Release(b)
		px.TextEncoder = nil
	}
	if err := b.Err(); err != nil {
		b.Free(embeds)
		return nil, err
	}
	mask := maskHost(masks)
	px.promptCache.put(b, key, embeds, mask)
	return &pixartText{embeds: embeds, mask: mask}, nil
}
