// Package jsapi is the part of the JavaScript API (web/tgate.js, see
// docs/js-api.md) that does not need a browser: the options of
// engine.generate as JSON, resolved to a pipeline.Request with the
// defaults and meanings of `tgate generate`, and the shapes of the events
// and results sent back. The js/wasm entry point (package wasm) uses it.
package jsapi

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/sched"
)

// TGate is the tgate option: mode "off", "v1" or "v2"; unset numbers take
// the paper's defaults (gate.SDDefaults, gate.LCMDefaults for LCM).
type TGate struct {
	Mode     string    `json:"mode"`
	GateStep *GateStep `json:"gateStep"`
	// AutoThreshold is the auto gate's convergence threshold (gateStep
	// "auto"); unset takes the gate's default.
	AutoThreshold *float64 `json:"autoThreshold"`
	SPInterval    *int     `json:"spInterval"`
	FIInterval    *int     `json:"fiInterval"`
	WarmUp        *int     `json:"warmUp"`
}

// Generate is the options object of engine.generate (without latents,
// which travel as a Float32Array, and onProgress).
type Generate struct {
	Prompt          string   `json:"prompt"`
	NegativePrompt  *string  `json:"negativePrompt"`
	Steps           *int     `json:"steps"`
	Guidance        *float64 `json:"guidance"`
	GuidanceRescale float64  `json:"guidanceRescale"`
	Seed            *float64 `json:"seed"`
	Width           int      `json:"width"`
	Height          int      `json:"height"`
	Scheduler       string   `json:"scheduler"`
	TimestepSpacing string   `json:"timestepSpacing"`
	TGate           *TGate   `json:"tgate"`
	Decoder         string   `json:"decoder"`
	ReturnLatents   bool     `json:"returnLatents"`
	PreviewEvery    int      `json:"previewEvery"`

	// Editing (img2img, inpainting; the images travel beside the JSON).
	Strength *float64 `json:"strength"`
	LoRAs    []LoRA   `json:"loras"`

	// SD-XL.
	Prompt2                    string `json:"prompt2"`
	NegativePrompt2            string `json:"negativePrompt2"`
	OriginalSize               []int  `json:"originalSize"`
	CropsCoordsTopLeft         []int  `json:"cropsCoordsTopLeft"`
	TargetSize                 []int  `json:"targetSize"`
	NegativeOriginalSize       []int  `json:"negativeOriginalSize"`
	NegativeCropsCoordsTopLeft []int  `json:"negativeCropsCoordsTopLeft"`
	NegativeTargetSize         []int  `json:"negativeTargetSize"`

	// DeepCache and Adaptive Guidance.
	DeepCache        *DeepCache `json:"deepcache"`
	AdaptiveGuidance float64    `json:"adaptiveGuidance"`

	// PixArt.
	MaxSequenceLength int   `json:"maxSequenceLength"`
	ResolutionBinning *bool `json:"resolutionBinning"`
	CleanCaption      bool  `json:"cleanCaption"`
	// PromptEmbeds is the URL (or picked file's blob: URL) of a
	// safetensors file of precomputed PixArt prompt embeddings.
	PromptEmbeds string `json:"promptEmbeds"`
}

// LoRA is one entry of the loras option: a LoRA file and its scale
// (default 1).
type LoRA struct {
	URL   string   `json:"url"`
	Scale *float64 `json:"scale"`
}

// DeepCache is the deepcache option: a full UNet every Interval steps,
// the skip branch Branch recomputed in between.
type DeepCache struct {
	Interval int `json:"interval"`
	Branch   int `json:"branch"`
}

// ParseGenerate reads the options JSON, rejecting unknown fields so a
// misspelt option is not silently ignored.
func ParseGenerate(data []byte) (*Generate, error) {
	var g Generate
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("generate options: %w", err)
	}
	return &g, nil
}

// Resolved is a generation's settings with every default filled in.
type Resolved struct {
	Request pipeline.Request
	// Steps and Guidance are the values used (the Request may hold the
	// pipeline's "default" markers).
	Steps    int
	Guidance float64
	// Warnings are settings that do nothing, in people's words.
	Warnings []string
}

// Resolve turns options into a pipeline request for a model of the given
// kind, with `tgate generate`'s defaults: 50 steps and guidance 7.5 (LCM:
// 4 and 8.5; SD-XL: guidance 5; PixArt: 20 and 4.5), T-GATE off, the
// folder's scheduler, the VAE decoder.
// hasTAESD tells whether a TAESD decoder is loaded, hasVAE the VAE.
func Resolve(g *Generate, kind pipeline.Kind, hasVAE, hasTAESD bool) (*Resolved, error) {
	r := &Resolved{}
	req := pipeline.Request{
		Prompt:          g.Prompt,
		GuidanceRescale: g.GuidanceRescale,
		Width:           g.Width,
		Height:          g.Height,
		TimestepSpacing: g.TimestepSpacing,
	}
	if g.NegativePrompt != nil {
		// An explicit "" is encoded (diffusers' negative_prompt=""); an
		// absent one is None, which SD-XL may turn into zeros.
		req.NegativePrompt = *g.NegativePrompt
		req.EncodeEmptyNegativePrompt = *g.NegativePrompt == ""
	}
	if err := resolveModelOptions(g, &req); err != nil {
		return nil, err
	}
	lcm := kind == pipeline.LatentConsistency
	pixart := kind == pipeline.PixArtAlpha || kind == pipeline.PixArtSigma
	r.Steps, r.Guidance = 50, 7.5
	switch {
	case lcm:
		r.Steps, r.Guidance = 4, 8.5
	case pixart:
		r.Steps, r.Guidance = 20, 4.5
	case kind == pipeline.StableDiffusionXL:
		r.Guidance = 5
	}
	if g.Steps != nil {
		if *g.Steps < 1 || *g.Steps > 1000 {
			return nil, fmt.Errorf("steps %d: must be between 1 and 1000", *g.Steps)
		}
		r.Steps = *g.Steps
	}
	if g.Guidance != nil {
		if math.IsNaN(*g.Guidance) || math.IsInf(*g.Guidance, 0) {
			return nil, fmt.Errorf("guidance must be a finite number")
		}
		r.Guidance = *g.Guidance
	}
	req.Steps, req.Guidance = r.Steps, r.Guidance
	if g.GuidanceRescale < 0 || g.GuidanceRescale > 1 {
		return nil, fmt.Errorf("guidanceRescale %g: must be in [0, 1]", g.GuidanceRescale)
	}
	if g.Seed != nil {
		s := *g.Seed
		if s < 0 || s != math.Trunc(s) || s > 1<<53 {
			return nil, fmt.Errorf("seed %v: must be a whole number from 0 to 2^53", s)
		}
		req.Seed = uint64(s)
	}
	if g.Width < 0 || g.Height < 0 || g.Width%8 != 0 || g.Height%8 != 0 {
		return nil, fmt.Errorf("width and height must be multiples of 8 (got %dx%d)", g.Width, g.Height)
	}
	if g.Scheduler != "" {
		n, err := sched.ParseName(g.Scheduler)
		if err != nil {
			return nil, err
		}
		req.Scheduler = n
	}
	switch g.TimestepSpacing {
	case "", "leading", "trailing", "linspace":
	default:
		return nil, fmt.Errorf("timestepSpacing %q: valid values are leading, trailing, linspace", g.TimestepSpacing)
	}
	switch g.Decoder {
	case "", "vae":
		if !hasVAE {
			return nil, fmt.Errorf("decoder \"vae\": the model was loaded without its VAE (load it with decoder \"vae\")")
		}
		req.Decoder = pipeline.DecodeVAE
	case "taesd":
		if !hasTAESD {
			return nil, fmt.Errorf("decoder \"taesd\": no TAESD decoder is loaded (load the model with a taesd source)")
		}
		req.Decoder = pipeline.DecodeTAESD
	case "none":
		req.Decoder = pipeline.DecodeNone
	default:
		return nil, fmt.Errorf("decoder %q: valid values are vae, taesd, none", g.Decoder)
	}
	if g.Strength != nil {
		if !(*g.Strength > 0 && *g.Strength <= 1) {
			return nil, fmt.Errorf("strength %g: must be in (0, 1]", *g.Strength)
		}
		req.Strength = *g.Strength
	}
	if g.PreviewEvery < 0 {
		return nil, fmt.Errorf("previewEvery %d: must not be negative", g.PreviewEvery)
	}
	gc, warn, err := resolveGate(g.TGate, lcm, pixart)
	if err != nil {
		return nil, err
	}
	req.Gate = gc
	r.Warnings = append(r.Warnings, warn...)
	if gc.Mode != gate.Off && !gc.Auto.Enabled() && gc.GateStep >= r.Steps {
		r.Warnings = append(r.Warnings, fmt.Sprintf("T-GATE gate step %d is not before the last of %d steps: cross-attention is never cached, so T-GATE changes nothing", gc.GateStep, r.Steps))
	}
	r.Request = req
	return r, nil
}

// resolveGate fills T-GATE's defaults; parameters given with mode off are
// reported as doing nothing, except gateStep, which with T-GATE off still
// says where the result's peakAfterGateBytes starts counting (so a run
// without T-GATE measures the steps a gated run would have gated).
func resolveGate(t *TGate, lcm, pixart bool) (gate.Config, []string, error) {
	gc := gate.SDDefaults()
	switch {
	case lcm:
		gc = gate.LCMDefaults()
	case pixart:
		gc = pipeline.PixArtGateDefaults()
	}
	gc.Mode = gate.Off
	if t == nil {
		return gc, nil, nil
	}
	mode := t.Mode
	if mode == "" {
		mode = "off"
	}
	m, err := gate.ParseMode(mode)
	if err != nil {
		return gc, nil, err
	}
	gc.Mode = m
	var warn []string
	for _, o := range []struct {
		name string
		v    *int
		dst  *int
	}{{"spInterval", t.SPInterval, &gc.SPInterval},
		{"fiInterval", t.FIInterval, &gc.FIInterval}, {"warmUp", t.WarmUp, &gc.WarmUp}} {
		if o.v == nil {
			continue
		}
		if m == gate.Off {
			warn = append(warn, fmt.Sprintf("tgate.%s is ignored: T-GATE is off (mode v1 or v2 turns it on)", o.name))
			continue
		}
		*o.dst = *o.v
	}
	if t.GateStep != nil && !t.GateStep.Auto {
		gc.GateStep = t.GateStep.N
	}
	switch {
	case t.GateStep != nil && t.GateStep.Auto:
		gc.Auto = gate.Auto{Threshold: gate.DefaultAutoThreshold}
		if t.AutoThreshold != nil {
			gc.Auto.Threshold = *t.AutoThreshold
		}
		if m == gate.Off {
			warn = append(warn, "tgate.gateStep \"auto\" is ignored: T-GATE is off (mode v1 or v2 turns it on)")
		}
	case t.AutoThreshold != nil:
		return gc, nil, fmt.Errorf("tgate.autoThreshold is used only with tgate.gateStep \"auto\"")
	}
	if err := gc.Validate(); err != nil {
		return gc, nil, err
	}
	return gc, warn, nil
}

// GateStep is tgate.gateStep: a step count, or "auto".
type GateStep struct {
	N    int
	Auto bool
}

// UnmarshalJSON reads a whole number or the string "auto".
func (g *GateStep) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		if s != "auto" {
			return fmt.Errorf("tgate.gateStep %q: want a step count or \"auto\"", s)
		}
		g.Auto = true
		return nil
	}
	var f float64
	if err := json.Unmarshal(data, &f); err != nil || f != math.Trunc(f) {
		return fmt.Errorf("tgate.gateStep %s: want a step count or \"auto\"", data)
	}
	g.N = int(f)
	return nil
}
