package pipeline

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"

	"github.com/tgate-web/tgate/tensor"
)

// ToRGBA converts an image tensor [1, 3, H, W] with values in [0, 1] to an
// 8-bit image the way diffusers' numpy_to_pil does:
// (x·255).round() (half to even) as uint8. Values outside [0, 1] are
// clamped first.
func ToRGBA(img *tensor.Host) (*image.NRGBA, error) {
	if img.Shape.Rank() != 4 || img.Shape[0] != 1 || img.Shape[1] != 3 {
		return nil, fmt.Errorf("image tensor has shape %v; want [1,3,H,W]", img.Shape)
	}
	h, w := img.Shape[2], img.Shape[3]
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	plane := h * w
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var px [3]uint8
			for c := 0; c < 3; c++ {
				px[c] = to8(img.Data[c*plane+y*w+x])
			}
			out.SetNRGBA(x, y, color.NRGBA{px[0], px[1], px[2], 255})
		}
	}
	return out, nil
}

func to8(v float32) uint8 {
	if !(v > 0) { // also NaN
		return 0
	}
	if v >= 1 {
		return 255
	}
	return uint8(math.RoundToEven(float64(v * 255)))
}

// WritePNG encodes an image tensor [1, 3, H, W] in [0, 1] as PNG.
func WritePNG(w io.Writer, img *tensor.Host) error {
	rgba, err := ToRGBA(img)
	if err != nil {
		return err
	}
	return png.Encode(w, rgba)
}

// EncodePNG returns the PNG encoding of an image tensor [1, 3, H, W].
func EncodePNG(img *tensor.Host) ([]byte, error) {
	var buf bytes.Buffer
	if err := WritePNG(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
