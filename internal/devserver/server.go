// Package devserver is the development server of tgate-web. It serves the
// page and the wasm engine, and serves local model folders in the Hugging
// Face Hub's own layout and manner, so the browser engine's Hub path runs
// offline exactly as it runs against huggingface.co.
//
// # The site
//
//   - "/" is WebDir/index.html; every other path names a file of WebDir (a
//     folder's URL ending in "/" answers with its index.html, without the
//     slash it redirects there; there are no directory listings, and no path
//     may climb out of WebDir or name a hidden file).
//   - "/tgate.wasm" is Config.WASM as application/wasm, gzip-compressed when
//     the request accepts gzip (compressed once, kept until the file's size or
//     modification time changes). While the engine is not built it answers
//     503 with a message saying how to build it.
//   - "/wasm_exec.js" is the Go toolchain's JavaScript support file.
//
// # Models, as the Hub serves them
//
// ModelsDir/<owner>/<name> is the repository "owner/name". Its files are every
// regular file below that folder (symbolic links to files are followed, so a
// Hub cache snapshot folder works), except names that start with '.'.
//
//   - GET|HEAD /<owner>/<name>/resolve/<rev>/<path> answers a file. rev is
//     "main" or the repository's sha. Small files are served there, with
//     ETag set to their git blob sha1 and Range support. "LFS" files (weights
//     by extension, or anything over 10 MiB) answer 302 Found to
//     /_lfs/<owner>/<name>/<rev>/<path> with X-Linked-Etag (the quoted
//     sha256 of the bytes) and X-Linked-Size; that URL serves the bytes with
//     ETag set to the sha256, Range requests and HEAD. Every resolve answer
//     carries X-Repo-Commit.
//   - GET /api/models/<owner>/<name> and .../revision/<rev> answer the model
//     info JSON: _id, id, modelId, sha and siblings (rfilename); with
//     ?blobs=true each sibling also carries size, blobId (git's blob sha1: of
//     the file, or for LFS files of their pointer, as the Hub does) and, for
//     LFS files, lfs {sha256, size, pointerSize}.
//   - Errors are JSON {"error": "..."} with X-Error-Code RepoNotFound,
//     EntryNotFound or RevisionNotFound, as the Hub sends them.
//   - GET /api/local-models lists the repositories under ModelsDir that hold a
//     model_index.json, as a JSON array of "owner/name".
//
// The repository sha is a stable 40-hex value derived from the file listing
// (names, sizes and modification times), so it changes when a file does.
// sha256 sums are computed on first use and kept while the file's size and
// modification time stay the same.
//
// Every answer carries Cache-Control: no-cache and the CORS headers a page
// from another origin needs (Access-Control-Allow-Origin: *, and the Hub's
// headers exposed); OPTIONS preflights answer 204.
//
// # Test hooks
//
// CutOnce, FailOnce, Stats and Requests let tests break a download halfway,
// fail a request, and count how many times a file's bytes were fetched.
package devserver

import (
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tgate-web/tgate/internal/wasmexec"
)

// Config says what a Server serves.
type Config struct {
	// WebDir holds the page's static files (web/). Empty: no static pages.
	WebDir string
	// WASM is the path of the built engine (bin/tgate.wasm).
	WASM string
	// WasmExec is the path of the toolchain's wasm_exec.js; empty: found
	// under `go env GOROOT`.
	WasmExec string
	// ModelsDir holds model repositories as <owner>/<name> folders. Empty or
	// missing: no models.
	ModelsDir string
	// Log, when set, receives one line per request that is not for a
	// static file of the site.
	Log *log.Logger
}

// Server is the development server; it is an http.Handler.
type Server struct {
	cfg      Config
	wasmExec string
	wasm     wasmCache
	hashes   hashCache
	faults   faults
}

// New checks cfg and returns a Server for it. WebDir, when given, must be a
// folder; wasm_exec.js must be found. A missing WASM file is not an error:
// it is built while the server runs.
func New(cfg Config) (*Server, error) {
	if cfg.WebDir != "" {
		fi, err := os.Stat(cfg.WebDir)
		if err != nil {
			return nil, fmt.Errorf("devserver: web folder: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("devserver: web folder %s is not a folder", cfg.WebDir)
		}
	}
	if cfg.ModelsDir != "" {
		if fi, err := os.Stat(cfg.ModelsDir); err == nil && !fi.IsDir() {
			return nil, fmt.Errorf("devserver: models folder %s is not a folder", cfg.ModelsDir)
		}
	}
	wasmExec := cfg.WasmExec
	if wasmExec == "" {
		p, err := wasmexec.Find()
		if err != nil {
			return nil, fmt.Errorf("devserver: %w", err)
		}
		wasmExec = p
	} else if _, err := os.Stat(wasmExec); err != nil {
		return nil, fmt.Errorf("devserver: wasm_exec.js: %w", err)
	}
	return &Server{cfg: cfg, wasmExec: wasmExec}, nil
}

// exposed lists the response headers a cross-origin page may read.
const exposed = "Content-Range, Content-Length, ETag, X-Linked-Etag, X-Linked-Size, " +
	"Accept-Ranges, X-Error-Code, X-Error-Message, X-Repo-Commit"

// ServeHTTP answers one request: it sets the headers every answer carries,
// answers preflights, refuses methods other than GET and HEAD, and routes
// the rest.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", exposed)

	segs, ok := splitPath(r.URL.EscapedPath())
	hub := ok && isHubPath(segs)
	if hub && s.cfg.Log != nil {
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			v := recover()
			s.logRequest(r, sw, time.Since(start), v != nil)
			if v != nil {
				panic(v)
			}
		}()
		w = sw
	}

	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Headers", "Range, Content-Type")
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !ok {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}

	switch {
	case len(segs) == 2 && segs[0] == "api" && segs[1] == "local-models":
		s.serveLocalModels(w, r)
	case len(segs) >= 1 && segs[0] == "api":
		s.serveModelAPI(w, r, segs[1:])
	case len(segs) >= 1 && segs[0] == "_lfs":
		s.serveLFS(w, r, segs[1:])
	case hub:
		s.serveResolve(w, r, segs)
	case len(segs) == 1 && segs[0] == "tgate.wasm":
		s.serveWASM(w, r)
	case len(segs) == 1 && segs[0] == "wasm_exec.js":
		s.serveFile(w, r, s.wasmExec)
	default:
		s.serveStatic(w, r, segs)
	}
}

// isHubPath reports whether a path's segments belong to the Hub routes: the
// API, the LFS bytes, or a resolve URL.
func isHubPath(segs []string) bool {
	if len(segs) == 0 {
		return false
	}
	return segs[0] == "api" || segs[0] == "_lfs" || (len(segs) >= 5 && segs[2] == "resolve")
}

// splitPath splits an escaped URL path into its unescaped segments. A
// segment that contains '/' once unescaped (from %2F) stays one segment, so
// routes see the Hub's own revision names; checking segments for files is
// plainName's job. An empty path or "/" gives no segments.
func splitPath(escaped string) ([]string, bool) {
	p := strings.TrimPrefix(escaped, "/")
	if p == "" {
		return nil, true
	}
	raw := strings.Split(p, "/")
	segs := make([]string, len(raw))
	for i, r := range raw {
		u, err := url.PathUnescape(r)
		if err != nil {
			return nil, false
		}
		segs[i] = u
	}
	return segs, true
}

// plainName reports whether a path segment names a file or folder that may
// be served: not empty, not "." or "..", not hidden, and free of slashes,
// backslashes and NUL bytes.
func plainName(seg string) bool {
	return seg != "" && seg[0] != '.' && !strings.ContainsAny(seg, "/\\\x00")
}

// plainPath reports whether every segment is a plainName.
func plainPath(segs []string) bool {
	for _, s := range segs {
		if !plainName(s) {
			return false
		}
	}
	return len(segs) > 0
}

// statusWriter records the status code and body size of an answer, for the
// request log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

// WriteHeader records the status and passes it on.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write counts the body bytes and passes them on.
func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequest writes one line for an answered (or aborted) request.
func (s *Server) logRequest(r *http.Request, w *statusWriter, d time.Duration, aborted bool) {
	line := fmt.Sprintf("%s %s %d %dB %s", r.Method, r.URL.RequestURI(), w.status, w.bytes, d.Round(time.Microsecond))
	if rg := r.Header.Get("Range"); rg != "" {
		line += " range=" + rg
	}
	if aborted {
		line += " (connection cut)"
	}
	s.cfg.Log.Print(line)
}
