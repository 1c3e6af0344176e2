package pipeline

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/internal/golden"

	"github.com/tgate-web/tgate/tensor"
)

// TestMethodSettings checks the keys and values editing, DeepCache,
// Adaptive Guidance and PixArt add to a PNG's settings
// (the names web/params.js reads back).
func TestMethodSettings(t *testing.T) {
	got := map[string]string{}
	add := func(k, v string) { got[k] = v }
	p := &Pipeline{Kind: PixArtAlpha}
	req := Request{EditOptions: EditOptions{InitImage: tensor.New(1, 3, 8, 8), Mask: tensor.New(1, 1, 8, 8)},
		DeepCache: DeepCache{Interval: 3, Branch: 1}, AdaptiveGuidance: 0.99,
		PixArtOptions: PixArtOptions{MaxSequenceLength: 300, NoResolutionBinning: true, CleanCaption: true}}
	p.appendMethodSettings(req, add)
	want := map[string]string{"Denoising strength": "1", "DeepCache interval": "3", "DeepCache branch": "1",
		"Adaptive guidance": "0.99", "Max sequence length": "300", "Resolution binning": "false", "Clean caption": "true"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("settings %v, want %v", got, want)
	}

	got = map[string]string{}
	p = &Pipeline{Kind: StableDiffusion}
	p.appendMethodSettings(Request{EditOptions: EditOptions{InitImage: tensor.New(1, 3, 8, 8)}, PixArtOptions: PixArtOptions{CleanCaption: true}}, add)
	if !reflect.DeepEqual(got, map[string]string{"Denoising strength": "0.8"}) {
		t.Errorf("img2img settings %v, want only the default strength 0.8 (PixArt options do not apply)", got)
	}

}

// TestRequestError checks that a request refused before any work is a
// *RequestError (the browser answers it with "bad-request") and that a
// cancelled run is not.
func TestRequestError(t *testing.T) {
	p, err := Load(cpu.New(), golden.Dir(t, "golden", "sd15_tiny_pipeline"), LoadOptions{SkipVAE: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	base := Request{Prompt: "x", Steps: 2, Guidance: 7.5, Width: 32, Height: 32, Decoder: DecodeNone}
	bad := base
	bad.Strength = 0.5 // without an init image
	var re *RequestError
	if _, err := p.Generate(context.Background(), bad); !errors.As(err, &re) {
		t.Errorf("strength without an image: %v (%T), want a *RequestError", err, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Generate(ctx, base); err == nil || errors.As(err, &re) {
		t.Errorf("cancelled run: %v, want an error that is not a *RequestError", err)
	}
	if _, err := p.Generate(context.Background(), base); err != nil {
		t.Errorf("a good request after refused ones: %v", err)
	}
}
