package site

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/httpenc"
)

const page = `<!doctype html>
<html><head>
<link rel="stylesheet" href="style.css">
<link rel="icon" href='ui/icon.svg'>
<script type="module" src="app.js"></script>
<script src="https://cdn.example/x.js"></script>
<link rel="canonical" href="/abs.css">
</head><body>
<a class="skip" href="#prompt">Skip</a>
<a href="other.html">other</a>
<a href="missing.js">missing</a>
<a href="style.css?x=1">query</a>
<img src="../outside.png">
</body></html>`

func testFiles() map[string][]byte {
	return map[string][]byte{
		"index.html":      []byte(page),
		"other.html":      []byte(`<script type="module" src="./tgate-widget.js"></script>`),
		"style.css":       []byte("body{}"),
		"app.js":          []byte(`import("./tgate.js")`),
		"tgate.js":        []byte(`new URL("engine-worker.js", import.meta.url)`),
		"ui/icon.svg":     []byte("<svg/>"),
		"tgate-widget.js": []byte(`import "./tgate.js"`),
		"tgate.wasm":      []byte("\x00asm"),
	}
}

func TestVersionAndRewrite(t *testing.T) {
	s := New(testFiles())
	if !versionDir.MatchString(s.Version) {
		t.Fatalf("version %q", s.Version)
	}
	idx, _ := s.File("index.html")
	html := string(idx.Data)
	v := "/v/" + s.Version + "/"
	for _, want := range []string{
		`href="` + v + `style.css"`, `href='` + v + `ui/icon.svg'`, `src="` + v + `app.js"`,
		`src="https://cdn.example/x.js"`, `href="/abs.css"`, `href="#prompt"`, `href="other.html"`,
		`href="missing.js"`, `href="style.css?x=1"`, `src="../outside.png"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
	other, _ := s.File("other.html")
	if !strings.Contains(string(other.Data), `src="`+v+`tgate-widget.js"`) {
		t.Errorf("other.html: %s", other.Data)
	}
	js, _ := s.File("app.js")
	if string(js.Data) != `import("./tgate.js")` {
		t.Error("JavaScript was rewritten")
	}

	// The version follows content, and only content.
	if New(testFiles()).Version != s.Version {
		t.Error("version is not deterministic")
	}
	changed := testFiles()
	changed["tgate.wasm"] = []byte("\x00asm2")
	if New(changed).Version == s.Version {
		t.Error("version ignores the engine")
	}
	renamed := testFiles()
	renamed["ui/icon2.svg"] = renamed["ui/icon.svg"]
	delete(renamed, "ui/icon.svg")
	if New(renamed).Version == s.Version {
		t.Error("version ignores names")
	}
}

func TestCollectAndWrite(t *testing.T) {
	web := t.TempDir()
	for name, data := range map[string]string{
		"index.html": page, "app.js": "x", "style.css": "y", "ui/icon.svg": "<svg/>",
		"params.test.mjs": "test", "e2e/harness_test.go": "go", "worker/main.go": "go", "worker/README.md": "doc",
		".hidden.js": "no", "ui/.x.js": "no", "notes.md": "no", "sub/e2e/x.js": "no",
	} {
		p := filepath.Join(web, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
	}
	wasm := filepath.Join(t.TempDir(), "engine.wasm")
	os.WriteFile(wasm, []byte("\x00asm"), 0o644)
	s, err := Collect(web, map[string]string{"tgate.wasm": wasm})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range s.Files {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, " "); got != "app.js index.html style.css tgate.wasm ui/icon.svg" {
		t.Errorf("files: %s", got)
	}
	out := filepath.Join(t.TempDir(), "site")
	os.MkdirAll(filepath.Join(out, "stale"), 0o755)
	if err := s.Write(out); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"index.html", "app.js", "tgate.wasm", "ui/icon.svg",
		"v/" + s.Version + "/app.js", "v/" + s.Version + "/tgate.wasm", "v/" + s.Version + "/ui/icon.svg"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("%s not written", name)
		}
	}
	for _, name := range []string{"stale", "v/" + s.Version + "/index.html"} {
		if _, err := os.Stat(filepath.Join(out, name)); err == nil {
			t.Errorf("%s exists", name)
		}
	}
	if _, err := Collect(t.TempDir(), nil); err == nil {
		t.Error("a folder without index.html collected")
	}
}

func TestLookup(t *testing.T) {
	ok := map[string]Asset{
		"/":                          {Path: "/index.html"},
		"/index.html":                {Path: "/index.html"},
		"/ui/":                       {Path: "/ui/index.html"},
		"/ui/form.js":                {Path: "/ui/form.js"},
		"/tgate-widget.js":           {Path: "/tgate-widget.js"},
		"/a%20b.js":                  {Path: "/a b.js"},
		"/v/0123456789ab/app.js":     {Path: "/v/0123456789ab/app.js", Immutable: true},
		"/v/0123456789ab/ui/form.js": {Path: "/v/0123456789ab/ui/form.js", Immutable: true},
	}
	for p, want := range ok {
		if got, found := Lookup(p); !found || got != want {
			t.Errorf("Lookup(%q) = %+v %v, want %+v", p, got, found, want)
		}
	}
	for _, p := range []string{"", "x", "/../etc/passwd", "/%2e%2e/x", "/ui/../../x", "/.env", "/ui/.git/config",
		"/a%2fb", "/a%5cb", "/a\\b", "/%00", "/%zz", "//x", "/v/", "/v/app.js", "/v/xyz/app.js",
		"/v/0123456789ab/", "/v/0123456789ab/index.html", "/v/0123456789AB/app.js"} {
		if got, found := Lookup(p); found {
			t.Errorf("Lookup(%q) = %+v", p, got)
		}
	}
}

func TestHeaders(t *testing.T) {
	stored := http.Header{"Etag": {`"abc"`}, "Content-Length": {"1234"}, "Content-Type": {"text/plain"}}
	gz := http.Header{"Accept-Encoding": {"gzip, deflate, br"}}
	cases := []struct {
		path      string
		immutable bool
		req       http.Header
		want      map[string]string
	}{
		{"/index.html", false, gz, map[string]string{"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache",
			"Content-Encoding": "gzip", "Etag": `W/"abc"`, "Content-Length": "", "Vary": "Accept-Encoding"}},
		{"/index.html", false, http.Header{}, map[string]string{"Content-Encoding": "", "Etag": `"abc"`, "Content-Length": "1234"}},
		{"/v/0123456789ab/tgate.wasm", true, gz, map[string]string{"Content-Type": "application/wasm",
			"Cache-Control": "public, max-age=31536000, immutable", "Content-Encoding": "gzip"}},
		{"/v/0123456789ab/engine-worker.js", true, http.Header{"Accept-Encoding": {"gzip;q=0"}},
			map[string]string{"Content-Type": "text/javascript; charset=utf-8", "Content-Encoding": ""}},
		{"/ui/icon.png", false, gz, map[string]string{"Content-Type": "image/png", "Content-Encoding": "", "Vary": "", "Etag": `"abc"`}},
		{"/tgate-widget.js", false, gz, map[string]string{"Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"}},
		{"/style.css", false, gz, map[string]string{"Content-Type": "text/css; charset=utf-8"}},
		{"/blob.bin", false, gz, map[string]string{"Content-Type": "application/octet-stream"}},
	}
	for _, tc := range cases {
		h := Headers(Asset{Path: tc.path, Immutable: tc.immutable}, tc.req, stored)
		for k, v := range tc.want {
			if h.Get(k) != v {
				t.Errorf("%s %v: %s = %q, want %q", tc.path, tc.req, k, h.Get(k), v)
			}
		}
	}
	if got := IfNoneMatch(http.Header{"If-None-Match": {`W/"abc", "def"`}}); got != `"abc", "def"` {
		t.Errorf("IfNoneMatch %q", got)
	}
	for v, want := range map[string]bool{"gzip": true, "br, gzip;q=0.5": true, "*": true, "gzip;q=0": false, "br": false, "": false, "identity": false} {
		if httpenc.AcceptsGzip(v) != want {
			t.Errorf("AcceptsGzip(%q) = %v", v, !want)
		}
	}
}
