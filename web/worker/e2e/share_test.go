package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/pnginfo"
)

// settings is the parameters text of the shared test image.
const settings = "a red fox in the snow, golden hour\nNegative prompt: blurry\n" +
	"Steps: 4, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 256x192, Model: tiny-sd, T-GATE: v2, Gate step: 2, SP interval: 1"

// imagePNG is a w×h gradient PNG carrying text as its settings.
func imagePNG(t *testing.T, w, h int, text string) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(255 * x / w), uint8(255 * y / h), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	out, err := pnginfo.Encode(b.Bytes(), pnginfo.Key, text)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// declaredPNG is a valid PNG signature and IHDR declaring w×h RGBA
// pixels, then IEND: a header that lies about a huge image.
func declaredPNG(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
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

// upload posts data to /api/share and returns the answer.
func upload(t *testing.T, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	return do(t, "POST", "/api/share", http.Header{"Content-Type": {"image/png"}}, body)
}

func TestShare(t *testing.T) {
	needWorker(t)
	data := imagePNG(t, 256, 192, settings)
	uploads := 0

	res, body := upload(t, bytes.NewReader(data))
	uploads++
	var out struct{ ID, URL, Image, Card string }
	if res.StatusCode != 201 || json.Unmarshal(body, &out) != nil || out.ID == "" || res.Header.Get("Location") != out.URL {
		t.Fatalf("upload: %d %s", res.StatusCode, body)
	}
	u, err := url.Parse(out.URL)
	if err != nil || u.Path != "/s/"+out.ID || len(out.ID) > 16 {
		t.Fatalf("short link %q", out.URL)
	}

	res, page := do(t, "GET", u.Path, nil, nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("page: %d %v", res.StatusCode, res.Header)
	}
	for _, want := range []string{
		`<meta property="og:image" content="` + out.Card + `">`,
		`<meta property="og:image:width" content="1200">`,
		`<meta property="og:title" content="a red fox in the snow, golden hour">`,
		`<meta name="twitter:card" content="summary_large_image">`,
		`<meta name="twitter:image" content="` + out.Card + `">`,
		`<img src="` + out.Image + `"`,
		"T-GATE v2 · gate step 2 · SP interval 1",
	} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("page lacks %s", want)
		}
	}

	res, img := do(t, "GET", u.Path+"/image.png", nil, nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/png" || !bytes.Equal(img, data) {
		t.Errorf("image: %d %v (%d bytes)", res.StatusCode, res.Header, len(img))
	}
	if texts, err := pnginfo.Read(img); err != nil || texts[pnginfo.Key] != settings {
		t.Errorf("the parameters chunk was not kept: %v %v", texts, err)
	}

	res, card := do(t, "GET", u.Path+"/card.png", nil, nil)
	if res.StatusCode != 200 || res.Header.Get("X-Tgate-Card") != "made" {
		t.Fatalf("card: %d %v", res.StatusCode, res.Header)
	}
	decoded, err := png.Decode(bytes.NewReader(card))
	if err != nil {
		t.Fatalf("the card does not decode: %v", err)
	}
	if b := decoded.Bounds(); b.Dx() != 1200 || b.Dy() != 630 {
		t.Errorf("the card is %v", b)
	}
	res, again := do(t, "GET", u.Path+"/card.png", nil, nil)
	if res.StatusCode != 200 || res.Header.Get("X-Tgate-Card") != "stored" || !bytes.Equal(card, again) {
		t.Errorf("second card: %d %v", res.StatusCode, res.Header)
	}
	if !strings.Contains(res.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("card Cache-Control %q", res.Header.Get("Cache-Control"))
	}

	// Refused uploads, each a 4xx while the Worker keeps serving.
	huge := make([]byte, 9<<20)
	copy(huge, data)
	refused := []struct {
		name    string
		body    io.Reader
		status  int
		counted bool
	}{
		{"oversized", bytes.NewReader(huge), 413, false},                          // refused by its Content-Length
		{"oversized, streamed", io.MultiReader(bytes.NewReader(huge)), 413, true}, // no Content-Length: read up to the limit
		{"declares 100000×100000", bytes.NewReader(declaredPNG(100000, 100000)), 422, true},
		{"not a PNG", strings.NewReader("GIF89a, or anything else"), 415, true},
		{"truncated PNG", bytes.NewReader(data[:len(data)/2]), 400, true},
	}
	for _, tc := range refused {
		res, body := upload(t, tc.body)
		if res.StatusCode != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, res.StatusCode, body, tc.status)
		}
		if tc.counted {
			uploads++
		}
		if res, _ := do(t, "GET", "/api/health", nil, nil); res.StatusCode != 200 {
			t.Fatalf("after %s the Worker answers %d", tc.name, res.StatusCode)
		}
	}
	for _, p := range []string{"/s/aaaaaaaaaaa", "/s/aaaaaaaaaaa/card.png", "/s/" + out.ID + "/x.png", "/s/..%2f..%2fetc"} {
		if res, _ := do(t, "GET", p, nil, nil); res.StatusCode != 404 {
			t.Errorf("%s: %d", p, res.StatusCode)
		}
	}
	if res, _ := do(t, "GET", "/api/share", nil, nil); res.StatusCode != 405 {
		t.Errorf("GET /api/share: %d", res.StatusCode)
	}

	// The rate limit: uploads up to shareLimit pass, the next is 429.
	for uploads < shareLimit {
		res, body := upload(t, bytes.NewReader(imagePNG(t, 8, 8, "upload")))
		if res.StatusCode != 201 {
			t.Fatalf("upload %d of %d: %d %s", uploads+1, shareLimit, res.StatusCode, body)
		}
		uploads++
	}
	res, body = upload(t, bytes.NewReader(data))
	if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
		t.Errorf("upload past the limit: %d %v %s", res.StatusCode, res.Header, body)
	}
}
