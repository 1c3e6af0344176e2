package pipeline

import (
	"strconv"
	"strings"

	"github.com/tgate-web/tgate/pnginfo"
)

// appendMethodSettings adds to a PNG's settings what editing, LoRA,
// DeepCache, Adaptive Guidance and PixArt changed, under the keys the page
// reads back (web/params.js): "Denoising strength" (AUTOMATIC1111's key),
// "LoRA" ("name:scale, ..."), "DeepCache interval" and "DeepCache branch",
// "Adaptive guidance", "Max sequence length", "Resolution binning"
// ("false" when off) and "Clean caption".
func (p *Pipeline) appendMethodSettings(req Request, add func(key, value string)) {
	if req.InitImage != nil {
		s := req.Strength
		if s == 0 {
			s = p.DefaultStrength(req.Mask != nil)
		}
		add("Denoising strength", pnginfo.FormatFloat(s))
	}
	if ls := p.LoRAs(); len(ls) > 0 {
		parts := make([]string, len(ls))
		for i, l := range ls {
			parts[i] = l.String()
		}
		add("LoRA", strings.Join(parts, ", "))
	}
	if d := req.DeepCache; d.Enabled() {
		add("DeepCache interval", strconv.Itoa(d.Interval))
		add("DeepCache branch", strconv.Itoa(d.Branch))
	}
	if req.PromptEmbeds != nil {
		add("Prompt embeddings", "file")
	}
	if req.AdaptiveGuidance > 0 {
		add("Adaptive guidance", pnginfo.FormatFloat(req.AdaptiveGuidance))
	}
	if p.Kind == PixArtAlpha || p.Kind == PixArtSigma {
		if req.MaxSequenceLength > 0 {
			add("Max sequence length", strconv.Itoa(req.MaxSequenceLength))
		}
		if req.NoResolutionBinning {
			add("Resolution binning", "false")
		}
		if req.CleanCaption {
			add("Clean caption", "true")
		}
	}
}
