package jsapi

import (
	"strings"
	"testing"

	"github.com/tgate-web/tgate/pipeline"
)

// TestSetImages checks the RGBA → tensor conversion against values worked
// out by hand: RGB / 255 in planes, the mask's PIL luminance / 255, and
// the errors for a wrong byte count, a size mismatch and a mask alone.
func TestSetImages(t *testing.T) {
	// 2×1 image: a red pixel and a grey one with alpha 0 (alpha is dropped).
	img := &Pixels{Width: 2, Height: 1, RGBA: []byte{255, 0, 0, 255, 51, 102, 153, 0}}
	// Mask: pure green → L = (38470·255 + 2¹⁵) >> 16 = 150; white → 255.
	mask := &Pixels{Width: 2, Height: 1, RGBA: []byte{0, 255, 0, 255, 255, 255, 255, 255}}
	var req pipeline.Request
	if err := SetImages(&req, img, mask); err != nil {
		t.Fatal(err)
	}
	wantImg := []float32{1, 51.0 / 255, 0, 102.0 / 255, 0, 153.0 / 255}
	for i, w := range wantImg {
		if req.InitImage.Data[i] != w {
			t.Errorf("image value %d = %g, want %g", i, req.InitImage.Data[i], w)
		}
	}
	if got := req.InitImage.Shape; len(got) != 4 || got[1] != 3 || got[2] != 1 || got[3] != 2 {
		t.Errorf("image shape %v, want [1 3 1 2]", got)
	}
	if req.Mask.Data[0] != 150.0/255 || req.Mask.Data[1] != 1 {
		t.Errorf("mask %v, want [150/255 1]", req.Mask.Data)
	}

	for _, c := range []struct {
		img, mask *Pixels
		err       string
	}{
		{&Pixels{Width: 2, Height: 2, RGBA: make([]byte, 12)}, nil, "12 bytes for a 2x2"},
		{img, &Pixels{Width: 1, Height: 1, RGBA: make([]byte, 4)}, "the same size"},
		{nil, mask, "needs an initImage"},
	} {
		var r pipeline.Request
		if err := SetImages(&r, c.img, c.mask); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("SetImages = %v, want an error containing %q", err, c.err)
		}
	}
}
