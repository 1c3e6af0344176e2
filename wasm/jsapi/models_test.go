package jsapi

import (
	"strings"
	"testing"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/pipeline"
)

// TestResolveModelOptions checks that the SD-XL, DeepCache, Adaptive
// Guidance, PixArt and editing options reach the request as the CLI's
// flags do, that an explicit "" negative prompt differs from an absent
// one, that PixArt takes its own defaults, and that bad values are refused
// with the option's name.
func TestResolveModelOptions(t *testing.T) {
	parse := func(js string) *Generate {
		t.Helper()
		g, err := ParseGenerate([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	r, err := Resolve(parse(`{"prompt": "a", "prompt2": "b", "negativePrompt2": "c", "originalSize": [1024, 768],
		"cropsCoordsTopLeft": [8, 16], "targetSize": [512, 384], "negativeOriginalSize": [256, 256],
		"negativeTargetSize": [128, 128], "negativeCropsCoordsTopLeft": [0, 4],
		"deepcache": {"interval": 3, "branch": 1}, "adaptiveGuidance": 0.99, "strength": 0.5,
		"maxSequenceLength": 300, "resolutionBinning": false, "cleanCaption": true}`),
		pipeline.StableDiffusionXL, true, false)
	if err != nil {
		t.Fatal(err)
	}
	q := r.Request
	want := pipeline.SDXLOptions{Prompt2: "b", NegativePrompt2: "c",
		OriginalSize: pipeline.ImageSize{Height: 1024, Width: 768}, CropsCoordsTopLeft: pipeline.CropOffset{Top: 8, Left: 16},
		TargetSize: pipeline.ImageSize{Height: 512, Width: 384}, NegativeOriginalSize: pipeline.ImageSize{Height: 256, Width: 256},
		NegativeCropsCoordsTopLeft: pipeline.CropOffset{Top: 0, Left: 4}, NegativeTargetSize: pipeline.ImageSize{Height: 128, Width: 128}}
	if q.SDXLOptions != want {
		t.Errorf("SD-XL options %+v, want %+v", q.SDXLOptions, want)
	}
	if q.DeepCache != (pipeline.DeepCache{Interval: 3, Branch: 1}) || q.AdaptiveGuidance != 0.99 || q.Strength != 0.5 {
		t.Errorf("deepcache %+v, adaptive guidance %g, strength %g", q.DeepCache, q.AdaptiveGuidance, q.Strength)
	}
	if q.MaxSequenceLength != 300 || !q.NoResolutionBinning || !q.CleanCaption {
		t.Errorf("PixArt options %+v", q.PixArtOptions)
	}
	if r.Guidance != 5 || r.Steps != 50 {
		t.Errorf("SD-XL defaults: steps %d, guidance %g, want 50 and 5", r.Steps, r.Guidance)
	}
	if q.EncodeEmptyNegativePrompt {
		t.Error("an absent negativePrompt was taken as \"\"")
	}

	r, err = Resolve(parse(`{"prompt": "a", "negativePrompt": ""}`), pipeline.PixArtAlpha, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Request.EncodeEmptyNegativePrompt {
		t.Error("negativePrompt \"\" is not encoded as the empty string")
	}
	if r.Steps != 20 || r.Guidance != 4.5 || r.Request.Gate != (func() pipeline.Request {
		g := pipeline.PixArtGateDefaults()
		g.Mode = 0
		return pipeline.Request{Gate: g}
	}()).Gate {
		t.Errorf("PixArt defaults: steps %d, guidance %g, gate %+v", r.Steps, r.Guidance, r.Request.Gate)
	}

	r, err = Resolve(parse(`{"tgate": {"mode": "v2", "gateStep": "auto", "autoThreshold": 0.1}}`), pipeline.StableDiffusion, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if a := r.Request.Gate.Auto; a.Threshold != 0.1 || !a.Enabled() || len(r.Warnings) != 0 {
		t.Errorf("auto gate %+v, warnings %q", a, r.Warnings)
	}
	r, err = Resolve(parse(`{"tgate": {"mode": "v1", "gateStep": "auto"}}`), pipeline.StableDiffusion, true, false)
	if err != nil || r.Request.Gate.Auto.Threshold != gate.DefaultAutoThreshold {
		t.Errorf("auto gate without a threshold: %v, %+v", err, r.Request.Gate.Auto)
	}

	for js, msg := range map[string]string{
		`{"tgate": {"mode": "v2", "autoThreshold": 0.1}}`: "autoThreshold",
		`{"originalSize": [1024]}`:                        "originalSize",
		`{"cropsCoordsTopLeft": [-1, 0]}`:                 "cropsCoordsTopLeft",
		`{"adaptiveGuidance": 1.5}`:                       "adaptiveGuidance",
		`{"maxSequenceLength": -1}`:                       "maxSequenceLength",
		`{"strength": 0}`:                                 "strength",
		`{"deepcache": {"interval": -2}}`:                 "deepcache",
		`{"tgate": {"gateStep": "later"}}`:                "gateStep",
	} {
		g, err := ParseGenerate([]byte(js))
		if err == nil {
			_, err = Resolve(g, pipeline.StableDiffusion, true, false)
		}
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error %v, want one naming %s", js, err, msg)
		}
	}
}
