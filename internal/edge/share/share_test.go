package share

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/pnginfo"
)

// testPNG encodes a w×h gradient, with settings text when params is set.
func testPNG(t testing.TB, w, h int, params string) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x * 255 / max(w-1, 1)), uint8(y * 255 / max(h-1, 1)), 90, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if params == "" {
		return b.Bytes()
	}
	out, err := pnginfo.Encode(b.Bytes(), pnginfo.Key, params)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// DeclaredPNG returns a PNG signature and a valid IHDR chunk declaring
// w×h 8-bit RGBA pixels, followed by an empty IEND: a header that lies
// about a huge image.
func declaredPNG(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // bit depth, RGBA
	var b bytes.Buffer
	b.WriteString(pngMagic)
	for _, c := range []struct {
		typ  string
		data []byte
	}{{"IHDR", ihdr}, {"IEND", nil}} {
		binary.Write(&b, binary.BigEndian, uint32(len(c.data)))
		b.WriteString(c.typ)
		b.Write(c.data)
		binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(c.typ), c.data...)))
	}
	return b.Bytes()
}

const params = "a red fox in the snow, <b>bold</b> & \"quoted\"\nNegative prompt: blurry\n" +
	"Steps: 25, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 64x48, Model: tiny-sd, T-GATE: v2, Gate step: 10, SP interval: 5, FI interval: 1, Warm up: 2"

func TestCheckAccepts(t *testing.T) {
	data := testPNG(t, 64, 48, params)
	m, err := Check(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Width != 64 || m.Height != 48 || m.Bytes != len(data) || m.Parameters != params || !ValidID(m.ID) || m.ID != IDOf(data) {
		t.Errorf("meta %+v", m)
	}
	if IDOf(data) != IDOf(append([]byte(nil), data...)) || IDOf(data) == IDOf(testPNG(t, 64, 48, "")) {
		t.Error("ids are not a function of the bytes")
	}
	plain, err := Check(testPNG(t, 8, 8, ""))
	if err != nil || plain.Parameters != "" {
		t.Errorf("PNG without settings: %+v %v", plain, err)
	}
	enc, _ := MarshalMeta(m)
	back, err := UnmarshalMeta(enc)
	if err != nil || back != m {
		t.Errorf("meta round trip: %+v %v", back, err)
	}
}

func TestCheckRefuses(t *testing.T) {
	good := testPNG(t, 16, 16, params)
	huge := append(bytes.Clone(good), make([]byte, MaxBytes)...)
	truncated := good[:len(good)-40]
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-30] ^= 0xff // inside IDAT: its CRC no longer matches
	cases := []struct {
		name   string
		data   []byte
		status int
	}{
		{"oversized", huge, http.StatusRequestEntityTooLarge},
		{"empty", nil, http.StatusUnsupportedMediaType},
		{"text", []byte("hello, not an image"), http.StatusUnsupportedMediaType},
		{"jpeg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), http.StatusUnsupportedMediaType},
		{"html", []byte("<!doctype html><script>alert(1)</script>"), http.StatusUnsupportedMediaType},
		{"signature only", []byte(pngMagic), http.StatusBadRequest},
		{"declares 100000×100000", declaredPNG(100000, 100000), http.StatusUnprocessableEntity},
		{"declares 5000×10", declaredPNG(5000, 10), http.StatusUnprocessableEntity},
		{"declares 3000×3000", declaredPNG(3000, 3000), http.StatusUnprocessableEntity},
		{"declares 0×10", declaredPNG(0, 10), http.StatusBadRequest},
		{"declares 64×64, no pixels", declaredPNG(64, 64), http.StatusBadRequest},
		{"truncated", truncated, http.StatusBadRequest},
		{"corrupt", corrupt, http.StatusBadRequest},
	}
	for _, tc := range cases {
		_, err := Check(tc.data)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if got := StatusOf(err); got != tc.status {
			t.Errorf("%s: status %d (%v), want %d", tc.name, got, err, tc.status)
		}
	}
}

// TestHugeDeclaredIsCheap checks that a header declaring a huge image is
// refused without allocating its pixels.
func TestHugeDeclaredIsCheap(t *testing.T) {
	data := declaredPNG(100000, 100000)
	allocs := testing.AllocsPerRun(5, func() { Check(data) })
	if allocs > 100 {
		t.Errorf("%v allocations to refuse a declared 100000×100000 PNG", allocs)
	}
	if _, err := DecodeImage(data); err == nil {
		t.Error("DecodeImage decoded a declared 100000×100000 PNG")
	}
}

func TestValidID(t *testing.T) {
	for s, want := range map[string]bool{"abcdefghijk": true, "a2345672345": true, "ABCDEFGHIJK": false, "abcdefghij": false,
		"abcdefghijkl": false, "abcdefgh1jk": false, "../../../..": false, "abcde/ghijk": false} {
		if ValidID(s) != want {
			t.Errorf("ValidID(%q) = %v", s, !want)
		}
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize(Meta{ID: "abcdefghijk", Width: 64, Height: 48, Parameters: params})
	want := Summary{
		Prompt:   "a red fox in the snow, <b>bold</b> & \"quoted\"",
		Negative: "blurry",
		Sampling: "25 steps · DDIM · CFG 7.5 · seed 42",
		Image:    "64×48 · tiny-sd",
		TGate:    "T-GATE v2 · gate step 10 · SP interval 5 · FI interval 1 · warm-up 2",
	}
	if s != want {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
	bare := Summarize(Meta{Width: 8, Height: 8})
	if bare.Prompt != "" || bare.Image != "8×8" || bare.TGate != "T-GATE off" || bare.Title() == "" {
		t.Errorf("no settings: %+v", bare)
	}
	odd := Summarize(Meta{Width: 8, Height: 8, Parameters: "just a prompt"})
	if odd.Prompt != "just a prompt" {
		t.Errorf("prompt only: %+v", odd)
	}
	long := Summary{Prompt: strings.Repeat("word ", 50)}
	if n := len([]rune(long.Title())); n > 90 || !strings.HasSuffix(long.Title(), "…") {
		t.Errorf("long title %q", long.Title())
	}
}

func TestPage(t *testing.T) {
	m := Meta{ID: "abcdefghijk", Width: 64, Height: 48, Parameters: params}
	page, err := Page("https://tgate.example/", m)
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, want := range []string{
		`<meta property="og:image" content="https://tgate.example/s/abcdefghijk/card.png">`,
		`<meta property="og:url" content="https://tgate.example/s/abcdefghijk">`,
		`<meta property="og:image:width" content="1200">`,
		`<meta name="twitter:card" content="summary_large_image">`,
		`<meta name="twitter:image" content="https://tgate.example/s/abcdefghijk/card.png">`,
		`<img src="https://tgate.example/s/abcdefghijk/image.png" width="64" height="48"`,
		"T-GATE v2 · gate step 10",
		"&lt;b&gt;bold&lt;/b&gt; &amp; &#34;quoted&#34;",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(html, "<b>bold</b>") {
		t.Error("prompt not escaped")
	}
}
