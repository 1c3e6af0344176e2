package pipeline

import (
	"fmt"
	"math"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/pnginfo"
)

// ImageSize is a (height, width) pair in pixels: diffusers'
// original_size / target_size tuples. The zero value means "not given".
type ImageSize struct{ Height, Width int }

// IsZero reports whether s was left unset.
func (s ImageSize) IsZero() bool { return s == ImageSize{} }

// CropOffset is a (top, left) pair in pixels: diffusers'
// crops_coords_top_left. The zero value is diffusers' default (0, 0).
type CropOffset struct{ Top, Left int }

// SDXLOptions are the inputs StableDiffusionXLPipeline.__call__ adds to
// StableDiffusionPipeline's (diffusers v0.30.3). Request embeds them, so
// they read as Request fields (req.Prompt2, req.OriginalSize, ...). Other
// pipelines ignore them.
type SDXLOptions struct {
	// Prompt2 is prompt_2, the text for tokenizer_2 / text_encoder_2;
	// empty means Prompt (diffusers' prompt_2 or prompt).
	Prompt2 string
	// NegativePrompt2 is negative_prompt_2; empty means NegativePrompt.
	NegativePrompt2 string
	// EncodeEmptyNegativePrompt makes an empty NegativePrompt mean the
	// empty string (diffusers' negative_prompt="": "" is encoded) instead
	// of no negative prompt (negative_prompt=None, the default: with
	// force_zeros_for_empty_prompt in model_index.json the negative
	// embeddings and pooled embeddings are zeros and no encoder runs for
	// them). It changes nothing when NegativePrompt is not empty.
	EncodeEmptyNegativePrompt bool

	// OriginalSize is original_size (zero: (height, width) of the
	// image being generated).
	OriginalSize ImageSize
	// CropsCoordsTopLeft is crops_coords_top_left (zero: (0, 0)).
	CropsCoordsTopLeft CropOffset
	// TargetSize is target_size (zero: (height, width)).
	TargetSize ImageSize
	// NegativeOriginalSize, NegativeCropsCoordsTopLeft and
	// NegativeTargetSize condition the unconditional half. As in
	// diffusers they take effect only when both sizes are given;
	// otherwise the negative time ids equal the positive ones.
	NegativeOriginalSize       ImageSize
	NegativeCropsCoordsTopLeft CropOffset
	NegativeTargetSize         ImageSize

	// AestheticScore and NegativeAestheticScore are aesthetic_score and
	// negative_aesthetic_score of SD-XL image-to-image and inpainting
	// (0: diffusers' defaults 6.0 and 2.5). They take the target size's
	// place in the time ids of models whose model_index.json sets
	// requires_aesthetics_score (refiners); other models ignore them.
	AestheticScore, NegativeAestheticScore float64
}

// addTimeIDs is StableDiffusionXLPipeline._get_add_time_ids for an image
// of height×width pixels: the positive ids
// [orig_h, orig_w, crop_top, crop_left, target_h, target_w] with
// original and target size defaulting to (height, width), and the
// negative ids, which equal the positive ones unless both
// NegativeOriginalSize and NegativeTargetSize are set (then with
// NegativeCropsCoordsTopLeft).
func (o *SDXLOptions) addTimeIDs(height, width int) (pos, neg []float64) {
	orig, target := o.OriginalSize, o.TargetSize
	if orig.IsZero() {
		orig = ImageSize{height, width}
	}
	if target.IsZero() {
		target = ImageSize{height, width}
	}
	pos = timeIDs(orig, o.CropsCoordsTopLeft, target)
	if o.NegativeOriginalSize.IsZero() || o.NegativeTargetSize.IsZero() {
		return pos, pos
	}
	return pos, timeIDs(o.NegativeOriginalSize, o.NegativeCropsCoordsTopLeft, o.NegativeTargetSize)
}

// timeIDs lists original_size + crops_coords_top_left + target_size.
func timeIDs(orig ImageSize, crop CropOffset, target ImageSize) []float64 {
	return []float64{
		float64(orig.Height), float64(orig.Width),
		float64(crop.Top), float64(crop.Left),
		float64(target.Height), float64(target.Width),
	}
}

// validate rejects negative sizes and offsets.
func (o *SDXLOptions) validate() error {
	for _, s := range []struct {
		name string
		v    ImageSize
	}{{"original size", o.OriginalSize}, {"target size", o.TargetSize},
		{"negative original size", o.NegativeOriginalSize}, {"negative target size", o.NegativeTargetSize}} {
		if s.v.Height < 0 || s.v.Width < 0 {
			return fmt.Errorf("pipeline: %s (%d, %d) is negative; give (height, width) in pixels, or (0, 0) for the default", s.name, s.v.Height, s.v.Width)
		}
	}
	for _, c := range []struct {
		name string
		v    CropOffset
	}{{"crops coords top left", o.CropsCoordsTopLeft}, {"negative crops coords top left", o.NegativeCropsCoordsTopLeft}} {
		if c.v.Top < 0 || c.v.Left < 0 {
			return fmt.Errorf("pipeline: %s (%d, %d) is negative; give (top, left) in pixels", c.name, c.v.Top, c.v.Left)
		}
	}
	for _, a := range []float64{o.AestheticScore, o.NegativeAestheticScore} {
		if math.IsNaN(a) || math.IsInf(a, 0) {
			return fmt.Errorf("pipeline: aesthetic score %g is not a finite number", a)
		}
	}
	return nil
}

// sdxlCond is SD-XL's added_cond_kwargs for every kind of UNet call of
// the loop: the pooled text embeddings (text_embeds) and micro-
// conditioning (time_ids).
type sdxlCond struct {
	// pooled is [negative; positive] ([2, D]) with classifier-free
	// guidance, else the positive row [1, D].
	pooled backend.Tensor
	// negPooled is the negative row [1, D] (nil without guidance): what
	// the original TgateSDXLLoader passes to the batch-1 UNet after the
	// gate.
	negPooled backend.Tensor
	// timeIDs and negTimeIDs are add_time_ids and negative_add_time_ids.
	timeIDs, negTimeIDs []float64
}

// forwardOpts sets opt's TextEmbeds and TimeIDs for a UNet call: the
// guidance batch gets cat([negative, positive]); a batch-1 call of a
// guided run (T-GATE past its gate) the negative pooled embeddings and
// negative time ids, as tgate/SDXL.py; an unguided run the positive
// ones. c may be nil (not SD-XL): opt is then left alone.
func (c *sdxlCond) forwardOpts(opt *unet.ForwardOpts, cfgBatch, guided bool) {
	if c == nil {
		return
	}
	switch {
	case cfgBatch:
		opt.TextEmbeds = c.pooled
		opt.TimeIDs = append(append([]float64(nil), c.negTimeIDs...), c.timeIDs...)
	case guided:
		opt.TextEmbeds, opt.TimeIDs = c.negPooled, c.negTimeIDs
	default:
		opt.TextEmbeds, opt.TimeIDs = c.pooled, c.timeIDs
	}
}

// release frees the pooled embeddings; c may be nil.
func (c *sdxlCond) release(b backend.Backend) {
	if c == nil {
		return
	}
	nn.Free(b, c.pooled, c.negPooled)
	c.pooled, c.negPooled = nil, nil
}

// appendSettings adds the options that differ from their defaults to a
// PNG's settings, as "Prompt 2", "Negative prompt 2", "Empty negative
// prompt" ("encoded"), and the sizes "H,W" / offsets "TOP,LEFT" under
// "Original size", "Crops coords top left", "Target size" and their
// "Negative ..." forms, and "Aesthetic score" / "Negative aesthetic
// score" when set.
func (o *SDXLOptions) appendSettings(add func(key, value string)) {
	if o.Prompt2 != "" {
		add("Prompt 2", o.Prompt2)
	}
	if o.NegativePrompt2 != "" {
		add("Negative prompt 2", o.NegativePrompt2)
	}
	if o.EncodeEmptyNegativePrompt {
		add("Empty negative prompt", "encoded")
	}
	size := func(key string, s ImageSize) {
		if !s.IsZero() {
			add(key, fmt.Sprintf("%d,%d", s.Height, s.Width))
		}
	}
	crop := func(key string, c CropOffset) {
		if c != (CropOffset{}) {
			add(key, fmt.Sprintf("%d,%d", c.Top, c.Left))
		}
	}
	size("Original size", o.OriginalSize)
	crop("Crops coords top left", o.CropsCoordsTopLeft)
	size("Target size", o.TargetSize)
	size("Negative original size", o.NegativeOriginalSize)
	crop("Negative crops coords top left", o.NegativeCropsCoordsTopLeft)
	size("Negative target size", o.NegativeTargetSize)
	if o.AestheticScore != 0 {
		add("Aesthetic score", pnginfo.FormatFloat(o.AestheticScore))
	}
	if o.NegativeAestheticScore != 0 {
		add("Negative aesthetic score", pnginfo.FormatFloat(o.NegativeAestheticScore))
	}
}
