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
	Mode       string `json:"mode"`
	GateStep   *int   `json:"gateStep"`
	SPInterval *int   `json:"spInterval"`
	FIInterval *int   `json:"fiInterval"`
	WarmUp     *int   `json:"warmUp"`
}

// Generate is the options object of engine.generate (without latents,
// which travel as a Float32Array, and onProgress).
type Generate struct {
	Prompt          string   `json:"prompt"`
	NegativePrompt  string   `json:"negativePrompt"`
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
// 4 and 8.5), T-GATE off, the folder's scheduler, the VAE decoder.
// hasTAESD tells whether a TAESD decoder is loaded, hasVAE the VAE.
func Resolve(g *Generate, kind pipeline.Kind, hasVAE, hasTAESD bool) (*Resolved, error) {
	r := &Resolved{}
	req := pipeline.Request{
		Prompt:          g.Prompt,
		NegativePrompt:  g.NegativePrompt,
		GuidanceRescale: g.GuidanceRescale,
		Width:           g.Width,
		Height:          g.Height,
		TimestepSpacing: g.TimestepSpacing,
	}
	lcm := kind == pipeline.LatentConsistency
	r.Steps, r.Guidance = 50, 7.5
	if lcm {
		r.Steps, r.Guidance = 4, 8.5
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
	if g.PreviewEvery < 0 {
		return nil, fmt.Errorf("previewEvery %d: must not be negative", g.PreviewEvery)
	}
	gc, warn, err := resolveGate(g.TGate, lcm)
	if err != nil {
		return nil, err
	}
	req.Gate = gc
	r.Warnings = append(r.Warnings, warn...)
	if gc.Mode != gate.Off && gc.GateStep >= r.Steps {
		r.Warnings = append(r.Warnings, fmt.Sprintf("T-GATE gate step %d is not before the last of %d steps: cross-attention is never cached, so T-GATE changes nothing", gc.GateStep, r.Steps))
	}
	r.Request = req
	return r, nil
}

// resolveGate fills T-GATE's defaults; parameters given with mode off are
// reported as doing nothing, except gateStep, which with T-GATE off still
// says where the result's peakAfterGateBytes starts counting (so a run
// without T-GATE measures the steps a gated run would have gated).
func resolveGate(t *TGate, lcm bool) (gate.Config, []string, error) {
	gc := gate.SDDefaults()
	if lcm {
		gc = gate.LCMDefaults()
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
	}{{"gateStep", t.GateStep, &gc.GateStep}, {"spInterval", t.SPInterval, &gc.SPInterval},
		{"fiInterval", t.FIInterval, &gc.FIInterval}, {"warmUp", t.WarmUp, &gc.WarmUp}} {
		if o.v == nil {
			continue
		}
		if m == gate.Off && o.name != "gateStep" {
			warn = append(warn, fmt.Sprintf("tgate.%s is ignored: T-GATE is off (mode v1 or v2 turns it on)", o.name))
			continue
		}
		*o.dst = *o.v
	}
	if err := gc.Validate(); err != nil {
		return gc, nil, err
	}
	return gc, warn, nil
}
