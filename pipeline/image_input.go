package pipeline

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"

	"github.com/tgate-web/tgate/tensor"
)

// ImageFromPNG decodes PNG bytes into an init image tensor [1, 3, H, W]
// with values in [0, 1], as diffusers' VaeImageProcessor.pil_to_numpy does
// after PIL's convert("RGB"): the 8-bit R, G, B values (alpha dropped,
// not composited; 16-bit channels keep their high byte) divided by 255 in
// float32.
func ImageFromPNG(data []byte) (*tensor.Host, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("init image: not a PNG: %w", err)
	}
	return ImageFromImage(img), nil
}

// ImageFromImage is ImageFromPNG for a decoded image (the browser's
// ImageData is an *image.NRGBA).
func ImageFromImage(img image.Image) *tensor.Host {
	r := img.Bounds()
	h, w := r.Dy(), r.Dx()
	out := tensor.New(1, 3, h, w)
	plane := h * w
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			px := rgb8(img, r.Min.X+x, r.Min.Y+y)
			for c := 0; c < 3; c++ {
				out.Data[c*plane+y*w+x] = float32(px[c]) / 255
			}
		}
	}
	return out
}

// MaskFromPNG decodes PNG bytes into a mask tensor [1, 1, H, W] with
// values in [0, 1] (white = repaint): a grayscale PNG's 8-bit values, or
// PIL's convert("L") of a colour one, L = (19595·R + 38470·G + 7471·B +
// 2¹⁵) >> 16 (Pillow's Convert.c L24, the fixed-point form of
// R·299/1000 + G·587/1000 + B·114/1000), divided by 255 in float32.
func MaskFromPNG(data []byte) (*tensor.Host, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("mask: not a PNG: %w", err)
	}
	return MaskFromImage(img), nil
}

// MaskFromImage is MaskFromPNG for a decoded image.
func MaskFromImage(img image.Image) *tensor.Host {
	r := img.Bounds()
	h, w := r.Dy(), r.Dx()
	out := tensor.New(1, 1, h, w)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			out.Data[y*w+x] = float32(luma8(img, r.Min.X+x, r.Min.Y+y)) / 255
		}
	}
	return out
}

// rgb8 returns the 8-bit colour of a pixel without its alpha.
func rgb8(img image.Image, x, y int) [3]uint8 {
	switch m := img.(type) {
	case *image.NRGBA:
		c := m.NRGBAAt(x, y)
		return [3]uint8{c.R, c.G, c.B}
	case *image.RGBA: // the PNG decoder's opaque colour images
		c := m.RGBAAt(x, y)
		return [3]uint8{c.R, c.G, c.B}
	case *image.Gray:
		v := m.GrayAt(x, y).Y
		return [3]uint8{v, v, v}
	}
	c := color.NRGBA64Model.Convert(img.At(x, y)).(color.NRGBA64)
	return [3]uint8{uint8(c.R >> 8), uint8(c.G >> 8), uint8(c.B >> 8)}
}

// luma8 returns a pixel's 8-bit grayscale value as PIL's convert("L").
func luma8(img image.Image, x, y int) uint8 {
	switch m := img.(type) {
	case *image.Gray:
		return m.GrayAt(x, y).Y
	case *image.Gray16:
		return uint8(m.Gray16At(x, y).Y >> 8)
	}
	c := rgb8(img, x, y)
	return uint8((19595*uint32(c[0]) + 38470*uint32(c[1]) + 7471*uint32(c[2]) + 0x8000) >> 16)
}
