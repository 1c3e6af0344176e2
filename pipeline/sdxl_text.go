package pipeline

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/models/clip"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
	"github.com/tgate-web/tgate/tokenizer"
)

// sdxlPrompts are the texts each tokenizer encodes, resolved from a
// Request the way StableDiffusionXLPipeline.encode_prompt does.
type sdxlPrompts struct {
	prompt, prompt2 string
	// zeroNegative: the negative embeddings are zeros (negative_prompt
	// None with force_zeros_for_empty_prompt); negative and negative2
	// are then unused.
	zeroNegative        bool
	negative, negative2 string
}

// resolveSDXLPrompts applies encode_prompt's defaults: prompt_2 = prompt_2
// or prompt; with guidance, zeros for the negative side when no negative
// prompt is given and force_zeros_for_empty_prompt is set, otherwise
// negative_prompt = negative_prompt or "" and negative_prompt_2 =
// negative_prompt_2 or negative_prompt. warn gets a note for each input
// that has no effect.
func (p *Pipeline) resolveSDXLPrompts(req *Request, guided bool, warn func(string)) sdxlPrompts {
	r := sdxlPrompts{prompt: req.Prompt, prompt2: req.Prompt2, negative: req.NegativePrompt, negative2: req.NegativePrompt2}
	if r.prompt2 == "" {
		r.prompt2 = r.prompt
	}
	if !guided {
		if req.NegativePrompt != "" || req.NegativePrompt2 != "" {
			warn("the negative prompt is ignored without classifier-free guidance")
		}
		return r
	}
	noNegative := req.NegativePrompt == "" && !req.EncodeEmptyNegativePrompt
	if noNegative && p.ForceZerosForEmptyPrompt {
		r.zeroNegative = true
		if req.NegativePrompt2 != "" {
			warn("negative prompt 2 is ignored: without a negative prompt this model (force_zeros_for_empty_prompt) uses zero negative embeddings")
		}
		return r
	}
	if r.negative2 == "" {
		r.negative2 = r.negative
	}
	return r
}

// encodeSDXL is StableDiffusionXLPipeline.encode_prompt (diffusers
// v0.30.3, clip_skip None): each (tokenizer, text encoder) pair encodes
// its prompt padded to model_max_length, and its hidden_states[−2] (the
// penultimate layer, without final_layer_norm) are concatenated along
// the feature axis, text_encoder first; the pooled embedding is
// text_encoder_2's projected text_embeds. With guidance the results are
// [negative; positive] along the batch. It also returns the time ids of
// an image of height×width pixels (_get_add_time_ids; sdxlTimeIDs). With
// req.ReleaseTextEncoder each encoder is released as soon as it has run,
// so only one is held at a time.
func (p *Pipeline) encodeSDXL(req *Request, guided bool, height, width int, warn func(string), phase func(string, bool)) (embeds backend.Tensor, cond *sdxlCond, err error) {
	b := p.b
	if err := req.SDXLOptions.validate(); err != nil {
		return nil, nil, err
	}
	// An init image makes the request image to image or inpainting (the
	// edit state is prepared before this), whose time ids differ.
	pos, neg, err := p.sdxlTimeIDs(&req.SDXLOptions, req.InitImage != nil, height, width, warn)
	if err != nil {
		return nil, nil, err
	}
	phase(PhaseTokenize, false)
	pr := p.resolveSDXLPrompts(req, guided, warn)
	tokenize := func(t *tokenizer.CLIP, text, what string) []int32 {
		ids, tr := t.EncodeForModel(text)
		if tr != nil {
			warn(what + tr.Warning())
		}
		return ids
	}
	rows1 := [][]int32{tokenize(p.Tokenizer, pr.prompt, "")}
	row2, tr2 := p.Tokenizer2.EncodeForModel(pr.prompt2)
	if tr2 != nil && pr.prompt2 != pr.prompt { // the same text's truncation was reported once
		warn("prompt 2: " + tr2.Warning())
	}
	rows2 := [][]int32{row2}
	if guided && !pr.zeroNegative {
		neg1 := tokenize(p.Tokenizer, pr.negative, "negative prompt: ")
		neg2, ntr2 := p.Tokenizer2.EncodeForModel(pr.negative2)
		if ntr2 != nil && pr.negative2 != pr.negative {
			warn("negative prompt 2: " + ntr2.Warning())
		}
		rows1 = [][]int32{neg1, rows1[0]}
		rows2 = [][]int32{neg2, rows2[0]}
	}
	phase(PhaseTokenize, true)

	phase(PhaseTextEncoder, false)
	if p.TextEncoder == nil {
		if err := p.loadTextEncoder(); err != nil {
			return nil, nil, err
		}
	}
	h1, _, err := penultimate(b, p.TextEncoder, rows1)
	if err != nil {
		return nil, nil, fmt.Errorf("text encoder: %w", err)
	}
	if req.ReleaseTextEncoder {
		p.TextEncoder.Release(b)
		p.TextEncoder = nil
	}
	if p.TextEncoder2 == nil {
		if err := p.loadTextEncoder2(); err != nil {
			b.Free(h1)
			return nil, nil, err
		}
	}
	h2, pooled, err := penultimate(b, p.TextEncoder2, rows2)
	if err != nil {
		b.Free(h1)
		return nil, nil, fmt.Errorf("text encoder 2: %w", err)
	}
	if req.ReleaseTextEncoder {
		p.TextEncoder2.Release(b)
		p.TextEncoder2 = nil
	}
	embeds = b.Concat(-1, h1, h2)
	nn.Free(b, h1, h2)
	if pr.zeroNegative {
		embeds = prependZeros(b, embeds)
		pooled = prependZeros(b, pooled)
	}
	cond = &sdxlCond{pooled: pooled}
	if guided {
		cond.negPooled = b.Slice(pooled, 0, 0, 1)
	}
	cond.timeIDs, cond.negTimeIDs = pos, neg
	if err := b.Err(); err != nil {
		b.Free(embeds)
		cond.release(b)
		return nil, nil, err
	}
	phase(PhaseTextEncoder, true)
	return embeds, cond, nil
}

// penultimate runs a CLIP text encoder on rows and returns its
// hidden_states[−2] [B, L, D] and, for a CLIPTextModelWithProjection, its
// text_embeds [B, P] (nil otherwise); every other output is freed.
func penultimate(b backend.Backend, m *clip.TextModel, rows [][]int32) (hidden, textEmbeds backend.Tensor, err error) {
	out, err := m.Forward(b, rows, clip.Options{HiddenStates: true})
	if err != nil {
		return nil, nil, err
	}
	n := len(out.HiddenStates)
	if n < 2 {
		out.Release(b)
		return nil, nil, fmt.Errorf("clip: %d hidden states; SD-XL needs a text encoder with at least one layer", n)
	}
	hidden, textEmbeds = out.HiddenStates[n-2], out.TextEmbeds
	out.HiddenStates[n-2], out.TextEmbeds = nil, nil
	out.Release(b)
	return hidden, textEmbeds, nil
}

// prependZeros returns cat([zeros_like(x), x]) along the batch and frees
// x: torch.zeros_like for the negative side of encode_prompt.
func prependZeros(b backend.Backend, x backend.Tensor) backend.Tensor {
	z := b.Upload(tensor.New(x.Shape()...))
	out := b.Concat(0, z, x)
	nn.Free(b, z, x)
	return out
}
