package pipeline

import (
	"fmt"
	"math"
	"strconv"

	"github.com/tgate-web/tgate/tensor"
)

// aspectBin is one entry of diffusers' ASPECT_RATIO_*_BIN tables: the key
// as written (a height/width ratio) and the size generated for it.
type aspectBin struct {
	ratio         string
	height, width int
}

// aspectRatio1024Bin is ASPECT_RATIO_1024_BIN of diffusers v0.30.3
// pipeline_pixart_alpha.py, in its key order. ASPECT_RATIO_512_BIN and
// ASPECT_RATIO_256_BIN are the same keys with every size halved and
// quartered (binsFor).
var aspectRatio1024Bin = []aspectBin{
	{"0.25", 512, 2048}, {"0.28", 512, 1856}, {"0.32", 576, 1792}, {"0.33", 576, 1728}, {"0.35", 576, 1664},
	{"0.4", 640, 1600}, {"0.42", 640, 1536}, {"0.48", 704, 1472}, {"0.5", 704, 1408}, {"0.52", 704, 1344},
	{"0.57", 768, 1344}, {"0.6", 768, 1280}, {"0.68", 832, 1216}, {"0.72", 832, 1152}, {"0.78", 896, 1152},
	{"0.82", 896, 1088}, {"0.88", 960, 1088}, {"0.94", 960, 1024}, {"1.0", 1024, 1024}, {"1.07", 1024, 960},
	{"1.13", 1088, 960}, {"1.21", 1088, 896}, {"1.29", 1152, 896}, {"1.38", 1152, 832}, {"1.46", 1216, 832},
	{"1.67", 1280, 768}, {"1.75", 1344, 768}, {"2.0", 1408, 704}, {"2.09", 1472, 704}, {"2.4", 1536, 640},
	{"2.5", 1600, 640}, {"3.0", 1728, 576}, {"4.0", 2048, 512},
}

// aspectRatio2048Bin is ASPECT_RATIO_2048_BIN of pipeline_pixart_sigma.py
// (PixArt-Σ 2K, transformer sample_size 256).
var aspectRatio2048Bin = []aspectBin{
	{"0.25", 1024, 4096}, {"0.26", 1024, 3968}, {"0.27", 1024, 3840}, {"0.28", 1024, 3712}, {"0.32", 1152, 3584},
	{"0.33", 1152, 3456}, {"0.35", 1152, 3328}, {"0.4", 1280, 3200}, {"0.42", 1280, 3072}, {"0.48", 1408, 2944},
	{"0.5", 1408, 2816}, {"0.52", 1408, 2688}, {"0.57", 1536, 2688}, {"0.6", 1536, 2560}, {"0.68", 1664, 2432},
	{"0.72", 1664, 2304}, {"0.78", 1792, 2304}, {"0.82", 1792, 2176}, {"0.88", 1920, 2176}, {"0.94", 1920, 2048},
	{"1.0", 2048, 2048}, {"1.07", 2048, 1920}, {"1.13", 2176, 1920}, {"1.21", 2176, 1792}, {"1.29", 2304, 1792},
	{"1.38", 2304, 1664}, {"1.46", 2432, 1664}, {"1.67", 2560, 1536}, {"1.75", 2688, 1536}, {"2.0", 2816, 1408},
	{"2.09", 2944, 1408}, {"2.4", 3072, 1280}, {"2.5", 3200, 1280}, {"2.89", 3328, 1152}, {"3.0", 3456, 1152},
	{"3.11", 3584, 1152}, {"3.62", 3712, 1024}, {"3.75", 3840, 1024}, {"3.88", 3968, 1024}, {"4.0", 4096, 1024},
}

// binsFor returns the aspect-ratio table the PixArt pipelines use for a
// transformer sample_size: 128 → ASPECT_RATIO_1024_BIN, 64 → 512, 32 →
// 256, and for PixArt-Σ also 256 → 2048. Other sizes have none (diffusers
// raises "Invalid sample size").
func binsFor(kind Kind, sampleSize int) ([]aspectBin, error) {
	div := 0
	switch sampleSize {
	case 256:
		if kind == PixArtSigma {
			return aspectRatio2048Bin, nil
		}
	case 128:
		div = 1
	case 64:
		div = 2
	case 32:
		div = 4
	}
	if div == 0 {
		return nil, fmt.Errorf("pipeline: resolution binning has no aspect-ratio table for transformer sample_size %d (%s knows 32, 64, 128%s); turn binning off (NoResolutionBinning)",
			sampleSize, kind, map[bool]string{true: ", 256", false: ""}[kind == PixArtSigma])
	}
	out := make([]aspectBin, len(aspectRatio1024Bin))
	for i, e := range aspectRatio1024Bin {
		out[i] = aspectBin{e.ratio, e.height / div, e.width / div}
	}
	return out, nil
}

// classifyBin is VaeImageProcessor.classify_height_width_bin (diffusers
// image_processor.py): the entry whose ratio key is closest to
// height/width, the first one in table order on a tie.
func classifyBin(bins []aspectBin, height, width int) (int, int) {
	ar := float64(height) / float64(width)
	best, bestD := 0, math.Inf(1)
	for i, e := range bins {
		r, _ := strconv.ParseFloat(e.ratio, 64)
		if d := math.Abs(r - ar); d < bestD {
			best, bestD = i, d
		}
	}
	return bins[best].height, bins[best].width
}

// resizeAndCrop is PixArtImageProcessor.resize_and_crop_tensor: when img
// [1, C, h, w] is not height×width, it is resized by the factor
// max(height/h, width/w) (sizes truncated to integers) with bilinear
// interpolation (F.interpolate, align_corners False, no antialiasing) and
// centre-cropped to height×width.
func resizeAndCrop(img *tensor.Host, height, width int) *tensor.Host {
	c, h, w := img.Shape[1], img.Shape[2], img.Shape[3]
	if h == height && w == width {
		return img
	}
	ratio := math.Max(float64(height)/float64(h), float64(width)/float64(w))
	rw, rh := int(float64(w)*ratio), int(float64(h)*ratio)
	resized := resizeBilinear(img, rh, rw)
	x0, y0 := (rw-width)/2, (rh-height)/2
	out := tensor.New(1, c, height, width)
	for ch := 0; ch < c; ch++ {
		for y := 0; y < height; y++ {
			src := resized.Data[(ch*rh+y0+y)*rw+x0:][:width]
			copy(out.Data[(ch*height+y)*width:], src)
		}
	}
	return out
}

// resizeBilinear is PyTorch's upsample_bilinear2d with align_corners False
// for [1, C, h, w] → [1, C, oh, ow]: source index max((d + 0.5)·in/out −
// 0.5, 0), its floor and the next index (clamped), weighted linearly, in
// float32 as PyTorch's CPU kernel computes it.
func resizeBilinear(img *tensor.Host, oh, ow int) *tensor.Host {
	c, h, w := img.Shape[1], img.Shape[2], img.Shape[3]
	type tap struct {
		i0, i1 int
		l0, l1 float32
	}
	taps := func(in, out int) []tap {
		scale := float32(in) / float32(out)
		ts := make([]tap, out)
		for d := range ts {
			src := max(scale*(float32(d)+0.5)-0.5, 0)
			i0 := int(src)
			i1 := i0
			if i0 < in-1 {
				i1 = i0 + 1
			}
			l1 := src - float32(i0)
			ts[d] = tap{i0, i1, 1 - l1, l1}
		}
		return ts
	}
	ty, tx := taps(h, oh), taps(w, ow)
	out := tensor.New(1, c, oh, ow)
	for ch := 0; ch < c; ch++ {
		plane := img.Data[ch*h*w:][:h*w]
		for y, a := range ty {
			r0, r1 := plane[a.i0*w:][:w], plane[a.i1*w:][:w]
			dst := out.Data[(ch*oh+y)*ow:][:ow]
			for x, bt := range tx {
				dst[x] = a.l0*(bt.l0*r0[bt.i0]+bt.l1*r0[bt.i1]) + a.l1*(bt.l0*r1[bt.i0]+bt.l1*r1[bt.i1])
			}
		}
	}
	return out
}

// PixArtGenerationSize returns the size a PixArt request generates at: the
// aspect-ratio bin closest to its Height×Width (0 takes the default size)
// with resolution binning, else that size itself. The image is resized
// back to the requested size after decoding; initial latents given in
// Request.Latents have the generated size's shape.
func (p *Pipeline) PixArtGenerationSize(req Request) (height, width int, err error) {
	if p.pixart == nil {
		return 0, 0, fmt.Errorf("pipeline: %s is not a PixArt pipeline", p.Kind)
	}
	_, _, height, width, err = p.pixartSize(req)
	return height, width, err
}

// pixartLatentShape is LatentShape for PixArt: the latents of a
// height×width generation (no binning applied; see PixArtGenerationSize).
func (p *Pipeline) pixartLatentShape(height, width int) (tensor.Shape, error) {
	req := Request{Width: width, Height: height, PixArtOptions: PixArtOptions{NoResolutionBinning: true}}
	_, _, h, w, err := p.pixartSize(req)
	if err != nil {
		return nil, err
	}
	f := p.VAEScaleFactor()
	return tensor.Shape{1, p.pixart.Transformer.Config.InChannels, h / f, w / f}, nil
}
