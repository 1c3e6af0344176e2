package jsapi

import (
	"strings"
	"testing"

	"github.com/tgate-web/tgate/pipeline"
)

// TestSetImages checks the RGBA → tensor conversion against values worked
// out by hand: RGB / 255 in planes, the mask's PIL luminance / 255, the
// crop to multiples of 8, and the errors for a wrong byte count, an image
// under 8 pixels, a size mismatch and a mask alone.
func TestSetImages(t *testing.T) {
	// 8×8 images whose first two pixels are set: a red pixel and a grey one
	// with alpha 0 (alpha is dropped); the mask's are pure green, L =
	// (38470·255 + 2¹⁵) >> 16 = 150, and white.
	img := &Pixels{Width: 8, Height: 8, RGBA: make([]byte, 4*64)}
	copy(img.RGBA, []byte{255, 0, 0, 255, 51, 102, 153, 0})
	mask := &Pixels{Width: 8, Height: 8, RGBA: make([]byte, 4*64)}
	copy(mask.RGBA, []byte{0, 255, 0, 255, 255, 255, 255, 255})
	var req pipeline.Request
	if err := SetImages(&req, img, mask); err != nil {
		t.Fatal(err)
	}
	for c, want := range [][2]float32{{1, 51.0 / 255}, {0, 102.0 / 255}, {0, 153.0 / 255}} {
		if got := req.InitImage.Data[c*64 : c*64+2]; got[0] != want[0] || got[1] != want[1] {
			t.Errorf("channel %d starts %v, want %v", c, got, want)
		}
	}
	if got := req.InitImage.Shape; len(got) != 4 || got[1] != 3 || got[2] != 8 || got[3] != 8 {
		t.Errorf("image shape %v, want [1 3 8 8]", got)
	}
	if req.Mask.Data[0] != 150.0/255 || req.Mask.Data[1] != 1 || req.Mask.Data[2] != 0 {
		t.Errorf("mask starts %v, want [150/255 1 0]", req.Mask.Data[:3])
	}

	// A 10×9 image is cropped to 8×8 at the right and bottom.
	big := &Pixels{Width: 10, Height: 9, RGBA: make([]byte, 4*10*9)}
	for i := range big.RGBA {
		big.RGBA[i] = byte(i)
	}
	var rc pipeline.Request
	if err := SetImages(&rc, big, nil); err != nil {
		t.Fatal(err)
	}
	if sh := rc.InitImage.Shape; sh[2] != 8 || sh[3] != 8 {
		t.Fatalf("cropped shape %v, want [1 3 8 8]", sh)
	}
	// Red of pixel (x 7, y 7) is byte 4·(7·10+7).
	if got, want := rc.InitImage.Data[7*8+7], float32(byte((4*(7*10+7))%256))/255; got != want {
		t.Errorf("cropped pixel (7, 7) red %g, want %g", got, want)
	}

	for _, c := range []struct {
		img, mask *Pixels
		err       string
	}{
		{&Pixels{Width: 2, Height: 2, RGBA: make([]byte, 12)}, nil, "12 bytes for a 2x2"},
		{&Pixels{Width: 2, Height: 2, RGBA: make([]byte, 16)}, nil, "smaller than 8"},
		{img, &Pixels{Width: 16, Height: 8, RGBA: make([]byte, 4*128)}, "the same size"},
		{nil, mask, "needs an initImage"},
	} {
		var r pipeline.Request
		if err := SetImages(&r, c.img, c.mask); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("SetImages = %v, want an error containing %q", err, c.err)
		}
	}
}
