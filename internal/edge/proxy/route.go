// Package proxy decides what the Worker's model proxy may fetch. It turns a
// request path under /hf/ into one upstream URL on the configured origin
// (the Hugging Face Hub by default), or refuses it with a 4xx status:
//
//	/hf/<owner>/<name>/resolve/<rev>/<path>        a file of a repository
//	/hf/api/models/<owner>/<name>                  the model API (file list)
//	/hf/api/models/<owner>/<name>/revision/<rev>
//
// so that a page using https://<worker>/hf as its hub reaches exactly what
// it would reach on the Hub. The upstream URL is built from the configured
// origin and the checked path segments only: nothing in a request can name
// another host, a scheme, userinfo, a port, or climb out of the repository
// ("..", raw or percent-encoded). Only repositories on the allow-list are
// served. Redirects the origin answers with are followed by the Worker
// itself, to the origin or to hosts configured for that (NextHop).
//
// The package is plain Go: the Worker (web/worker) does the fetching and
// uses Route, NextHop and the header functions of headers.go.
package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Prefix is the path under which the Worker serves the proxy.
const Prefix = "/hf/"

// Kind says which of the Hub's endpoints a request names.
type Kind int

const (
	// File is /<repo>/resolve/<rev>/<path>.
	File Kind = iota + 1
	// API is /api/models/<repo>[/revision/<rev>].
	API
)

// Target is a checked proxy request.
type Target struct {
	Kind Kind
	// Repo is "owner/name" as the request spelled it.
	Repo string
	// Rev is the revision ("" for the API without /revision/).
	Rev string
	// Path is the file's slash path inside the repository (File only).
	Path string
	// Upstream is the absolute URL fetched on the origin.
	Upstream string
	// Key is the path and query of the canonical proxy URL, escaped the
	// one way this package escapes it: the edge cache keys answers by it
	// (on the Worker's own host), so that spellings of one file that
	// decode alike share one cache entry.
	Key string
}

// Error is a refused request: the HTTP status to answer with and why.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// refuse returns an *Error with the status and a formatted message.
func refuse(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// StatusOf returns the HTTP status an error from this package asks for:
// its own for an *Error, 502 Bad Gateway for anything else.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusBadGateway
}

// maxPath bounds the length of an escaped request path.
const maxPath = 2048

// maxDepth bounds the number of segments of a file path.
const maxDepth = 16

// idPart is one half of a repository id, as the Hub allows it.
var idPart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$`)

// Route checks a request for the proxy and returns its target. method is
// the request's method, escapedPath its path as it came in (still
// percent-encoded: url.URL.EscapedPath) and query its parsed query.
//
// GET and HEAD are served (OPTIONS is the caller's preflight); any other
// method is 405. A path that is not one of the three forms, or holds an
// empty, ".", ".." or percent-encoded-slash segment (except inside a
// revision), a backslash, a control character, '%' once decoded, or any
// of ":@?#" is 400; a repository off the allow-list is 403.
func (c *Config) Route(method, escapedPath string, query url.Values) (Target, error) {
	if method != http.MethodGet && method != http.MethodHead {
		return Target{}, refuse(http.StatusMethodNotAllowed, "the model proxy answers GET and HEAD only, not %s", method)
	}
	if len(escapedPath) > maxPath {
		return Target{}, refuse(http.StatusRequestURITooLong, "path longer than %d bytes", maxPath)
	}
	rest, ok := strings.CutPrefix(escapedPath, Prefix)
	if !ok {
		return Target{}, refuse(http.StatusNotFound, "not a model proxy path")
	}
	raw := strings.Split(rest, "/")
	segs := make([]string, len(raw))
	for i, r := range raw {
		s, err := url.PathUnescape(r)
		if err != nil {
			return Target{}, refuse(http.StatusBadRequest, "bad percent-encoding in path segment %q", r)
		}
		segs[i] = s
	}

	var t Target
	switch {
	case len(segs) >= 4 && segs[0] == "api" && segs[1] == "models":
		t.Kind = API
		switch {
		case len(segs) == 4:
		case len(segs) == 6 && segs[4] == "revision":
			t.Rev = segs[5]
		default:
			return Target{}, refuse(http.StatusNotFound, "the model proxy serves /hf/api/models/<owner>/<name>[/revision/<rev>] only")
		}
		t.Repo = segs[2] + "/" + segs[3]
	case len(segs) >= 5 && segs[2] == "resolve":
		t.Kind = File
		t.Repo = segs[0] + "/" + segs[1]
		t.Rev = segs[3]
		t.Path = strings.Join(segs[4:], "/")
		if len(segs)-4 > maxDepth {
			return Target{}, refuse(http.StatusBadRequest, "file path deeper than %d folders", maxDepth)
		}
		for _, s := range segs[4:] {
			if err := checkSegment(s, "file path"); err != nil {
				return Target{}, err
			}
		}
	default:
		return Target{}, refuse(http.StatusNotFound, "the model proxy serves /hf/<owner>/<name>/resolve/<rev>/<path> and /hf/api/models/<owner>/<name>")
	}

	owner, name, _ := strings.Cut(t.Repo, "/")
	for _, p := range []string{owner, name} {
		if !idPart.MatchString(p) || strings.Contains(p, "..") {
			return Target{}, refuse(http.StatusBadRequest, "%q is not a repository id (owner/name)", t.Repo)
		}
	}
	if t.Rev != "" || t.Kind == File {
		// A revision may hold slashes (refs/pr/1), sent as %2F.
		for _, s := range strings.Split(t.Rev, "/") {
			if err := checkSegment(s, "revision"); err != nil {
				return Target{}, err
			}
		}
	}
	if !c.Allowed(t.Repo) {
		return Target{}, refuse(http.StatusForbidden, "repository %s is not on this proxy's allow-list", t.Repo)
	}

	var up, key strings.Builder
	switch t.Kind {
	case File:
		up.WriteString(escapeRepo(t.Repo) + "/resolve/" + url.PathEscape(t.Rev) + "/" + escapePath(t.Path))
	case API:
		up.WriteString("api/models/" + escapeRepo(t.Repo))
		if t.Rev != "" {
			up.WriteString("/revision/" + url.PathEscape(t.Rev))
		}
		// The only query the engine sends: the sizes and sha256 of files.
		if b := query.Get("blobs"); b == "true" || b == "1" {
			up.WriteString("?blobs=true")
		}
	}
	key.WriteString(Prefix + up.String())
	upstream, err := c.onOrigin(up.String())
	if err != nil {
		return Target{}, err
	}
	t.Upstream, t.Key = upstream, key.String()
	return t, nil
}

// checkSegment refuses a decoded path segment that could change which
// resource is meant: empty, ".", "..", anything holding "..", a slash
// (from %2F), a backslash, a control character, '%' (double encoding), or
// one of ":@?#".
func checkSegment(s, what string) error {
	switch {
	case s == "":
		return refuse(http.StatusBadRequest, "empty segment in the %s", what)
	case strings.Contains(s, ".."), s == ".":
		return refuse(http.StatusBadRequest, "dot segment %q in the %s", s, what)
	case strings.ContainsAny(s, "/\\%:@?#"):
		return refuse(http.StatusBadRequest, "segment %q of the %s holds a character the proxy does not pass on", s, what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return refuse(http.StatusBadRequest, "control character in the %s", what)
		}
	}
	return nil
}

// escapeRepo escapes the two halves of a checked repository id.
func escapeRepo(repo string) string {
	owner, name, _ := strings.Cut(repo, "/")
	return url.PathEscape(owner) + "/" + url.PathEscape(name)
}

// escapePath escapes each segment of a slash path.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// onOrigin joins a relative, already escaped path (and query) to the
// origin and checks that the result is still on the origin: same scheme
// and host, no userinfo, the origin's path as its prefix.
func (c *Config) onOrigin(rel string) (string, error) {
	s := strings.TrimSuffix(c.Origin.String(), "/") + "/" + rel
	u, err := url.Parse(s)
	if err != nil || !c.sameOrigin(u) || !strings.HasPrefix(u.EscapedPath(), strings.TrimSuffix(c.Origin.EscapedPath(), "/")+"/") {
		return "", refuse(http.StatusBadRequest, "path does not stay on the model origin")
	}
	return s, nil
}

// sameOrigin reports whether u has the origin's scheme and host (port
// included) and no userinfo.
func (c *Config) sameOrigin(u *url.URL) bool {
	return u.User == nil && strings.EqualFold(u.Scheme, c.Origin.Scheme) && strings.EqualFold(u.Host, c.Origin.Host)
}

// MaxHops is how many redirects NextHop follows for one request.
const MaxHops = 5

// NextHop returns the URL a redirect from the origin leads to: location
// resolved against the URL that answered (cur). It is followed when it is
// http(s) on the origin itself, or https on a host of
// Config.RedirectHosts (the Hub's CDN hosts for large files); anything
// else, or a hop past MaxHops, is an error (502): the proxy never fetches
// a host it was not configured for. sameOrigin reports whether the hop
// stays on the origin, so that credentials meant for the origin are never
// sent elsewhere.
func (c *Config) NextHop(cur, location string, hop int) (next string, sameOrigin bool, err error) {
	if hop >= MaxHops {
		return "", false, fmt.Errorf("more than %d redirects from the model origin", MaxHops)
	}
	base, err := url.Parse(cur)
	if err != nil {
		return "", false, err
	}
	if location == "" {
		return "", false, errors.New("the model origin answered a redirect without a Location")
	}
	loc, err := url.Parse(location)
	if err != nil {
		return "", false, fmt.Errorf("the model origin redirected to a bad URL: %v", err)
	}
	u := base.ResolveReference(loc)
	u.Fragment = ""
	if c.sameOrigin(u) {
		return u.String(), true, nil
	}
	if u.User == nil && u.Scheme == "https" && c.redirectHostAllowed(u.Hostname()) && u.Port() == "" {
		return u.String(), false, nil
	}
	return "", false, fmt.Errorf("the model origin redirected to %s://%s, which this proxy does not fetch from (REDIRECT_HOSTS)", u.Scheme, u.Host)
}

// redirectHostAllowed reports whether host is one of RedirectHosts, or a
// subdomain of an entry written ".example.com".
func (c *Config) redirectHostAllowed(host string) bool {
	host = strings.ToLower(host)
	for _, h := range c.RedirectHosts {
		if strings.HasPrefix(h, ".") {
			if strings.HasSuffix(host, h) && len(host) > len(h) {
				return true
			}
		} else if host == h {
			return true
		}
	}
	return false
}

// IsRedirect reports whether an upstream status is a redirect the Worker
// follows itself.
func IsRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}
