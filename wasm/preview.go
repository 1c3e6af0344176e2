//go:build js && wasm

package main

import (
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/tensor"
)

// latentRGB are linear factors from SD's 4 latent channels to RGB, roughly
// in [−1, 1] (ComfyUI comfy/latent_formats.py, SD15.latent_rgb_factors;
// numeric constants only): rgb[r] = Σ_c latent[c]·latentRGB[c][r].
var latentRGB = [4][3]float32{
	{0.3512, 0.2297, 0.3227},
	{0.3250, 0.4974, 0.2350},
	{-0.2829, 0.1762, 0.2721},
	{-0.2120, -0.2616, -0.7177},
}

// preview makes a step's preview PNG from its denoised estimate (or, when
// the scheduler forms none, its latents): with TAESD when it is loaded,
// else with the linear latent→RGB factors at latent resolution. It returns
// nil when the latents have other than 4 channels and no TAESD is loaded.
func (e *engine) preview(pr pipeline.Progress) ([]byte, error) {
	t := pr.Denoised
	if t == nil {
		t = pr.Latents
	}
	if e.p.TAESD != nil {
		img, err := e.p.Decode(t, pipeline.DecodeTAESD)
		if err != nil {
			return nil, err
		}
		return pipeline.EncodePNG(img)
	}
	if t.Shape()[1] != 4 {
		return nil, nil
	}
	lat, err := e.b.ReadBack(t)
	if err != nil {
		return nil, err
	}
	return pipeline.EncodePNG(linearPreview(lat))
}

// linearPreview maps latents [1, 4, h, w] to an image [1, 3, h, w] in
// [0, 1] with latentRGB.
func linearPreview(lat *tensor.Host) *tensor.Host {
	h, w := lat.Shape[2], lat.Shape[3]
	plane := h * w
	img := tensor.New(1, 3, h, w)
	for i := 0; i < plane; i++ {
		for r := 0; r < 3; r++ {
			var v float32
			for c := 0; c < 4; c++ {
				v += lat.Data[c*plane+i] * latentRGB[c][r]
			}
			img.Data[r*plane+i] = min(max((v+1)/2, 0), 1)
		}
	}
	return img
}
