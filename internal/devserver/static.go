package devserver

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tgate-web/tgate/internal/httpenc"
)

// wasmMissing is the answer to /tgate.wasm while the engine is not built.
const wasmMissing = "tgate.wasm is not built: run `make serve` (or GOOS=js GOARCH=wasm go build -o bin/tgate.wasm ./wasm)"

// contentTypes maps file extensions to the Content-Type the site sends,
// independent of the machine's MIME tables.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".htm":   "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".png":   "image/png",
	".jpg":   "image/jpeg",
	".jpeg":  "image/jpeg",
	".webp":  "image/webp",
	".gif":   "image/gif",
	".ico":   "image/x-icon",
	".svg":   "image/svg+xml",
	".wasm":  "application/wasm",
	".txt":   "text/plain; charset=utf-8",
	".md":    "text/markdown; charset=utf-8",
	".wgsl":  "text/plain; charset=utf-8",
	".woff2": "font/woff2",
}

// contentType returns the Content-Type for a file name: from contentTypes,
// else application/octet-stream.
func contentType(name string) string {
	if ct, ok := contentTypes[strings.ToLower(path.Ext(name))]; ok {
		return ct
	}
	return "application/octet-stream"
}

// serveStatic answers a path of the page: "/" is index.html, a folder's
// URL with a trailing slash its index.html (without one, a redirect there),
// anything else a file of WebDir. Hidden names, "..", and
// anything that is not a regular file answer 404.
func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request, segs []string) {
	if s.cfg.WebDir == "" {
		http.NotFound(w, r)
		return
	}
	folder := len(segs) == 0 || segs[len(segs)-1] == ""
	if folder {
		segs = append(segs[:max(len(segs)-1, 0)], "index.html")
	}
	if !plainPath(segs) {
		http.NotFound(w, r)
		return
	}
	name := filepath.Join(append([]string{s.cfg.WebDir}, segs...)...)
	if fi, err := os.Stat(name); err == nil && fi.IsDir() && !folder {
		// As file servers do: a folder's URL ends in a slash, so that the
		// relative links of its index.html resolve inside it.
		http.Redirect(w, r, r.URL.EscapedPath()+"/", http.StatusMovedPermanently)
		return
	}
	s.serveFile(w, r, name)
}

// serveFile answers with one regular file, with its content type, Range
// and conditional-request support; a missing file or a folder answers 404.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	f, err := os.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", contentType(name))
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// serveWASM answers /tgate.wasm: gzip-compressed when the request accepts
// it, the file as it is otherwise, and 503 with wasmMissing while it is not
// built.
func (s *Server) serveWASM(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Vary", "Accept-Encoding")
	c, err := s.wasm.load(s.cfg.WASM)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && c.size == 0) {
		http.Error(w, wasmMissing, http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		http.Error(w, "tgate.wasm: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "application/wasm")
	if httpenc.AcceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		h.Set("ETag", `"`+c.sum+`-gzip"`)
		http.ServeContent(w, r, "", c.mod, bytes.NewReader(c.gz))
		return
	}
	h.Set("ETag", `"`+c.sum+`"`)
	s.serveFileAs(w, r, s.cfg.WASM)
}

// serveFileAs answers with a file's bytes under the headers already set.
func (s *Server) serveFileAs(w http.ResponseWriter, r *http.Request, name string) {
	f, err := os.Open(name)
	if err != nil {
		http.Error(w, wasmMissing, http.StatusServiceUnavailable)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// wasmCache holds the engine's sha256 and its gzip-compressed bytes, for
// one size and modification time of the file.
type wasmCache struct {
	mu sync.Mutex
	c  *wasmCopy
}

// wasmCopy is one compressed copy of the engine.
type wasmCopy struct {
	size int64
	mod  time.Time
	sum  string // sha256 of the uncompressed file, hex
	gz   []byte
}

// load returns the compressed copy of the file at name, compressing it
// again only when its size or modification time has changed.
func (c *wasmCache) load(name string) (*wasmCopy, error) {
	if name == "" {
		return nil, fs.ErrNotExist
	}
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil && c.c.size == fi.Size() && c.c.mod.Equal(fi.ModTime()) {
		return c.c, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(zw, sum), f)
	if err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	c.c = &wasmCopy{size: n, mod: fi.ModTime(), sum: hex.EncodeToString(sum.Sum(nil)), gz: buf.Bytes()}
	return c.c, nil
}
