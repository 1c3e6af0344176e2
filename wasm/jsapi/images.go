package jsapi

import (
	"fmt"
	"image"

	"github.com/tgate-web/tgate/pipeline"
)

// Pixels is an image as web/tgate.js sends it: an ImageData's bytes (RGBA,
// row-major, not premultiplied) and its size.
type Pixels struct {
	Width, Height int
	RGBA          []byte
}

// image checks the byte count and views the pixels as an *image.NRGBA,
// cropped at the right and bottom to whole multiples of 8 (the size the
// page rounds its width and height to; diffusers resizes instead).
func (p *Pixels) image(what string) (image.Image, error) {
	if p.Width <= 0 || p.Height <= 0 || len(p.RGBA) != 4*p.Width*p.Height {
		return nil, fmt.Errorf("%s: %d bytes for a %dx%d RGBA image (want %d)", what, len(p.RGBA), p.Width, p.Height, 4*p.Width*p.Height)
	}
	w, h := p.Width&^7, p.Height&^7
	if w == 0 || h == 0 {
		return nil, fmt.Errorf("%s: %dx%d is smaller than 8 pixels on a side", what, p.Width, p.Height)
	}
	img := &image.NRGBA{Pix: p.RGBA, Stride: 4 * p.Width, Rect: image.Rect(0, 0, p.Width, p.Height)}
	return img.SubImage(image.Rect(0, 0, w, h)), nil
}

// SetImages puts the init image and the inpainting mask (either may be
// nil) into the request: the image's RGB values and the mask's luminance
// (PIL's convert("L")), each divided by 255, as the CLI reads PNG files,
// both cropped to multiples of 8. The mask needs an image of its size.
func SetImages(req *pipeline.Request, initImage, mask *Pixels) error {
	if initImage == nil {
		if mask != nil {
			return fmt.Errorf("mask: inpainting needs an initImage to repaint")
		}
		return nil
	}
	img, err := initImage.image("initImage")
	if err != nil {
		return err
	}
	req.InitImage = pipeline.ImageFromImage(img)
	if mask == nil {
		return nil
	}
	if mask.Width != initImage.Width || mask.Height != initImage.Height {
		return fmt.Errorf("mask: %dx%d, but the initImage is %dx%d (they must be the same size)", mask.Width, mask.Height, initImage.Width, initImage.Height)
	}
	m, err := mask.image("mask")
	if err != nil {
		return err
	}
	req.Mask = pipeline.MaskFromImage(m)
	return nil
}
