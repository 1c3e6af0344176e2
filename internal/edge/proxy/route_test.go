package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func testConfig(t *testing.T) *Config {
	t.Helper()
	c, err := ParseConfig("https://hub.example", "tgate/tiny-sd, stabilityai/*,Owner.X/Name_y", ".hf.co, cdn.example")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRouteAccepts(t *testing.T) {
	c := testConfig(t)
	cases := []struct {
		path, query      string
		kind             Kind
		repo, rev, file  string
		upstream, key    string
		method           string
		wantBlobsPassing bool
	}{
		{path: "/hf/tgate/tiny-sd/resolve/main/unet/config.json", kind: File, repo: "tgate/tiny-sd", rev: "main", file: "unet/config.json",
			upstream: "https://hub.example/tgate/tiny-sd/resolve/main/unet/config.json"},
		{path: "/hf/tgate/tiny-sd/resolve/main/model_index.json", method: "HEAD", kind: File, repo: "tgate/tiny-sd", rev: "main", file: "model_index.json",
			upstream: "https://hub.example/tgate/tiny-sd/resolve/main/model_index.json"},
		// A revision with slashes arrives as %2F and goes on as %2F.
		{path: "/hf/stabilityai/sd-turbo/resolve/refs%2Fpr%2F1/unet/config.json", kind: File, repo: "stabilityai/sd-turbo", rev: "refs/pr/1", file: "unet/config.json",
			upstream: "https://hub.example/stabilityai/sd-turbo/resolve/refs%2Fpr%2F1/unet/config.json"},
		// Spellings that decode alike share one key.
		{path: "/hf/tgate/tiny-sd/resolve/main/unet/%63onfig.json", kind: File, repo: "tgate/tiny-sd", rev: "main", file: "unet/config.json",
			upstream: "https://hub.example/tgate/tiny-sd/resolve/main/unet/config.json"},
		{path: "/hf/tgate/tiny-sd/resolve/main/a%20b.txt", kind: File, repo: "tgate/tiny-sd", rev: "main", file: "a b.txt",
			upstream: "https://hub.example/tgate/tiny-sd/resolve/main/a%20b.txt"},
		{path: "/hf/TGATE/Tiny-SD/resolve/main/.gitattributes", kind: File, repo: "TGATE/Tiny-SD", rev: "main", file: ".gitattributes",
			upstream: "https://hub.example/TGATE/Tiny-SD/resolve/main/.gitattributes"},
		{path: "/hf/Owner.X/Name_y/resolve/0123456789abcdef0123456789abcdef01234567/x.bin", kind: File, repo: "Owner.X/Name_y",
			rev: "0123456789abcdef0123456789abcdef01234567", file: "x.bin",
			upstream: "https://hub.example/Owner.X/Name_y/resolve/0123456789abcdef0123456789abcdef01234567/x.bin"},
		{path: "/hf/api/models/tgate/tiny-sd", kind: API, repo: "tgate/tiny-sd",
			upstream: "https://hub.example/api/models/tgate/tiny-sd"},
		{path: "/hf/api/models/tgate/tiny-sd/revision/main", query: "blobs=true&x=1", kind: API, repo: "tgate/tiny-sd", rev: "main",
			upstream: "https://hub.example/api/models/tgate/tiny-sd/revision/main?blobs=true"},
	}
	for _, tc := range cases {
		q, _ := url.ParseQuery(tc.query)
		m := tc.method
		if m == "" {
			m = "GET"
		}
		got, err := c.Route(m, tc.path, q)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if got.Kind != tc.kind || got.Repo != tc.repo || got.Rev != tc.rev || got.Path != tc.file || got.Upstream != tc.upstream {
			t.Errorf("%s: got %+v", tc.path, got)
		}
		if want := "/hf/" + strings.TrimPrefix(tc.upstream, "https://hub.example/"); got.Key != want {
			t.Errorf("%s: key %q, want %q", tc.path, got.Key, want)
		}
	}
}

func TestRouteRefuses(t *testing.T) {
	c := testConfig(t)
	cases := []struct {
		method, path string
		status       int
	}{
		// Methods.
		{"POST", "/hf/tgate/tiny-sd/resolve/main/model_index.json", 405},
		{"PUT", "/hf/tgate/tiny-sd/resolve/main/model_index.json", 405},
		{"DELETE", "/hf/api/models/tgate/tiny-sd", 405},
		// The allow-list.
		{"GET", "/hf/evil/model/resolve/main/model_index.json", 403},
		{"GET", "/hf/api/models/evil/model", 403},
		{"GET", "/hf/tgate/other/resolve/main/model_index.json", 403},
		// Traversal, raw and percent-encoded (once and twice), and
		// backslashes.
		{"GET", "/hf/tgate/tiny-sd/resolve/main/../../../etc/passwd", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/unet/../../x", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/%2e%2e/%2E%2E/secret", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/.%2e/x", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/%252e%252e/x", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/unet%2F..%2F..%2Fx", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/..%5c..%5cx", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/a\\b", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/..%2F..%2F/x", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/%2e%2e/x", 400},
		{"GET", "/hf/tgate/%2e%2e/resolve/main/x", 400},
		{"GET", "/hf/%2e%2e/tiny-sd/resolve/main/x", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/./x", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/x%00y", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/x%0d%0aHost:%20evil", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/%zz", 400},
		// Absolute URLs, userinfo and host tricks.
		{"GET", "/hf/http://evil.example/x/resolve/main/y", 404},
		{"GET", "/hf/https:%2F%2Fevil.example/x/resolve/main/y", 400},
		{"GET", "/hf//evil.example/resolve/main/x", 400},
		{"GET", "/hf/%2F%2Fevil.example/x/resolve/main/y", 400},
		{"GET", "/hf/user@evil.example/x/resolve/main/y", 400},
		{"GET", "/hf/tgate/tiny-sd@evil.example/resolve/main/y", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/@evil.example/x", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/x:8080", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/x%3Fa=b", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/x%23frag", 400},
		{"GET", "/hf/evil.example:443/x/resolve/main/y", 400},
		// Malformed forms.
		{"GET", "/hf/", 404},
		{"GET", "/hf/tgate/tiny-sd", 404},
		{"GET", "/hf/tgate/tiny-sd/tree/main/x", 404},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main//x", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve//x", 400},
		{"GET", "/hf/api/models/tgate/tiny-sd/tree/main", 404},
		{"GET", "/hf/api/models/tgate/tiny-sd/revision/..", 400},
		{"GET", "/hf/api/whoami", 404},
		{"GET", "/elsewhere", 404},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/" + strings.Repeat("a/", 17) + "x", 400},
		{"GET", "/hf/tgate/tiny-sd/resolve/main/" + strings.Repeat("a", 3000), 414},
	}
	for _, tc := range cases {
		_, err := c.Route(tc.method, tc.path, nil)
		if err == nil {
			t.Errorf("%s %s: accepted", tc.method, tc.path)
			continue
		}
		if got := StatusOf(err); got != tc.status {
			t.Errorf("%s %s: status %d (%v), want %d", tc.method, tc.path, got, err, tc.status)
		}
	}
}

func TestRouteStaysOnOrigin(t *testing.T) {
	c, err := ParseConfig("http://127.0.0.1:8080/mirror/", "*", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Route("GET", "/hf/a/b/resolve/main/c.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Upstream != "http://127.0.0.1:8080/mirror/a/b/resolve/main/c.json" {
		t.Errorf("upstream %q", got.Upstream)
	}
	u, _ := url.Parse(got.Upstream)
	if u.Host != "127.0.0.1:8080" {
		t.Errorf("host %q", u.Host)
	}
}

func TestNextHop(t *testing.T) {
	c := testConfig(t)
	cur := "https://hub.example/tgate/tiny-sd/resolve/main/unet/w.safetensors"
	ok := []struct {
		loc, want string
		same      bool
	}{
		{"/_lfs/tgate/tiny-sd/main/unet/w.safetensors", "https://hub.example/_lfs/tgate/tiny-sd/main/unet/w.safetensors", true},
		{"https://hub.example/api/resolve-cache/x", "https://hub.example/api/resolve-cache/x", true},
		{"https://cas-bridge.xethub.hf.co/xet/abc?X-Amz-Signature=1", "https://cas-bridge.xethub.hf.co/xet/abc?X-Amz-Signature=1", false},
		{"https://cdn.example/x#frag", "https://cdn.example/x", false},
	}
	for _, tc := range ok {
		got, same, err := c.NextHop(cur, tc.loc, 0)
		if err != nil || got != tc.want || same != tc.same {
			t.Errorf("%s: %q %v %v, want %q %v", tc.loc, got, same, err, tc.want, tc.same)
		}
	}
	bad := []string{
		"",
		"http://cdn.example/x",                // not https off the origin
		"https://evil.example/x",              // not configured
		"https://hf.co/x",                     // ".hf.co" is for subdomains only
		"https://evilhf.co/x",                 // not a subdomain
		"https://user:pw@hub.example/x",       // userinfo
		"https://cdn.example:8443/x",          // another port
		"http://hub.example/x",                // the origin's host, another scheme
		"//evil.example/x",                    // scheme-relative
		"http://169.254.169.254/latest/meta",  // metadata address
		"file:///etc/passwd",                  // another scheme
		"https://hub.example.evil.example/x",  // host prefix trick
		"https://hub.example@evil.example/x",  // userinfo trick
		"https://cdn.example\\@evil.example/", // backslash trick
	}
	for _, loc := range bad {
		if got, _, err := c.NextHop(cur, loc, 0); err == nil {
			t.Errorf("%q: followed to %q", loc, got)
		}
	}
	if _, _, err := c.NextHop(cur, "/x", MaxHops); err == nil {
		t.Error("hop past MaxHops followed")
	}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig("", "", "")
	if err != nil || c.Origin.String() != DefaultOrigin || len(c.Allow) != 0 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	if c.Allowed("tgate/tiny-sd") {
		t.Error("an empty allow-list allows")
	}
	for _, bad := range []string{"ftp://x", "https://u:p@hub.example", "https://hub.example?x=1", "hub.example", "https://"} {
		if _, err := ParseConfig(bad, "", ""); err == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
	for _, bad := range []string{"nope", "a/b/c", "*/x", "a/../b"} {
		if _, err := ParseConfig("", bad, ""); err == nil {
			t.Errorf("allow %q accepted", bad)
		}
	}
	for _, bad := range []string{"https://x", "a/b", ".", "x:1"} {
		if _, err := ParseConfig("", "", bad); err == nil {
			t.Errorf("redirect host %q accepted", bad)
		}
	}
	all, _ := ParseConfig("", "*", "")
	if !all.Allowed("any/thing") {
		t.Error("* does not allow everything")
	}
	c = testConfig(t)
	for repo, want := range map[string]bool{"tgate/tiny-sd": true, "TGATE/TINY-SD": true, "stabilityai/anything": true,
		"owner.x/name_y": true, "tgate/tiny-sd2": false, "stabilityai2/x": false} {
		if c.Allowed(repo) != want {
			t.Errorf("Allowed(%q) = %v", repo, !want)
		}
	}
}

func TestHeaders(t *testing.T) {
	c := testConfig(t)
	up := UpstreamHeaders(http.Header{"Range": {"bytes=0-0"}, "Referer": {"https://x.workers.dev/"}, "Cookie": {"a=b"}, "Authorization": {"Bearer x"}})
	if len(up) != 1 || up.Get("Range") != "bytes=0-0" {
		t.Errorf("upstream headers %v", up)
	}
	for _, r := range []string{"bytes=0-", "bytes=-500", "bytes=0-1, 5-9"} {
		if UpstreamHeaders(http.Header{"Range": {r}}).Get("Range") != r {
			t.Errorf("Range %q not passed", r)
		}
	}
	for _, r := range []string{"items=0-1", "bytes=a-b", "bytes=0-1\r\nX: y"} {
		if UpstreamHeaders(http.Header{"Range": {r}}).Get("Range") != "" {
			t.Errorf("Range %q passed", r)
		}
	}

	file, _ := c.Route("GET", "/hf/tgate/tiny-sd/resolve/main/unet/w.safetensors", nil)
	last := http.Header{"Content-Type": {"application/octet-stream"}, "Content-Length": {"10"}, "Etag": {`"abc"`},
		"Set-Cookie": {"x=y"}, "Server": {"cdn"}}
	first := http.Header{"X-Linked-Etag": {`"sha"`}, "X-Repo-Commit": {"c0ffee"}, "Location": {"/x"}}
	h := ResponseHeaders(file, 200, last, first)
	for k, v := range map[string]string{"Content-Length": "10", "Etag": `"abc"`, "X-Linked-Etag": `"sha"`, "X-Repo-Commit": "c0ffee",
		"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=600", "Set-Cookie": "", "Server": "", "Location": ""} {
		if h.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, h.Get(k), v)
		}
	}
	gz := ResponseHeaders(file, 200, http.Header{"Content-Encoding": {"gzip"}, "Content-Length": {"5"}}, nil)
	if gz.Get("Content-Length") != "" || gz.Get("Content-Encoding") != "" {
		t.Errorf("encoded answer: %v", gz)
	}
	if got := ResponseHeaders(file, 404, http.Header{}, nil).Get("Cache-Control"); got != "no-store" {
		t.Errorf("404 Cache-Control %q", got)
	}
	pinned, _ := c.Route("GET", "/hf/tgate/tiny-sd/resolve/0123456789abcdef0123456789abcdef01234567/x", nil)
	if got := CacheControl(pinned, 200); !strings.Contains(got, "immutable") {
		t.Errorf("commit Cache-Control %q", got)
	}

	if !c.Cacheable(file, "GET", "", 200, http.Header{"Content-Length": {"100"}}) {
		t.Error("small file not cacheable")
	}
	if c.Cacheable(file, "GET", "", 200, http.Header{"Content-Length": {"600000000"}}) {
		t.Error("file over MaxCache cacheable")
	}
	if c.Cacheable(file, "GET", "bytes=0-0", 200, http.Header{}) || c.Cacheable(file, "HEAD", "", 200, http.Header{}) ||
		c.Cacheable(file, "GET", "", 404, http.Header{}) {
		t.Error("range, HEAD or error answer cacheable")
	}
	api, _ := c.Route("GET", "/hf/api/models/tgate/tiny-sd", nil)
	if c.Cacheable(api, "GET", "", 200, http.Header{}) {
		t.Error("API answer cacheable")
	}
}
