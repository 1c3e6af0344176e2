package server

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/tgate-web/tgate/internal/edge/proxy"
)

// Values of the X-Tgate-Cache header on proxy answers.
const (
	cacheHit    = "hit"    // from the edge cache
	cacheMiss   = "miss"   // fetched, stored whole, then answered from the cache
	cacheBypass = "bypass" // fetched and streamed (Range, HEAD, API, errors, too large)
)

// serveProxy answers a model proxy request whose path (escaped) starts
// with /hf/. A file GET is answered from the edge cache when it is there
// (a Range request as a 206 cut from the cached whole); otherwise it is
// fetched from the origin, following redirects, and a whole 200 that may
// be cached is stored in the cache first and then answered from it, so
// the stored copy is complete before the client's answer starts. Range
// requests that miss are passed to the origin as they are and not
// cached.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request, path string) {
	if r.Method == http.MethodOptions {
		proxy.Preflight(w.Header())
		w.WriteHeader(http.StatusNoContent)
		return
	}
	t, err := s.Proxy.Route(r.Method, path, r.URL.Query())
	if err != nil {
		proxy.CORS(w.Header())
		s.writeError(w, r, proxy.StatusOf(err), err.Error())
		return
	}
	ctx := r.Context()
	up := proxy.UpstreamHeaders(r.Header)
	rng := up.Get("Range")
	key := base(r) + t.Key
	cache := s.edgeCache(r)

	if t.Kind == proxy.File && cache != nil {
		// HEAD is answered from a cached GET's headers.
		m, err := cache.Match(ctx, key, rng)
		if err == nil && m != nil {
			s.answer(w, r, m.StatusCode, m, cacheHit)
			return
		}
	}

	resp, first, err := s.fetchUpstream(ctx, t, r.Method, up)
	if err != nil {
		proxy.CORS(w.Header())
		s.writeError(w, r, proxy.StatusOf(err), "model origin: "+err.Error())
		return
	}
	h := proxy.ResponseHeaders(t, resp.StatusCode, resp.Header, first)
	if cache != nil && s.Proxy.Cacheable(t, r.Method, rng, resp.StatusCode, h) {
		stored := &http.Response{StatusCode: http.StatusOK, Header: h.Clone(), Body: resp.Body, ContentLength: contentLength(h)}
		if err := cache.Put(ctx, key, stored); err == nil {
			if m, err := cache.Match(ctx, key, ""); err == nil && m != nil {
				s.answer(w, r, m.StatusCode, m, cacheMiss)
				return
			}
		} else if s.Logf != nil {
			s.Logf("edge cache refused %s: %v", t.Key, err)
		}
		// The body went to the cache: fetch again and stream.
		resp.Body.Close()
		if resp, first, err = s.fetchUpstream(ctx, t, r.Method, up); err != nil {
			proxy.CORS(w.Header())
			s.writeError(w, r, proxy.StatusOf(err), "model origin: "+err.Error())
			return
		}
		h = proxy.ResponseHeaders(t, resp.StatusCode, resp.Header, first)
	}
	resp.Header = h
	s.answer(w, r, resp.StatusCode, resp, cacheBypass)
}

// edgeCache returns the cache the proxy may use for a request, or nil:
// none when it is turned off, and none on *.workers.dev, where the Cache
// API stores nothing (it works on custom domains only), so that a put
// would only cost a second fetch.
func (s *Server) edgeCache(r *http.Request) Cache {
	if s.Cache == nil || s.NoEdgeCache {
		return nil
	}
	host := r.Host
	if r.URL.IsAbs() {
		host = r.URL.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.HasSuffix(strings.ToLower(host), ".workers.dev") {
		return nil
	}
	return s.Cache
}

// answer sends an upstream or cached answer with its headers, CORS and
// X-Tgate-Cache; a cached answer whose ETag the client already has is a
// 304.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, status int, resp *http.Response, cache string) {
	setHeaders(w, resp.Header)
	proxy.CORS(w.Header())
	w.Header().Set("X-Tgate-Cache", cache)
	if etag := resp.Header.Get("ETag"); etag != "" && status == http.StatusOK && r.Header.Get("Range") == "" &&
		etagMatch(r.Header.Get("If-None-Match"), etag) {
		resp.Body.Close()
		w.Header().Del("Content-Length")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(status)
	copyBody(w, r, resp.Body)
}

// fetchUpstream fetches a target from the origin with the given method and
// headers, following redirects as proxy.NextHop allows. It returns the
// last answer and the headers of the first redirect (nil when there was
// none), whose Hub headers the answer keeps.
func (s *Server) fetchUpstream(ctx context.Context, t proxy.Target, method string, h http.Header) (*http.Response, http.Header, error) {
	u := t.Upstream
	var first http.Header
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return nil, nil, err
		}
		req.Header = h.Clone()
		resp, err := s.Origin.Fetch(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		if !proxy.IsRedirect(resp.StatusCode) {
			return resp, first, nil
		}
		resp.Body.Close()
		if first == nil {
			first = resp.Header
		}
		next, _, err := s.Proxy.NextHop(u, resp.Header.Get("Location"), hop)
		if err != nil {
			return nil, nil, err
		}
		u = next
	}
}

// contentLength returns the Content-Length of h, or -1.
func contentLength(h http.Header) int64 {
	n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// etagMatch reports whether an If-None-Match value names etag (weak
// comparison, as for GET).
func etagMatch(ifNoneMatch, etag string) bool {
	if ifNoneMatch == "" {
		return false
	}
	strip := func(e string) string { return strings.TrimPrefix(strings.TrimSpace(e), "W/") }
	want := strip(etag)
	for _, e := range strings.Split(ifNoneMatch, ",") {
		if e = strings.TrimSpace(e); e == "*" || strip(e) == want {
			return true
		}
	}
	return false
}
