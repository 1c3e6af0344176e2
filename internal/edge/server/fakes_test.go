package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tgate-web/tgate/fixture"
	"github.com/tgate-web/tgate/internal/devserver"
	"github.com/tgate-web/tgate/internal/edge/ratelimit"
	"github.com/tgate-web/tgate/internal/edge/site"
)

// siteAssets is the asset store: the files of a Site, written out as Write
// lays them, with an ETag per file and 304s for If-None-Match, as Workers
// Static Assets answers.
type siteAssets struct {
	files map[string][]byte // "/index.html", "/v/<version>/app.js", ...
}

func newSiteAssets(s *site.Site) *siteAssets {
	a := &siteAssets{files: map[string][]byte{}}
	for _, f := range s.Files {
		a.files["/"+f.Name] = f.Data
		if !strings.HasSuffix(f.Name, ".html") {
			a.files[s.VersionedPath(f.Name)] = f.Data
		}
	}
	return a
}

func (a *siteAssets) Fetch(_ context.Context, req *http.Request) (*http.Response, error) {
	data, ok := a.files[req.URL.Path]
	if !ok {
		return &http.Response{StatusCode: 404, Status: "404 Not Found", Header: http.Header{}, Body: io.NopCloser(strings.NewReader(""))}, nil
	}
	sum := sha256.Sum256(data)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	h := http.Header{"Etag": {etag}, "Content-Length": {strconv.Itoa(len(data))}, "Content-Type": {"application/x-whatever"}}
	if strings.Contains(req.Header.Get("If-None-Match"), etag) {
		return &http.Response{StatusCode: 304, Header: h, Body: io.NopCloser(strings.NewReader(""))}, nil
	}
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(bytes.NewReader(data)), ContentLength: int64(len(data))}, nil
}

// netFetcher reaches the network without following redirects, and
// records every URL it was asked for.
type netFetcher struct {
	mu   sync.Mutex
	urls []string
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (f *netFetcher) Fetch(ctx context.Context, req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.urls = append(f.urls, req.URL.String())
	f.mu.Unlock()
	if req.Header.Get("Referer") != "" || req.Header.Get("Cookie") != "" {
		return nil, errors.New("the proxy sent a Referer or Cookie")
	}
	return noRedirects.Do(req.WithContext(ctx))
}

func (f *netFetcher) fetched() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.urls...)
}

// memCache is the edge cache in memory: whole 200 answers by key, Range
// served from them.
type memCache struct {
	mu      sync.Mutex
	entries map[string]cached
	puts    int
}

type cached struct {
	header http.Header
	body   []byte
}

func (c *memCache) Match(_ context.Context, key, rng string) (*http.Response, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if !ok {
		return nil, nil
	}
	req := httptest.NewRequest("GET", "/", nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	rec := httptest.NewRecorder()
	for k, v := range e.header {
		rec.Header()[k] = v
	}
	http.ServeContent(rec, req, "", time.Time{}, bytes.NewReader(e.body))
	res := rec.Result()
	return res, nil
}

func (c *memCache) Put(_ context.Context, key string, resp *http.Response) error {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cached{}
	}
	c.entries[key] = cached{header: resp.Header.Clone(), body: body}
	c.puts++
	return nil
}

// memBucket is the R2 bucket in memory.
type memBucket struct {
	mu   sync.Mutex
	objs map[string][]byte
	puts []string
}

func (b *memBucket) Get(_ context.Context, key string) (*Object, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.objs[key]
	if !ok {
		return nil, nil
	}
	return &Object{Body: io.NopCloser(bytes.NewReader(data)), Size: int64(len(data))}, nil
}

func (b *memBucket) Put(_ context.Context, key string, data []byte, _ string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.objs == nil {
		b.objs = map[string][]byte{}
	}
	b.objs[key] = bytes.Clone(data)
	b.puts = append(b.puts, key)
	return nil
}

// rig is a Server on fakes, with a devserver as the model origin serving
// the tiny fixture model as tgate/tiny-sd, behind an httptest server.
type rig struct {
	t      *testing.T
	srv    *Server
	url    string
	origin *httptest.Server
	net    *netFetcher
	cache  *memCache
	bucket *memBucket
	site   *site.Site
}

// models is the fixture model folder, made once per test binary.
var models struct {
	once sync.Once
	dir  string
	err  error
}

func modelsDir(t *testing.T) string {
	models.once.Do(func() {
		models.dir, models.err = func() (string, error) {
			dir := filepath.Join(testTmp, "models")
			return dir, fixture.Write(filepath.Join(dir, "tgate", "tiny-sd"), fixture.Options{Preset: fixture.SD15, Seed: 7})
		}()
	})
	if models.err != nil {
		t.Fatal(models.err)
	}
	return models.dir
}

// newRig starts the Server with env as its variables (ORIGIN defaults to
// the devserver).
func newRig(t *testing.T, env map[string]string) *rig {
	t.Helper()
	dev, err := devserver.New(devserver.Config{ModelsDir: modelsDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewServer(dev)
	t.Cleanup(origin.Close)
	if _, ok := env["ORIGIN"]; !ok {
		env["ORIGIN"] = origin.URL
	}
	cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	st := site.New(map[string][]byte{
		"index.html": []byte(`<!doctype html><link rel="stylesheet" href="style.css"><script type="module" src="app.js"></script>`),
		"style.css":  []byte("body{color:red}"),
		"app.js":     []byte(`import("./tgate.js")`),
		"tgate.js":   []byte(`export const x = 1;`),
		"tgate.wasm": bytes.Repeat([]byte("\x00asm"), 1000),
	})
	r := &rig{t: t, origin: origin, net: &netFetcher{}, cache: &memCache{}, bucket: &memBucket{}, site: st}
	r.srv = &Server{Config: cfg, Assets: newSiteAssets(st), Origin: r.net, Cache: r.cache, Bucket: r.bucket,
		Counts: &ratelimit.Memory{}, Logf: t.Logf}
	hs := httptest.NewServer(runtimeGzip(r.srv))
	t.Cleanup(hs.Close)
	r.url = hs.URL
	return r
}

// do sends a request to the Worker and returns the answer with its body
// read.
func (r *rig) do(method, path string, header http.Header, body io.Reader) (*http.Response, []byte) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.url+path, body)
	if err != nil {
		r.t.Fatal(err)
	}
	if u, err := url.Parse(r.url + path); err == nil {
		req.URL = u
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v[0]
			continue
		}
		req.Header[k] = v
	}
	res, err := noRedirects.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	data, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		r.t.Fatal(err)
	}
	return res, data
}

// runtimeGzip does what the Workers runtime does with an answer marked
// Content-Encoding: gzip: it compresses the body it is given.
func runtimeGzip(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw := &gzipWriter{ResponseWriter: w}
		h.ServeHTTP(gw, r)
		if gw.zw != nil {
			gw.zw.Close()
		}
	})
}

type gzipWriter struct {
	http.ResponseWriter
	zw *gzip.Writer
}

func (g *gzipWriter) WriteHeader(code int) {
	if g.Header().Get("Content-Encoding") == "gzip" && code == http.StatusOK {
		g.Header().Del("Content-Length")
		g.zw = gzip.NewWriter(g.ResponseWriter)
	}
	g.ResponseWriter.WriteHeader(code)
}

func (g *gzipWriter) Write(b []byte) (int, error) {
	if g.zw != nil {
		return g.zw.Write(b)
	}
	return g.ResponseWriter.Write(b)
}
