package card

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// red is a w×h image of one color.
func solid(w, h int, c color.Color) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < w*h; i++ {
		img.Set(i%w, i/w, c)
	}
	return img
}

var text = Text{
	Prompt: "a photo of an astronaut riding a horse on mars, highly detailed, golden hour, 35mm film, " +
		"dramatic lighting, very long prompt that goes on and on to test the wrapping of lines on the card " +
		strings.Repeat("and more words ", 20),
	Lines: []string{"25 steps · DDIM · CFG 7.5 · seed 42", "512×512 · tiny-sd", "T-GATE v2 · gate step 10 · SP interval 5"},
}

func TestCardIs1200x630AndDecodes(t *testing.T) {
	for _, size := range [][2]int{{512, 512}, {768, 512}, {64, 1024}, {1, 1}} {
		data, err := Encode(solid(size[0], size[1], color.NRGBA{255, 0, 0, 255}), text)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%v: the card does not decode: %v", size, err)
		}
		if b := img.Bounds(); b.Dx() != Width || b.Dy() != Height {
			t.Fatalf("%v: card is %v", size, b)
		}
		// The image is in the left square, centred: its middle is red.
		r, g, b, _ := img.At(margin+imageBox/2, margin+imageBox/2).RGBA()
		if r>>8 < 250 || g>>8 > 5 || b>>8 > 5 {
			t.Errorf("%v: centre of the image box is %d,%d,%d", size, r>>8, g>>8, b>>8)
		}
		// Text was drawn on the right.
		if !hasInk(img, image.Rect(textLeft, margin, Width-margin, Height-margin)) {
			t.Errorf("%v: no text on the right", size)
		}
		if size == [2]int{512, 512} && os.Getenv("CARD_OUT") != "" {
			os.WriteFile(filepath.Join(os.Getenv("CARD_OUT"), "card.png"), data, 0o644)
		}
	}
}

// hasInk reports whether r holds pixels lighter than the background.
func hasInk(img image.Image, r image.Rectangle) bool {
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			if v, _, _, _ := img.At(x, y).RGBA(); v>>8 > 0x60 {
				return true
			}
		}
	}
	return false
}

func TestRenderIsDeterministic(t *testing.T) {
	img := solid(40, 30, color.NRGBA{10, 200, 30, 255})
	a, _ := Encode(img, text)
	b, _ := Encode(img, text)
	if !bytes.Equal(a, b) {
		t.Error("two renders differ")
	}
	c, _ := Encode(img, Text{})
	if bytes.Equal(a, c) {
		t.Error("the text changes nothing")
	}
	if _, err := Encode(nil, Text{Prompt: "no image"}); err != nil {
		t.Errorf("no image: %v", err)
	}
}

func TestFit(t *testing.T) {
	box := image.Rect(30, 30, 600, 600)
	cases := []struct {
		src, want image.Rectangle
	}{
		{image.Rect(0, 0, 512, 512), box},
		{image.Rect(0, 0, 1000, 500), image.Rect(30, 172, 600, 457)},
		{image.Rect(0, 0, 10, 1000), image.Rect(312, 30, 317, 600)},
		{image.Rect(0, 0, 10000, 1), image.Rect(30, 314, 600, 315)},
	}
	for _, tc := range cases {
		if got := fit(tc.src, box); got != tc.want {
			t.Errorf("fit(%v) = %v, want %v", tc.src, got, tc.want)
		}
	}
}

func TestWrap(t *testing.T) {
	f, _ := opentype.Parse(goregular.TTF)
	face, _ := opentype.NewFace(f, &opentype.FaceOptions{Size: 24, DPI: 72})
	lines := wrap(face, text.Prompt, 300, 4)
	if len(lines) != 4 || !strings.HasSuffix(lines[3], "…") {
		t.Errorf("lines %q", lines)
	}
	for _, l := range lines {
		if w := measure(face, l); w > 300 {
			t.Errorf("line %q is %dpx wide", l, w)
		}
	}
	long := wrap(face, strings.Repeat("W", 200), 300, 10)
	if len(long) < 2 {
		t.Errorf("an over-wide word was not cut: %q", long)
	}
	for _, l := range long {
		if w := measure(face, l); w > 300 {
			t.Errorf("cut line %q is %dpx wide", l, w)
		}
	}
	if got := wrap(face, "short", 300, 3); len(got) != 1 || got[0] != "short" {
		t.Errorf("short text: %q", got)
	}
}

func measure(face interface {
	GlyphAdvance(rune) (fixed.Int26_6, bool)
}, s string) int {
	var w fixed.Int26_6
	for _, r := range s {
		a, _ := face.GlyphAdvance(r)
		w += a
	}
	return w.Ceil()
}
