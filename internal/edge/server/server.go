// Package server is the Worker's HTTP handler: it routes each request to
// the hosting of the page, the model proxy or the share previews, and
// runs each flow against small interfaces for what the platform provides
// (the static assets, the network, the edge cache, the R2 bucket and the
// KV store). web/worker implements those interfaces on Cloudflare Workers;
// the tests here implement them in memory, so every flow runs natively.
//
// Routes:
//
//	GET|HEAD /hf/<owner>/<name>/resolve/<rev>/<path>   model files (package proxy)
//	GET|HEAD /hf/api/models/<owner>/<name>[/revision/<rev>]
//	GET|HEAD /<owner>/<name>/resolve/<rev>/<path>      the same, in the Hub's own layout,
//	GET|HEAD /api/models/<owner>/<name>[...]           so the Worker's origin is a hub too
//	GET      /api/local-models                         the allow-list's repositories
//	POST     /api/share                                a PNG to share (package share)
//	GET      /s/<id>, /s/<id>/image.png, /s/<id>/card.png
//	GET      /api/health
//	GET|HEAD anything else                             the site (package site)
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tgate-web/tgate/internal/edge/proxy"
	"github.com/tgate-web/tgate/internal/edge/ratelimit"
	"github.com/tgate-web/tgate/internal/edge/site"
)

// Fetcher sends one HTTP request and returns the answer as it is: it does
// not follow redirects.
type Fetcher interface {
	Fetch(ctx context.Context, req *http.Request) (*http.Response, error)
}

// Cache is the edge cache (the Workers Cache API).
type Cache interface {
	// Match returns the answer stored under key (an absolute URL), as a
	// 206 for a Range request, or nil when there is none.
	Match(ctx context.Context, key, rangeHeader string) (*http.Response, error)
	// Put stores a complete 200 answer under key, reading its body to the
	// end before returning.
	Put(ctx context.Context, key string, resp *http.Response) error
}

// Object is one object read from the bucket.
type Object struct {
	Body        io.ReadCloser
	Size        int64
	ContentType string
}

// Bucket is the object store (R2).
type Bucket interface {
	// Get returns the object under key, or nil when there is none.
	Get(ctx context.Context, key string) (*Object, error)
	// Put stores data under key.
	Put(ctx context.Context, key string, data []byte, contentType string) error
}

// Config holds the Worker's settings.
type Config struct {
	Proxy *proxy.Config
	// ShareLimit uploads per ShareWindow per client.
	ShareLimit  int
	ShareWindow time.Duration
	// NoEdgeCache turns the proxy's edge cache off (EDGE_CACHE=off).
	NoEdgeCache bool
}

// Defaults of the share rate limit.
const (
	DefaultShareLimit  = 20
	DefaultShareWindow = time.Hour
)

// ConfigFromEnv reads the settings from the Worker's variables: ORIGIN,
// ALLOW and REDIRECT_HOSTS (package proxy), CACHE_MAX (bytes),
// EDGE_CACHE ("off" turns the edge cache off), SHARE_LIMIT (uploads) and
// SHARE_WINDOW (seconds).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	p, err := proxy.ParseConfig(getenv("ORIGIN"), getenv("ALLOW"), getenv("REDIRECT_HOSTS"))
	if err != nil {
		return Config{}, err
	}
	c := Config{Proxy: p, ShareLimit: DefaultShareLimit, ShareWindow: DefaultShareWindow}
	if v := strings.TrimSpace(getenv("CACHE_MAX")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return Config{}, fmt.Errorf("CACHE_MAX %q: want a byte count", v)
		}
		p.MaxCache = n
	}
	switch v := strings.ToLower(strings.TrimSpace(getenv("EDGE_CACHE"))); v {
	case "", "on", "true", "1":
	case "off", "false", "0":
		c.NoEdgeCache = true
	default:
		return Config{}, fmt.Errorf("EDGE_CACHE %q: want on or off", v)
	}
	if v := strings.TrimSpace(getenv("SHARE_LIMIT")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return Config{}, fmt.Errorf("SHARE_LIMIT %q: want a positive number of uploads", v)
		}
		c.ShareLimit = n
	}
	if v := strings.TrimSpace(getenv("SHARE_WINDOW")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return Config{}, fmt.Errorf("SHARE_WINDOW %q: want a positive number of seconds", v)
		}
		c.ShareWindow = time.Duration(n) * time.Second
	}
	return c, nil
}

// Server is the Worker's handler.
type Server struct {
	Config
	// Assets serves the files of the site folder by path.
	Assets Fetcher
	// Origin reaches the network (the model origin).
	Origin Fetcher
	Cache  Cache
	Bucket Bucket
	// Counts is where the share rate limit keeps its counts (KV).
	Counts ratelimit.Store
	// Logf, when set, receives a line for each answer the Worker could
	// not give (5xx).
	Logf func(format string, args ...any)
	// Now returns the time; nil is time.Now.
	Now func() time.Time
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	switch {
	case strings.HasPrefix(p, proxy.Prefix):
		s.serveProxy(w, r, p)
	case len(segs) >= 3 && segs[0] == "api" && segs[1] == "models",
		len(segs) >= 5 && segs[2] == "resolve" && segs[0] != "v" && segs[0] != "s":
		// The Hub's layout at the root: the page's own origin as a hub.
		s.serveProxy(w, r, strings.TrimSuffix(proxy.Prefix, "/")+p)
	case p == "/api/share":
		s.serveUpload(w, r)
	case p == "/api/local-models":
		s.serveLocalModels(w, r)
	case p == "/api/health":
		s.writeJSON(w, r, http.StatusOK, map[string]any{"ok": true})
	case segs[0] == "api":
		s.writeError(w, r, http.StatusNotFound, "no such API")
	case segs[0] == "s" && p != "/s/":
		s.serveShare(w, r, segs[1:])
	default:
		s.serveSite(w, r)
	}
}

// serveLocalModels answers the models the Worker serves through its proxy
// as its own: the allow-list's single repositories, as the page's
// /api/local-models expects them (a JSON array of "owner/name").
func (s *Server) serveLocalModels(w http.ResponseWriter, r *http.Request) {
	repos := s.Proxy.Repos()
	if repos == nil {
		repos = []string{}
	}
	w.Header().Set("Cache-Control", "no-cache")
	s.writeJSON(w, r, http.StatusOK, repos)
}

// base returns the Worker's origin as the client reached it
// (scheme://host), for absolute links and cache keys.
func base(r *http.Request) string {
	if r.URL.IsAbs() && r.URL.Host != "" {
		return r.URL.Scheme + "://" + r.URL.Host
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// writeJSON answers with v as JSON and CORS headers.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // JSON, served as application/json and nosniff
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"error":"encoding the answer failed"}`)
	}
	data := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("X-Content-Type-Options", "nosniff")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-store")
	}
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(data)
	}
}

// writeError answers with {"error": msg}, which is what the Hub sends too,
// and logs server-side failures.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status >= 500 && s.Logf != nil {
		s.Logf("%s %s: %d %s", r.Method, r.URL.EscapedPath(), status, msg)
	}
	if status == http.StatusMethodNotAllowed && w.Header().Get("Allow") == "" {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, status, map[string]string{"error": msg})
}

// copyBody sends body as the answer's body (nothing for HEAD) and closes
// it. On the Workers runtime a body that came from a fetch, the cache or
// the bucket passes through as a stream without entering Go.
func copyBody(w http.ResponseWriter, r *http.Request, body io.ReadCloser) {
	if body == nil {
		return
	}
	defer body.Close()
	if r.Method == http.MethodHead {
		return
	}
	io.Copy(w, body)
}

// setHeaders copies h into the answer's headers.
func setHeaders(w http.ResponseWriter, h http.Header) {
	for k, v := range h {
		w.Header()[k] = v
	}
}

// now returns the current time.
func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// assetsHost is the host of requests to the asset store; only the path
// matters to it.
const assetsHost = "https://assets.invalid"

// serveSite answers a file of the site: GET and HEAD, with the headers of
// package site. The If-None-Match of the request is passed on (weak
// prefixes removed), so a file that has not changed is a 304.
func (s *Server) serveSite(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		s.writeError(w, r, http.StatusMethodNotAllowed, "the site answers GET and HEAD only")
		return
	}
	a, ok := site.Lookup(r.URL.EscapedPath())
	if !ok {
		s.notFound(w, r)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, assetsHost+escapePath(a.Path), nil)
	if err != nil {
		s.notFound(w, r)
		return
	}
	if inm := site.IfNoneMatch(r.Header); inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	resp, err := s.Assets.Fetch(r.Context(), req)
	if err != nil {
		s.writeError(w, r, http.StatusBadGateway, "the site's files cannot be read: "+err.Error())
		return
	}
	switch resp.StatusCode {
	case http.StatusOK:
		setHeaders(w, site.Headers(a, r.Header, resp.Header))
		w.WriteHeader(http.StatusOK)
		copyBody(w, r, resp.Body)
	case http.StatusNotModified:
		resp.Body.Close()
		h := site.Headers(a, r.Header, resp.Header)
		h.Del("Content-Encoding")
		h.Del("Content-Length")
		setHeaders(w, h)
		w.WriteHeader(http.StatusNotModified)
	case http.StatusNotFound:
		resp.Body.Close()
		s.notFound(w, r)
	default:
		resp.Body.Close()
		s.writeError(w, r, http.StatusBadGateway, "the site's files answered "+resp.Status)
	}
}

// notFound answers 404 in plain text.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusNotFound)
	if r.Method != http.MethodHead {
		w.Write([]byte("404 not found: " + r.URL.EscapedPath() + "\n"))
	}
}

// escapePath escapes each segment of a slash path.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}
