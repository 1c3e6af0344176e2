package pipeline

import (
	"math"
	"strconv"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/pnginfo"
	"github.com/tgate-web/tgate/sched"
)

// Settings returns the settings of a finished run as its PNG records them
// (pnginfo's "parameters" text, the format AUTOMATIC1111 writes): steps,
// guidance and scheduler as Generate resolves the request's defaults, the
// image's size, the model's name, and, when they are not the defaults, guidance
// rescale, timestep spacing, the T-GATE settings (the intervals and warm-up
// only for v2, the only mode that uses them) and the TAESD decoder.
func (p *Pipeline) Settings(req Request, res *Result, model string) pnginfo.Params {
	lcm := p.Kind == LatentConsistency
	steps, guidance, name := req.Steps, req.Guidance, req.Scheduler
	if steps == 0 {
		switch {
		case lcm:
			steps = 4
		case p.Kind == PixArtAlpha || p.Kind == PixArtSigma:
			steps = pixartDefaultSteps
		default:
			steps = 50
		}
	}
	if math.IsNaN(guidance) {
		guidance = 7.5
		if lcm {
			guidance = 8.5
		}
		switch p.Kind {
		case StableDiffusionXL:
			guidance = sdxlDefaultGuidance
		case PixArtAlpha, PixArtSigma:
			guidance = pixartDefaultGuidance
		}
	}
	if name == "" {
		name, _ = sched.NameFromConfig(p.Scheduler) // Generate succeeded, so the config names one
	}
	s := pnginfo.Params{
		Prompt: req.Prompt, NegativePrompt: req.NegativePrompt, Steps: steps, Sampler: string(name),
		Guidance: guidance, Seed: req.Seed, Model: model,
	}
	if res.Image != nil {
		s.Width, s.Height = res.Image.Shape[3], res.Image.Shape[2]
	} else if l := res.Latents; l != nil {
		f := p.VAEScaleFactor()
		s.Width, s.Height = l.Shape[3]*f, l.Shape[2]*f
	}
	add := func(k, v string) { s.Extra = append(s.Extra, pnginfo.KV{Key: k, Value: v}) }
	if req.GuidanceRescale != 0 {
		add("Guidance rescale", pnginfo.FormatFloat(req.GuidanceRescale))
	}
	if req.TimestepSpacing != "" {
		add("Timestep spacing", req.TimestepSpacing)
	}
	if g := req.Gate; g.Mode != gate.Off {
		add("T-GATE", g.Mode.String())
		if g.Auto.Enabled() {
			add("Gate step", "auto")
			add("Auto gate threshold", pnginfo.FormatFloat(g.Auto.Threshold))
		} else {
			add("Gate step", strconv.Itoa(g.GateStep))
		}
		if g.Mode == gate.V2 {
			add("SP interval", strconv.Itoa(g.SPInterval))
			add("FI interval", strconv.Itoa(g.FIInterval))
			add("Warm up", strconv.Itoa(g.WarmUp))
		}
	}
	if p.Kind == StableDiffusionXL {
		req.SDXLOptions.appendSettings(add)
	}
	p.appendMethodSettings(req, add)
	if req.Decoder == DecodeTAESD {
		add("Decoder", "taesd")
	}
	return s
}
