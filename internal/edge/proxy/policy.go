package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// DefaultOrigin is the origin the proxy fetches from when none is set.
const DefaultOrigin = "https://huggingface.co"

// DefaultMaxCache is the largest answer kept whole in the edge cache, in
// bytes (the Cache API's object limit on most plans). Larger files are
// streamed through without caching.
const DefaultMaxCache = 512 << 20

// Config is what the proxy may fetch.
type Config struct {
	// Origin is the model origin: scheme, host and optional base path,
	// such as https://huggingface.co or http://127.0.0.1:8080.
	Origin *url.URL
	// Allow lists the repositories served: "owner/name", "owner/*" for
	// every repository of an owner, or "*" for all. Matching ignores
	// case, as the Hub does. Empty allows none.
	Allow []string
	// RedirectHosts are the hosts besides the origin that redirects may
	// lead to (https only): "cdn.example.com", or ".example.com" for its
	// subdomains.
	RedirectHosts []string
	// MaxCache is the largest answer cached whole, in bytes.
	MaxCache int64
}

// ParseConfig reads the proxy's settings as the Worker's variables give
// them: origin (empty: DefaultOrigin) and two comma-separated lists.
// The origin must be an http(s) URL without userinfo, query or fragment.
func ParseConfig(origin, allow, redirectHosts string) (*Config, error) {
	if strings.TrimSpace(origin) == "" {
		origin = DefaultOrigin
	}
	u, err := url.Parse(strings.TrimSpace(origin))
	if err != nil {
		return nil, fmt.Errorf("ORIGIN %q: %v", origin, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("ORIGIN %q: want an http(s) URL such as %s, without userinfo, query or fragment", origin, DefaultOrigin)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	c := &Config{Origin: u, MaxCache: DefaultMaxCache}
	for _, a := range splitList(allow) {
		if a != "*" {
			owner, name, ok := strings.Cut(a, "/")
			if !ok || !idPart.MatchString(owner) || (name != "*" && !idPart.MatchString(name)) {
				return nil, fmt.Errorf("ALLOW entry %q: want owner/name, owner/* or *", a)
			}
		}
		c.Allow = append(c.Allow, a)
	}
	for _, h := range splitList(redirectHosts) {
		if strings.ContainsAny(h, "/:@ ") || strings.Trim(h, ".") == "" {
			return nil, fmt.Errorf("REDIRECT_HOSTS entry %q: want a host name such as cdn-lfs.hf.co or .hf.co", h)
		}
		c.RedirectHosts = append(c.RedirectHosts, strings.ToLower(h))
	}
	return c, nil
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty entries.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Allowed reports whether the allow-list names repo ("owner/name"),
// ignoring case.
func (c *Config) Allowed(repo string) bool {
	owner, _, _ := strings.Cut(repo, "/")
	for _, a := range c.Allow {
		if a == "*" || strings.EqualFold(a, repo) || strings.EqualFold(a, owner+"/*") {
			return true
		}
	}
	return false
}

// Repos returns the allow-list's entries that name one repository (no
// wildcards), as written: the models the Worker offers as its own.
func (c *Config) Repos() []string {
	var out []string
	for _, a := range c.Allow {
		if !strings.Contains(a, "*") {
			out = append(out, a)
		}
	}
	return out
}

// Exposed lists the response headers a page on another site may read:
// the Hub's own (sizes, sha256 ETags, commit, errors) and Range's.
const Exposed = "Content-Range, Content-Length, ETag, X-Linked-Etag, X-Linked-Size, " +
	"Accept-Ranges, X-Error-Code, X-Error-Message, X-Repo-Commit, X-Tgate-Cache"

// passed are the upstream response headers the proxy passes on; every
// other header (cookies, the CDN's own, Set-Cookie, Vary, ...) stays out.
var passed = []string{
	"Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag", "Last-Modified",
	"X-Repo-Commit", "X-Linked-Etag", "X-Linked-Size", "X-Error-Code", "X-Error-Message",
}

// fromFirstHop are the headers the Hub sends on the resolve URL's
// redirect that the final answer (the CDN's) lacks: they are kept from
// the first hop when the last one does not carry them.
var fromFirstHop = []string{"X-Repo-Commit", "X-Linked-Etag", "X-Linked-Size"}

// byteRange is the Range syntax passed upstream: bytes, one or more
// ranges, nothing else.
var byteRange = regexp.MustCompile(`^bytes=\s*(\d+-\d*|-\d+)(\s*,\s*(\d+-\d*|-\d+))*\s*$`)

// UpstreamHeaders returns the request headers sent to the origin for a
// client's request: its Range when well-formed, and nothing else (no
// Referer, no cookies, no Authorization, no client hints).
func UpstreamHeaders(client http.Header) http.Header {
	h := http.Header{}
	if r := client.Get("Range"); r != "" && byteRange.MatchString(r) {
		h.Set("Range", r)
	}
	return h
}

// ResponseHeaders returns the headers of the proxy's answer for a target:
// the passed headers of the last upstream answer (last), the Hub's
// headers from the first hop (first, the resolve URL's redirect; nil
// when there was none), CORS, and the proxy's Cache-Control for the
// status. When the upstream body was content-encoded the fetch API has
// already decoded it, so neither Content-Encoding nor the encoded
// Content-Length is passed.
func ResponseHeaders(t Target, status int, last, first http.Header) http.Header {
	h := http.Header{}
	encoded := last.Get("Content-Encoding") != "" && last.Get("Content-Encoding") != "identity"
	for _, k := range passed {
		if v := last.Get(k); v != "" && !(encoded && k == "Content-Length") {
			h.Set(k, v)
		}
	}
	if first != nil {
		for _, k := range fromFirstHop {
			if h.Get(k) == "" && first.Get(k) != "" {
				h.Set(k, first.Get(k))
			}
		}
	}
	h.Set("Cache-Control", CacheControl(t, status))
	h.Set("X-Content-Type-Options", "nosniff")
	CORS(h)
	return h
}

// CORS sets the headers that let pages on any site read the proxy's
// answers (the widget runs on other sites). No credentials are involved.
func CORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", Exposed)
}

// Preflight sets the headers of the answer to a CORS preflight (OPTIONS)
// for the proxy: GET and HEAD with a Range header.
func Preflight(h http.Header) {
	CORS(h)
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Range")
	h.Set("Access-Control-Max-Age", "86400")
}

// commitRev reports whether rev is a full commit sha, whose files never
// change.
var commitRev = regexp.MustCompile(`^[0-9a-f]{40}$`)

// CacheControl is the Cache-Control of an answer, which also sets how
// long the edge cache keeps it: a year (immutable) for files at a commit
// sha, ten minutes for files on a branch or tag, one minute for the model
// API, and no-store for anything but 200 and 206.
func CacheControl(t Target, status int) string {
	if status != http.StatusOK && status != http.StatusPartialContent {
		return "no-store"
	}
	switch {
	case t.Kind == File && commitRev.MatchString(t.Rev):
		return "public, max-age=31536000, immutable"
	case t.Kind == File:
		return "public, max-age=600"
	default:
		return "public, max-age=60"
	}
}

// Cacheable reports whether an upstream answer to a target is kept whole
// in the edge cache: a 200 to a plain GET (no Range) of a file, whose
// length is unknown or at most MaxCache. An answer of unknown length that
// turns out too large makes the cache refuse it; the caller then fetches
// again and streams.
func (c *Config) Cacheable(t Target, method string, rangeHeader string, status int, h http.Header) bool {
	if t.Kind != File || method != http.MethodGet || rangeHeader != "" || status != http.StatusOK {
		return false
	}
	if v := h.Get("Content-Length"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		return err == nil && n <= c.MaxCache
	}
	return true
}
