package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tgate-web/tgate/internal/edge/share"
	"github.com/tgate-web/tgate/pnginfo"
)

var testTmp string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edge-server-")
	if err != nil {
		panic(err)
	}
	testTmp = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestHosting(t *testing.T) {
	r := newRig(t, map[string]string{})
	gz := http.Header{"Accept-Encoding": {"gzip"}}

	res, body := r.do("GET", "/", gz, nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("/: %d %v", res.StatusCode, res.Header)
	}
	// The runtime compresses what the Worker marks gzip.
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("/: %v", res.Header)
	}
	if html, err := gunzip(body); err != nil || !bytes.Contains(html, []byte(`src="/v/`+r.site.Version+`/app.js"`)) {
		t.Errorf("/: %v %s", err, html)
	}
	etag := res.Header.Get("ETag")
	if !strings.HasPrefix(etag, `W/"`) {
		t.Errorf("compressed answer's ETag %q is not weak", etag)
	}
	res, _ = r.do("GET", "/", http.Header{"Accept-Encoding": {"gzip"}, "If-None-Match": {etag}}, nil)
	if res.StatusCode != 304 || res.Header.Get("Content-Encoding") != "" {
		t.Errorf("revalidation: %d %v", res.StatusCode, res.Header)
	}

	v := "/v/" + r.site.Version
	res, body = r.do("GET", v+"/tgate.wasm", http.Header{"Accept-Encoding": {"identity"}}, nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/wasm" ||
		res.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" || len(body) != 4000 || res.Header.Get("Content-Length") != "4000" {
		t.Errorf("wasm: %d %v (%d bytes)", res.StatusCode, res.Header, len(body))
	}
	res, _ = r.do("GET", "/tgate.js", nil, nil)
	if res.StatusCode != 200 || res.Header.Get("Cache-Control") != "no-cache" || res.Header.Get("Access-Control-Allow-Origin") != "*" ||
		res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("tgate.js: %d %v", res.StatusCode, res.Header)
	}
	res, body = r.do("HEAD", v+"/style.css", nil, nil)
	if res.StatusCode != 200 || len(body) != 0 || res.Header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("HEAD: %d %v", res.StatusCode, res.Header)
	}
	for _, p := range []string{"/missing.js", "/v/000000000000/app.js", v + "/index.html", "/.env", "/%2e%2e/etc/passwd", "/ui/..%2f..%2fx"} {
		if res, _ := r.do("GET", p, nil, nil); res.StatusCode != 404 {
			t.Errorf("%s: %d", p, res.StatusCode)
		}
	}
	if res, _ := r.do("POST", "/index.html", nil, nil); res.StatusCode != 405 {
		t.Errorf("POST /index.html: %d", res.StatusCode)
	}
	if res, body := r.do("GET", "/api/health", nil, nil); res.StatusCode != 200 || !bytes.Contains(body, []byte(`"ok":true`)) {
		t.Errorf("health: %d %s", res.StatusCode, body)
	}
}

func TestProxy(t *testing.T) {
	r := newRig(t, map[string]string{"ALLOW": "tgate/tiny-sd"})
	const file = "/hf/tgate/tiny-sd/resolve/main/model_index.json"

	res, body := r.do("GET", file, nil, nil)
	if res.StatusCode != 200 || res.Header.Get("X-Tgate-Cache") != "miss" || !bytes.Contains(body, []byte("StableDiffusionPipeline")) {
		t.Fatalf("first GET: %d %v %s", res.StatusCode, res.Header, body)
	}
	if res.Header.Get("Access-Control-Allow-Origin") != "*" || res.Header.Get("Cache-Control") != "public, max-age=600" ||
		res.Header.Get("X-Repo-Commit") == "" {
		t.Errorf("headers: %v", res.Header)
	}
	res, again := r.do("GET", file, nil, nil)
	if res.StatusCode != 200 || res.Header.Get("X-Tgate-Cache") != "hit" || !bytes.Equal(body, again) {
		t.Errorf("second GET: %d %v", res.StatusCode, res.Header)
	}
	// One fetch for both: the second came from the cache.
	if n := len(r.net.fetched()); n != 1 {
		t.Errorf("%d origin fetches, want 1", n)
	}
	res, _ = r.do("GET", file, http.Header{"If-None-Match": {res.Header.Get("ETag")}}, nil)
	if res.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", res.StatusCode)
	}

	// Weights: the origin redirects to its LFS store; the proxy follows it
	// and keeps the Hub's headers from the redirect.
	const weights = "/hf/tgate/tiny-sd/resolve/main/unet/diffusion_pytorch_model.safetensors"
	res, _ = r.do("HEAD", weights, nil, nil)
	size := res.Header.Get("Content-Length")
	if res.StatusCode != 200 || res.Header.Get("X-Linked-Size") != size || res.Header.Get("X-Tgate-Cache") != "bypass" ||
		res.Header.Get("ETag") != res.Header.Get("X-Linked-Etag") {
		t.Fatalf("HEAD weights: %d %v", res.StatusCode, res.Header)
	}
	// Range before the file is cached: passed to the origin.
	res, head := r.do("GET", weights, http.Header{"Range": {"bytes=0-7"}}, nil)
	if res.StatusCode != 206 || len(head) != 8 || res.Header.Get("Content-Range") != "bytes 0-7/"+size || res.Header.Get("X-Tgate-Cache") != "bypass" {
		t.Fatalf("Range (miss): %d %v", res.StatusCode, res.Header)
	}
	res, whole := r.do("GET", weights, nil, nil)
	if res.StatusCode != 200 || fmt.Sprint(len(whole)) != size || res.Header.Get("X-Tgate-Cache") != "miss" || !bytes.Equal(whole[:8], head) {
		t.Fatalf("GET weights: %d %v", res.StatusCode, res.Header)
	}
	// Range after: cut from the cached whole.
	res, mid := r.do("GET", weights, http.Header{"Range": {"bytes=100-199"}}, nil)
	if res.StatusCode != 206 || res.Header.Get("X-Tgate-Cache") != "hit" || !bytes.Equal(mid, whole[100:200]) {
		t.Errorf("Range (hit): %d %v", res.StatusCode, res.Header)
	}
	if key := "/hf/tgate/tiny-sd/resolve/main/unet/diffusion_pytorch_model.safetensors"; !r.cacheHas(key) {
		t.Errorf("cache keys lack %s", key)
	}
	// On *.workers.dev the Cache API stores nothing: the proxy streams.
	puts := r.cache.puts
	res, _ = r.do("GET", "/hf/tgate/tiny-sd/resolve/main/text_encoder/config.json", http.Header{"Host": {"tgate.someone.workers.dev"}}, nil)
	if res.StatusCode != 200 || res.Header.Get("X-Tgate-Cache") != "bypass" || r.cache.puts != puts {
		t.Errorf("on workers.dev: %d %v", res.StatusCode, res.Header)
	}

	// The model API, through /hf and at the root.
	for _, p := range []string{"/hf/api/models/tgate/tiny-sd/revision/main?blobs=true", "/api/models/tgate/tiny-sd/revision/main?blobs=true"} {
		res, body = r.do("GET", p, nil, nil)
		var info struct {
			Siblings []struct {
				Name string `json:"rfilename"`
				LFS  *struct {
					SHA256 string `json:"sha256"`
				} `json:"lfs"`
			} `json:"siblings"`
		}
		if res.StatusCode != 200 || json.Unmarshal(body, &info) != nil || len(info.Siblings) < 5 {
			t.Errorf("%s: %d %s", p, res.StatusCode, body)
		}
	}
	// The Hub's layout at the root, as the page's own origin.
	if res, b := r.do("GET", "/tgate/tiny-sd/resolve/main/model_index.json", nil, nil); res.StatusCode != 200 || !bytes.Equal(b, body2(t, r, file)) {
		t.Errorf("root layout: %d", res.StatusCode)
	}
	if res, b := r.do("GET", "/api/local-models", nil, nil); res.StatusCode != 200 || string(b) != `["tgate/tiny-sd"]` {
		t.Errorf("local models: %d %s", res.StatusCode, b)
	}
	// Errors of the origin pass through, not cached.
	res, body = r.do("GET", "/hf/tgate/tiny-sd/resolve/main/missing.json", nil, nil)
	if res.StatusCode != 404 || res.Header.Get("X-Error-Code") != "EntryNotFound" || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("missing file: %d %v %s", res.StatusCode, res.Header, body)
	}
	res, _ = r.do("OPTIONS", file, http.Header{"Origin": {"https://other.example"}, "Access-Control-Request-Headers": {"range"}}, nil)
	if res.StatusCode != 204 || !strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Range") {
		t.Errorf("preflight: %d %v", res.StatusCode, res.Header)
	}
}

// body2 fetches a path and returns its body.
func body2(t *testing.T, r *rig, p string) []byte {
	_, b := r.do("GET", p, nil, nil)
	return b
}

// cacheHas reports whether the edge cache holds an entry whose key ends
// in path.
func (r *rig) cacheHas(path string) bool {
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	for k := range r.cache.entries {
		if strings.HasSuffix(k, path) {
			return true
		}
	}
	return false
}

func TestProxyRefuses(t *testing.T) {
	r := newRig(t, map[string]string{"ALLOW": "tgate/tiny-sd"})
	cases := []struct {
		method, path string
		status       int
	}{
		{"POST", "/hf/tgate/tiny-sd/resolve/main/model_index.json", 405},
		{"PUT", "/hf/tgate/tiny-sd/resolve/main/model_index.json", 405},
		{"DELETE", "/hf/api/models/tgate/tiny-sd", 405},
		{"GET", "/hf/other/model/resolve/main/model_index.json", 403},
		{"GET", "/hf/api/models/other/model", 403},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/../../../../etc/passwd", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/%2e%2e/%2e%2e/x", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/unet%2f..%2f..%2fx", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/%252e%252e/x", 400},
		{"GET", "/hf/http:%2F%2F169.254.169.254/latest/resolve/main/x", 400},
		{"GET", "/hf/tgate/tiny-sd@127.0.0.1:22/resolve/main/x", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/@evil.example/x", 400},
		{"GET", "/hf//evil.example/resolve/main/x", 400},
		{"GET", "/hf/tgate/tiny-sd/tree/main", 404},
	}
	for _, tc := range cases {
		res, body := r.do(tc.method, tc.path, nil, nil)
		if res.StatusCode != tc.status || !bytes.Contains(body, []byte(`"error"`)) || res.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, res.StatusCode, body, tc.status)
		}
	}
	if got := r.net.fetched(); len(got) != 0 {
		t.Errorf("refused requests reached the network: %v", got)
	}
	// An absolute-form request target names another host: the proxy
	// still fetches from its origin only.
	res, _ := r.do("GET", "/hf/tgate/tiny-sd/resolve/main/model_index.json", http.Header{"Host": {"evil.example"}}, nil)
	if res.StatusCode != 200 {
		t.Errorf("Host header: %d", res.StatusCode)
	}
	for _, u := range r.net.fetched() {
		if !strings.HasPrefix(u, r.origin.URL+"/") {
			t.Errorf("fetched %s, off the origin", u)
		}
	}
}

func TestProxyRedirectsOffOrigin(t *testing.T) {
	evil := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a/b/resolve/main/away":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
		case "/a/b/resolve/main/loop":
			http.Redirect(w, r, "/a/b/resolve/main/loop", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	})
	r := newRig(t, map[string]string{"ALLOW": "a/b"})
	r.origin.Config.Handler = evil
	for _, p := range []string{"/hf/a/b/resolve/main/away", "/hf/a/b/resolve/main/loop"} {
		res, body := r.do("GET", p, nil, nil)
		if res.StatusCode != 502 {
			t.Errorf("%s: %d %s", p, res.StatusCode, body)
		}
	}
	for _, u := range r.net.fetched() {
		if strings.Contains(u, "169.254") {
			t.Errorf("followed a redirect to %s", u)
		}
	}
}

// testPNG is a w×h PNG carrying settings text.
func testPNG(t *testing.T, w, h int, params string) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	img.Set(0, 0, color.NRGBA{255, 0, 0, 255})
	var b bytes.Buffer
	png.Encode(&b, img)
	out, err := pnginfo.Encode(b.Bytes(), pnginfo.Key, params)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const params = "a red fox in the snow\nSteps: 4, Sampler: DDIM, CFG scale: 7.5, Seed: 1, Size: 32x32, Model: tiny-sd, T-GATE: v2, Gate step: 2"

func TestShare(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRig(t, map[string]string{"SHARE_LIMIT": "7", "SHARE_WINDOW": "600"})
	r.srv.Now = func() time.Time { return now }
	data := testPNG(t, 32, 32, params)

	res, body := r.do("POST", "/api/share", http.Header{"Content-Type": {"image/png"}}, bytes.NewReader(data))
	var out struct{ ID, URL, Image, Card string }
	if res.StatusCode != 201 || json.Unmarshal(body, &out) != nil || !share.ValidID(out.ID) || res.Header.Get("Location") != out.URL {
		t.Fatalf("upload: %d %s", res.StatusCode, body)
	}
	if !strings.HasPrefix(out.URL, r.url+"/s/") {
		t.Errorf("link %q", out.URL)
	}
	// Stored before the answer: image and Meta.
	if got := strings.Join(r.bucket.puts, " "); got != share.ImageKey(out.ID)+" "+share.MetaKey(out.ID) {
		t.Errorf("puts: %s", got)
	}
	u, _ := url.Parse(out.URL)
	res, page := r.do("GET", u.Path, nil, nil)
	if res.StatusCode != 200 || !bytes.Contains(page, []byte(`<meta property="og:image" content="`+out.Card+`">`)) ||
		!bytes.Contains(page, []byte("a red fox in the snow")) || !bytes.Contains(page, []byte("T-GATE v2 · gate step 2")) {
		t.Errorf("page: %d %s", res.StatusCode, page)
	}
	res, img := r.do("GET", u.Path+"/image.png", nil, nil)
	if res.StatusCode != 200 || !bytes.Equal(img, data) {
		t.Errorf("image: %d, %d bytes", res.StatusCode, len(img))
	}
	if texts, err := pnginfo.Read(img); err != nil || texts["parameters"] != params {
		t.Errorf("the settings chunk was not kept: %v %v", texts, err)
	}
	res, c := r.do("GET", u.Path+"/card.png", nil, nil)
	cfg, err := png.DecodeConfig(bytes.NewReader(c))
	if res.StatusCode != 200 || err != nil || cfg.Width != 1200 || cfg.Height != 630 || res.Header.Get("X-Tgate-Card") != "made" {
		t.Fatalf("card: %d %v %v %+v", res.StatusCode, res.Header, err, cfg)
	}
	if _, err := png.Decode(bytes.NewReader(c)); err != nil {
		t.Errorf("card does not decode: %v", err)
	}
	res, c2 := r.do("GET", u.Path+"/card.png", nil, nil)
	if res.Header.Get("X-Tgate-Card") != "stored" || !bytes.Equal(c, c2) {
		t.Errorf("second card: %v", res.Header)
	}
	// The same image again: the same link, nothing stored twice.
	res, body = r.do("POST", "/api/share", nil, bytes.NewReader(data))
	if res.StatusCode != 201 || !bytes.Contains(body, []byte(out.ID)) || len(r.bucket.puts) != 3 {
		t.Errorf("again: %d %s %v", res.StatusCode, body, r.bucket.puts)
	}

	huge := make([]byte, share.MaxBytes+10)
	copy(huge, data)
	bad := []struct {
		name   string
		body   io.Reader
		status int
	}{
		{"not a PNG", strings.NewReader("GIF89a..."), 415},
		{"oversized", bytes.NewReader(huge), 413},
		{"oversized, chunked", io.MultiReader(bytes.NewReader(huge)), 413},
		{"declares 100000x100000", bytes.NewReader(declared(100000, 100000)), 422},
		{"truncated", bytes.NewReader(data[:len(data)/2]), 400},
	}
	for _, tc := range bad {
		res, body := r.do("POST", "/api/share", nil, tc.body)
		if res.StatusCode != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, res.StatusCode, body, tc.status)
		}
	}
	// 2 good uploads and 4 refused ones counted (the first oversized one
	// is refused by its Content-Length before counting): one left.
	if res, _ := r.do("POST", "/api/share", nil, bytes.NewReader(testPNG(t, 8, 8, "x"))); res.StatusCode != 201 {
		t.Errorf("7th upload: %d", res.StatusCode)
	}
	res, body = r.do("POST", "/api/share", nil, bytes.NewReader(data))
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "600" {
		t.Errorf("8th upload: %d %v %s", res.StatusCode, res.Header, body)
	}
	now = now.Add(10 * time.Minute)
	if res, _ := r.do("POST", "/api/share", nil, bytes.NewReader(data)); res.StatusCode != 201 {
		t.Errorf("after the window: %d", res.StatusCode)
	}

	for _, p := range []string{"/s/", "/s/nope", "/s/aaaaaaaaaaa", "/s/aaaaaaaaaaa/card.png", "/s/" + out.ID + "/other.png", "/s/../index.html"} {
		if res, _ := r.do("GET", p, nil, nil); res.StatusCode != 404 {
			t.Errorf("%s: %d", p, res.StatusCode)
		}
	}
	if res, _ := r.do("GET", "/api/share", nil, nil); res.StatusCode != 405 {
		t.Errorf("GET /api/share: %d", res.StatusCode)
	}
}

// declared is a PNG header declaring w×h pixels with no pixel data.
func declared(w, h int) []byte {
	var b bytes.Buffer
	png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1)))
	p := b.Bytes()
	// IHDR data starts at byte 16; patch the size and fix the CRC.
	ihdr := p[12:29]
	ihdr[4], ihdr[5], ihdr[6], ihdr[7] = byte(w>>24), byte(w>>16), byte(w>>8), byte(w)
	ihdr[8], ihdr[9], ihdr[10], ihdr[11] = byte(h>>24), byte(h>>16), byte(h>>8), byte(h)
	crc := crc32.ChecksumIEEE(ihdr)
	p[29], p[30], p[31], p[32] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	return p
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{"ORIGIN": "http://127.0.0.1:8080", "ALLOW": "a/b", "SHARE_LIMIT": "3", "SHARE_WINDOW": "60", "CACHE_MAX": "1000"}
	c, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil || c.ShareLimit != 3 || c.ShareWindow != time.Minute || c.Proxy.MaxCache != 1000 || !c.Proxy.Allowed("a/b") {
		t.Errorf("%+v %v", c, err)
	}
	if c, _ := ConfigFromEnv(func(k string) string { return map[string]string{"EDGE_CACHE": "off"}[k] }); !c.NoEdgeCache {
		t.Error("EDGE_CACHE=off ignored")
	}
	for k, v := range map[string]string{"SHARE_LIMIT": "0", "SHARE_WINDOW": "x", "CACHE_MAX": "-1", "ORIGIN": "ftp://x", "ALLOW": "bad", "EDGE_CACHE": "maybe"} {
		bad := map[string]string{k: v}
		if _, err := ConfigFromEnv(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%s=%s accepted", k, v)
		}
	}
}

// gunzip decompresses a gzip body.
func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}
