package jsapi

import (
	"fmt"

	"github.com/tgate-web/tgate/pipeline"
)

// pair reads a [a, b] option of whole, non-negative numbers (nil or
// empty: unset).
func pair(name string, v []int) ([2]int, error) {
	switch {
	case len(v) == 0:
		return [2]int{}, nil
	case len(v) != 2 || v[0] < 0 || v[1] < 0:
		return [2]int{}, fmt.Errorf("%s %v: want two whole numbers [a, b], neither negative", name, v)
	}
	return [2]int{v[0], v[1]}, nil
}

// resolveModelOptions puts the SD-XL, DeepCache, Adaptive Guidance and
// PixArt options into req (models they do not apply to ignore them).
func resolveModelOptions(g *Generate, req *pipeline.Request) error {
	req.Prompt2, req.NegativePrompt2 = g.Prompt2, g.NegativePrompt2
	for _, o := range []struct {
		name string
		v    []int
		size *pipeline.ImageSize
		crop *pipeline.CropOffset
	}{
		{"originalSize", g.OriginalSize, &req.OriginalSize, nil},
		{"cropsCoordsTopLeft", g.CropsCoordsTopLeft, nil, &req.CropsCoordsTopLeft},
		{"targetSize", g.TargetSize, &req.TargetSize, nil},
		{"negativeOriginalSize", g.NegativeOriginalSize, &req.NegativeOriginalSize, nil},
		{"negativeCropsCoordsTopLeft", g.NegativeCropsCoordsTopLeft, nil, &req.NegativeCropsCoordsTopLeft},
		{"negativeTargetSize", g.NegativeTargetSize, &req.NegativeTargetSize, nil},
	} {
		p, err := pair(o.name, o.v)
		if err != nil {
			return err
		}
		if o.size != nil {
			*o.size = pipeline.ImageSize{Height: p[0], Width: p[1]}
		} else {
			*o.crop = pipeline.CropOffset{Top: p[0], Left: p[1]}
		}
	}
	if d := g.DeepCache; d != nil {
		req.DeepCache = pipeline.DeepCache{Interval: d.Interval, Branch: d.Branch}
		if err := req.DeepCache.Validate(); err != nil {
			return fmt.Errorf("deepcache: %w", err)
		}
	}
	if a := g.AdaptiveGuidance; a < 0 || a > 1 {
		return fmt.Errorf("adaptiveGuidance %g: the cosine-similarity threshold must be in (0, 1] (0 is off)", a)
	}
	req.AdaptiveGuidance = g.AdaptiveGuidance
	if g.MaxSequenceLength < 0 {
		return fmt.Errorf("maxSequenceLength %d: must not be negative (0 is the model's default)", g.MaxSequenceLength)
	}
	req.MaxSequenceLength = g.MaxSequenceLength
	req.NoResolutionBinning = g.ResolutionBinning != nil && !*g.ResolutionBinning
	req.CleanCaption = g.CleanCaption
	return nil
}
