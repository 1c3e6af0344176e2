// Package card renders the 1200×630 preview card of a shared image, the
// picture link previews (Open Graph, Twitter) show: the image scaled into
// the left square with golang.org/x/image/draw's Catmull-Rom filter, and
// on the right the site's name, the prompt and the settings (T-GATE's
// included) set in the Go fonts. Rendering is deterministic: the same
// image and text give the same pixels.
package card

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"

	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// Width and Height are the card's size: the 1.91:1 image link previews
// use.
const (
	Width  = 1200
	Height = 630
)

// Text is what the card says.
type Text struct {
	// Prompt is the image's prompt ("" for none).
	Prompt string
	// Lines are the settings, one per line; a line starting with
	// "T-GATE" is drawn in the accent color.
	Lines []string
}

// Colors of the card.
var (
	background = color.RGBA{0x11, 0x13, 0x18, 0xff}
	panel      = color.RGBA{0x1b, 0x1e, 0x26, 0xff}
	textColor  = color.RGBA{0xf0, 0xf1, 0xf5, 0xff}
	muted      = color.RGBA{0xa8, 0xad, 0xbb, 0xff}
	accent     = color.RGBA{0x7d, 0xb4, 0xff, 0xff}
)

// Layout, in pixels.
const (
	margin    = 30
	imageBox  = Height - 2*margin // the image's square
	textLeft  = Height + 10
	textWidth = Width - textLeft - margin
)

// faces holds the font faces the card uses.
type faces struct {
	brand, prompt, lines, footer font.Face
}

// newFaces parses the Go fonts and makes the faces at the card's sizes.
func newFaces() (*faces, error) {
	regular, err := opentype.Parse(goregular.TTF)
	if err != nil {
		return nil, err
	}
	bold, err := opentype.Parse(gobold.TTF)
	if err != nil {
		return nil, err
	}
	face := func(f *opentype.Font, size float64) (font.Face, error) {
		return opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	}
	var fs faces
	for _, x := range []struct {
		dst  *font.Face
		f    *opentype.Font
		size float64
	}{{&fs.brand, bold, 30}, {&fs.prompt, regular, 36}, {&fs.lines, regular, 24}, {&fs.footer, regular, 20}} {
		if *x.dst, err = face(x.f, x.size); err != nil {
			return nil, err
		}
	}
	return &fs, nil
}

// Render draws the card of img with its text.
func Render(img image.Image, t Text) (*image.RGBA, error) {
	fs, err := newFaces()
	if err != nil {
		return nil, fmt.Errorf("card: fonts: %v", err)
	}
	dst := image.NewRGBA(image.Rect(0, 0, Width, Height))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(background), image.Point{}, draw.Src)

	// The image, scaled to fit the left square with its aspect kept,
	// centred on a panel.
	box := image.Rect(margin, margin, margin+imageBox, margin+imageBox)
	draw.Draw(dst, box, image.NewUniform(panel), image.Point{}, draw.Src)
	if img != nil && !img.Bounds().Empty() {
		draw.CatmullRom.Scale(dst, fit(img.Bounds(), box), img, img.Bounds(), draw.Over, nil)
	}

	d := &font.Drawer{Dst: dst, Src: image.NewUniform(accent), Face: fs.brand}
	y := margin + 40
	d.Dot = fixed.P(textLeft, y)
	d.DrawString("tgate-web")

	y += 30
	if t.Prompt != "" {
		lines := wrap(fs.prompt, strings.Join(strings.Fields(t.Prompt), " "), textWidth, 7)
		d.Face, d.Src = fs.prompt, image.NewUniform(textColor)
		for _, l := range lines {
			y += 44
			d.Dot = fixed.P(textLeft, y)
			d.DrawString(l)
		}
		y += 22
	}

	d.Face = fs.lines
	for _, line := range t.Lines {
		d.Src = image.NewUniform(muted)
		if strings.HasPrefix(line, "T-GATE") {
			d.Src = image.NewUniform(accent)
		}
		for _, l := range wrap(fs.lines, line, textWidth, 2) {
			if y+34 > Height-margin-40 {
				break
			}
			y += 34
			d.Dot = fixed.P(textLeft, y)
			d.DrawString(l)
		}
	}

	d.Face, d.Src = fs.footer, image.NewUniform(muted)
	d.Dot = fixed.P(textLeft, Height-margin-6)
	d.DrawString("Text to image in the browser · WebGPU · T-GATE")
	return dst, nil
}

// fit returns the largest rectangle with src's aspect ratio that fits in
// box, centred in it.
func fit(src, box image.Rectangle) image.Rectangle {
	sw, sh := src.Dx(), src.Dy()
	bw, bh := box.Dx(), box.Dy()
	w, h := bw, sh*bw/sw
	if h > bh {
		w, h = sw*bh/sh, bh
	}
	w, h = max(w, 1), max(h, 1)
	x0 := box.Min.X + (bw-w)/2
	y0 := box.Min.Y + (bh-h)/2
	return image.Rect(x0, y0, x0+w, y0+h)
}

// wrap breaks s into lines no wider than width pixels in face, at spaces
// where it can and inside words that alone are too wide; past maxLines
// the last line ends in "…".
func wrap(face font.Face, s string, width, maxLines int) []string {
	px := fixed.I(width)
	fits := func(x string) bool { return font.MeasureString(face, x) <= px }
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		next := word
		if cur != "" {
			next = cur + " " + word
		}
		if fits(next) {
			cur = next
			continue
		}
		if cur != "" {
			lines = append(lines, cur)
		}
		// A word wider than the line is cut where it must be.
		cur = word
		for !fits(cur) {
			r := []rune(cur)
			n := len(r) - 1
			for n > 1 && !fits(string(r[:n])) {
				n--
			}
			lines = append(lines, string(r[:n]))
			cur = string(r[n:])
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	if len(lines) > maxLines {
		// Drop whole words from the last line until the ellipsis fits,
		// then characters if one word alone is too wide.
		words := strings.Fields(lines[maxLines-1])
		for len(words) > 1 && !fits(strings.Join(words, " ")+"…") {
			words = words[:len(words)-1]
		}
		last := []rune(strings.Join(words, " "))
		for len(last) > 0 && !fits(string(last)+"…") {
			last = last[:len(last)-1]
		}
		lines = append(lines[:maxLines-1], strings.TrimSpace(string(last))+"…")
	}
	return lines
}

// Encode renders the card and returns it as PNG bytes.
func Encode(img image.Image, t Text) ([]byte, error) {
	c, err := Render(img, t)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
