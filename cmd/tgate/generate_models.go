package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/pipeline"
)

// modelFlags are generate's flags for SD-XL, PixArt, DeepCache, Adaptive
// Guidance and the auto gate.
type modelFlags struct {
	prompt2, negative2                     string
	originalSize, cropTopLeft, targetSize  pairFlag
	negOriginal, negCropTopLeft, negTarget pairFlag

	maxSeqLen    int
	binning      bool
	cleanCaption bool
	streamT5     bool

	deepcacheInterval, deepcacheBranch int
	adaptiveGuidance                   float64

	gateStep         gateStepFlag
	gateThreshold    float64
	gateMin, gateMax int
}

func (m *modelFlags) register(fl *flag.FlagSet) {
	fl.StringVar(&m.prompt2, "prompt-2", "", "SD-XL: the prompt of the second text encoder (default: --prompt)")
	fl.StringVar(&m.negative2, "negative-prompt-2", "", "SD-XL: the negative prompt of the second text encoder (default: --negative-prompt)")
	for _, p := range []struct {
		f          *pairFlag
		name, what string
		help       string
	}{
		{&m.originalSize, "original-size", "H,W", "SD-XL micro-conditioning original_size (default: the image size)"},
		{&m.cropTopLeft, "crops-coords-top-left", "TOP,LEFT", "SD-XL crops_coords_top_left (default: 0,0)"},
		{&m.targetSize, "target-size", "H,W", "SD-XL target_size (default: the image size)"},
		{&m.negOriginal, "negative-original-size", "H,W", "SD-XL negative_original_size (used with --negative-target-size)"},
		{&m.negCropTopLeft, "negative-crops-coords-top-left", "TOP,LEFT", "SD-XL negative_crops_coords_top_left"},
		{&m.negTarget, "negative-target-size", "H,W", "SD-XL negative_target_size (used with --negative-original-size)"},
	} {
		p.f.what = p.what
		fl.Var(p.f, p.name, p.help)
	}
	fl.IntVar(&m.maxSeqLen, "max-sequence-length", 0, "PixArt: T5 tokens every prompt is padded or cut to (default: 120 for PixArt-α, 300 for PixArt-Σ)")
	fl.BoolVar(&m.binning, "resolution-binning", true, "PixArt: generate at the nearest trained aspect-ratio size and resize back (=false: at the size asked for)")
	fl.BoolVar(&m.cleanCaption, "clean-caption", false, "PixArt: clean the prompt of URLs, markup and similar before tokenising (diffusers' clean_caption)")
	fl.BoolVar(&m.streamT5, "stream-text-encoder", false, "PixArt: bind the T5 encoder one block at a time while it runs (least memory)")
	fl.IntVar(&m.deepcacheInterval, "deepcache-interval", 0, "DeepCache: a full UNet every N steps, only the shallow branch in between (0 is off)")
	fl.IntVar(&m.deepcacheBranch, "deepcache-branch", 0, "DeepCache: the skip branch recomputed between full steps (cache_branch_id; 0 is the shallowest)")
	fl.Float64Var(&m.adaptiveGuidance, "adaptive-guidance", 0, "Adaptive Guidance: stop classifier-free guidance once the two predictions' cosine similarity exceeds this, in (0, 1] (0 is off)")
	m.gateStep.n = -1
	fl.Var(&m.gateStep, "gate-step", "steps that compute cross-attention; after them it is reused and guidance stops; auto closes the gate when cross-attention has converged (default: 10 for Stable Diffusion, 1 for LCM)")
	fl.Float64Var(&m.gateThreshold, "gate-threshold", gate.DefaultAutoThreshold, "--gate-step auto: close the gate once the cross-attention outputs change by less than this between steps (relative)")
	fl.IntVar(&m.gateMin, "gate-min", 0, "--gate-step auto: the earliest gate step")
	fl.IntVar(&m.gateMax, "gate-max", 0, "--gate-step auto: the latest gate step (0: none, the gate may never close)")
}

// modelGroups are the help groups of the model flags.
var modelGroups = []flagGroup{
	{"SD-XL", []string{"prompt-2", "negative-prompt-2", "original-size", "crops-coords-top-left", "target-size",
		"negative-original-size", "negative-crops-coords-top-left", "negative-target-size"}},
	{"PixArt", []string{"max-sequence-length", "resolution-binning", "clean-caption", "stream-text-encoder"}},
	{"DeepCache and Adaptive Guidance", []string{"deepcache-interval", "deepcache-branch", "adaptive-guidance"}},
}

// modelValues name the model flags' values in help.
var modelValues = map[string]string{
	"prompt-2": "TEXT", "negative-prompt-2": "TEXT", "original-size": "H,W", "crops-coords-top-left": "TOP,LEFT",
	"target-size": "H,W", "negative-original-size": "H,W", "negative-crops-coords-top-left": "TOP,LEFT",
	"negative-target-size": "H,W", "gate-step": "N|auto", "adaptive-guidance": "γ",
}

// autoGateFlags join the T-GATE help group.
var autoGateFlags = []string{"gate-threshold", "gate-min", "gate-max"}

// check validates the flags before any model is read.
func (m *modelFlags) check(set map[string]bool) error {
	if m.maxSeqLen < 0 {
		return fmt.Errorf("--max-sequence-length %d: must not be negative", m.maxSeqLen)
	}
	if m.adaptiveGuidance < 0 || m.adaptiveGuidance > 1 {
		return fmt.Errorf("--adaptive-guidance %g: must be in (0, 1] (0 is off)", m.adaptiveGuidance)
	}
	if err := (pipeline.DeepCache{Interval: m.deepcacheInterval, Branch: m.deepcacheBranch}).Validate(); err != nil {
		return err
	}
	if set["deepcache-branch"] && m.deepcacheInterval == 0 {
		return errors.New("--deepcache-branch needs --deepcache-interval (DeepCache is off)")
	}
	if !m.gateStep.auto {
		for _, n := range autoGateFlags {
			if set[n] {
				return fmt.Errorf("--%s is for --gate-step auto", n)
			}
		}
	}
	return (gate.Auto{Threshold: m.gateThreshold, MinStep: m.gateMin, MaxStep: m.gateMax}).Validate()
}

// auto is the auto gate's configuration (off unless --gate-step auto).
func (m *modelFlags) auto() gate.Auto {
	if !m.gateStep.auto {
		return gate.Auto{}
	}
	return gate.Auto{Threshold: m.gateThreshold, MinStep: m.gateMin, MaxStep: m.gateMax}
}

// apply puts the flags into req; set holds the flags given, so an explicit
// --negative-prompt "" is told from none (SD-XL zeros the latter).
func (m *modelFlags) apply(req *pipeline.Request, set map[string]bool) {
	req.Prompt2, req.NegativePrompt2 = m.prompt2, m.negative2
	req.EncodeEmptyNegativePrompt = set["negative-prompt"] && req.NegativePrompt == ""
	size := func(p pairFlag) pipeline.ImageSize { return pipeline.ImageSize{Height: p.v[0], Width: p.v[1]} }
	crop := func(p pairFlag) pipeline.CropOffset { return pipeline.CropOffset{Top: p.v[0], Left: p.v[1]} }
	req.OriginalSize, req.CropsCoordsTopLeft, req.TargetSize = size(m.originalSize), crop(m.cropTopLeft), size(m.targetSize)
	req.NegativeOriginalSize, req.NegativeCropsCoordsTopLeft, req.NegativeTargetSize = size(m.negOriginal), crop(m.negCropTopLeft), size(m.negTarget)
	req.MaxSequenceLength, req.NoResolutionBinning, req.CleanCaption = m.maxSeqLen, !m.binning, m.cleanCaption
	req.DeepCache = pipeline.DeepCache{Interval: m.deepcacheInterval, Branch: m.deepcacheBranch}
	req.AdaptiveGuidance = m.adaptiveGuidance
}

// runSummary reports what the auto gate, Adaptive Guidance and DeepCache
// decided during the run, one line each.
func runSummary(req pipeline.Request, res *pipeline.Result) []string {
	var out []string
	if req.Gate.Mode != gate.Off && req.Gate.Auto.Enabled() {
		if g := res.Gate.GateStep; g > 0 && g <= len(res.Timesteps) {
			out = append(out, fmt.Sprintf("T-GATE auto gate: cross-attention converged; the gate closed at step %d", g))
		} else {
			out = append(out, fmt.Sprintf("T-GATE auto gate: cross-attention never changed by less than %g between steps; the gate stayed open", req.Gate.Auto.Threshold))
		}
	}
	if req.AdaptiveGuidance > 0 {
		if s := res.AdaptiveGuidanceStep; s > 0 {
			out = append(out, fmt.Sprintf("Adaptive Guidance: the predictions agreed at step %d; guidance stopped after it", s))
		} else {
			out = append(out, "Adaptive Guidance: the predictions never agreed enough; guidance ran at every step")
		}
	}
	if d := res.DeepCache; d.Refreshes+d.Partials > 0 {
		out = append(out, fmt.Sprintf("DeepCache: %d full UNet evaluations, %d on the cached branch", d.Refreshes, d.Partials))
	}
	return out
}
