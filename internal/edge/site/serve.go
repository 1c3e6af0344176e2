package site

import (
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/tgate-web/tgate/internal/httpenc"
)

// Asset is a request for a file of the site, checked.
type Asset struct {
	// Path is the file's path in the assets folder, with a leading
	// slash ("/index.html", "/v/0123456789ab/app.js").
	Path string
	// Immutable is true for the versioned copies.
	Immutable bool
}

// versionDir matches the folder of a versioned copy.
var versionDir = regexp.MustCompile(`^[0-9a-f]{12}$`)

// Lookup maps a request path (escaped, as it came in) to the asset it
// names: "/" and folder URLs to their index.html, /v/<version>/<name> to
// an immutable copy. It reports false for paths that cannot name a file
// of the site: bad escapes, empty, "." or ".." segments, hidden names,
// backslashes and control characters, or a /v/ path without a version.
func Lookup(escapedPath string) (Asset, bool) {
	if !strings.HasPrefix(escapedPath, "/") {
		return Asset{}, false
	}
	p := escapedPath[1:]
	if p == "" || strings.HasSuffix(p, "/") {
		p += "index.html"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil || !plainName(u) {
			return Asset{}, false
		}
		segs[i] = u
	}
	a := Asset{Path: "/" + strings.Join(segs, "/")}
	if segs[0] == "v" {
		if len(segs) < 3 || !versionDir.MatchString(segs[1]) || isHTML(segs[len(segs)-1]) {
			return Asset{}, false
		}
		a.Immutable = true
	}
	return a, true
}

// plainName reports whether a decoded path segment may name a file of the
// site: not empty, not hidden (so neither "." nor ".."), and free of
// slashes, backslashes and control characters.
func plainName(s string) bool {
	if s == "" || s[0] == '.' || strings.ContainsAny(s, "/\\") {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// contentTypes maps extensions to the Content-Type the site sends,
// independent of any MIME table.
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json",
	".webmanifest": "application/manifest+json",
	".map":         "application/json",
	".wasm":        "application/wasm",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".webp":        "image/webp",
	".ico":         "image/x-icon",
	".woff2":       "font/woff2",
	".txt":         "text/plain; charset=utf-8",
}

// compressible lists the extensions worth compressing; images and fonts
// already are.
var compressible = map[string]bool{
	".html": true, ".htm": true, ".js": true, ".mjs": true, ".css": true, ".json": true, ".webmanifest": true,
	".map": true, ".wasm": true, ".svg": true, ".txt": true, ".ico": true,
}

// ContentType returns the Content-Type of a site path.
func ContentType(name string) string {
	if ct, ok := contentTypes[strings.ToLower(path.Ext(name))]; ok {
		return ct
	}
	return "application/octet-stream"
}

// Cache-Control values.
const (
	// Immutable is for the versioned copies: their content never changes.
	Immutable = "public, max-age=31536000, immutable"
	// Revalidate is for HTML and plain names: the browser asks again every
	// time (a 304 when the ETag still matches).
	Revalidate = "no-cache"
)

// Headers returns the headers of the answer for an asset: Content-Type by
// extension, Cache-Control (Immutable or Revalidate), the stored file's
// ETag (weak when the answer is compressed, since the bytes differ),
// Content-Encoding gzip for compressible files when the request accepts
// it (the Workers runtime compresses the body it is given) with Vary:
// Accept-Encoding, Content-Length when not compressing, and CORS so that
// pages on other sites can load the widget and its modules.
func Headers(a Asset, req http.Header, stored http.Header) http.Header {
	h := http.Header{}
	h.Set("Content-Type", ContentType(a.Path))
	if a.Immutable {
		h.Set("Cache-Control", Immutable)
	} else {
		h.Set("Cache-Control", Revalidate)
	}
	gzip := false
	if compressible[strings.ToLower(path.Ext(a.Path))] {
		h.Set("Vary", "Accept-Encoding")
		gzip = httpenc.AcceptsGzip(req.Get("Accept-Encoding"))
	}
	if etag := strongETag(stored.Get("ETag")); etag != "" {
		if gzip {
			h.Set("ETag", "W/"+etag)
		} else {
			h.Set("ETag", etag)
		}
	}
	if gzip {
		h.Set("Content-Encoding", "gzip")
	} else if n := stored.Get("Content-Length"); n != "" {
		h.Set("Content-Length", n)
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	return h
}

// strongETag returns an ETag without its weak prefix ("" when invalid).
func strongETag(e string) string {
	e = strings.TrimPrefix(strings.TrimSpace(e), "W/")
	if len(e) < 2 || e[0] != '"' || e[len(e)-1] != '"' {
		return ""
	}
	return e
}

// IfNoneMatch returns the request's If-None-Match with weak prefixes
// removed, so that the asset store compares a compressed answer's ETag
// with the stored file's.
func IfNoneMatch(req http.Header) string {
	v := req.Get("If-None-Match")
	if v == "" || strings.TrimSpace(v) == "*" {
		return strings.TrimSpace(v)
	}
	var out []string
	for _, e := range strings.Split(v, ",") {
		if s := strongETag(e); s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, ", ")
}
