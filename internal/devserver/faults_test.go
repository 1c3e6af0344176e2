package devserver

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// get fetches url with the default client (following redirects, as fetch
// does) and returns the answer and the body read until the first error.
func get(t *testing.T, url string) (*http.Response, []byte, error) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// TestCutOnce checks that a cut download ends in an unexpected EOF after the
// promised Content-Length, and that the next one is whole; for an LFS file
// (cut at the /_lfs/ URL) and a small one (cut at the resolve URL).
func TestCutOnce(t *testing.T) {
	s := newSite(t)
	for _, rel := range []string{weights, "unet/config.json"} {
		want := s.files[rel]
		repoPath := repoID + "/" + rel
		after := int64(len(want) / 3)
		s.srv.CutOnce(repoPath, after)

		resp, body, err := get(t, s.ts.URL+"/tgate/tiny-sd/resolve/main/"+rel)
		if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(want)) {
			t.Fatalf("%s: cut answer: status %d, Content-Length %d, want 200, %d", rel, resp.StatusCode, resp.ContentLength, len(want))
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%s: reading a cut body: err %v, want unexpected EOF", rel, err)
		}
		if int64(len(body)) != after || !bytes.Equal(body, want[:after]) {
			t.Fatalf("%s: cut body has %d bytes, want the first %d", rel, len(body), after)
		}

		resp, body, err = get(t, s.ts.URL+"/tgate/tiny-sd/resolve/main/"+rel)
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
			t.Fatalf("%s: second GET: status %d, %d bytes, err %v", rel, resp.StatusCode, len(body), err)
		}
		st := s.srv.Stats(repoPath)
		if st.Gets != 2 || st.Full != 2 || st.Bytes != after+int64(len(want)) {
			t.Errorf("%s: stats %+v, want 2 full GETs of %d bytes", rel, st, after+int64(len(want)))
		}
	}
}

// TestCutOnceWaitsForBytes checks that a cut is kept for the next answer
// that carries the file's bytes: HEAD and not-modified answers leave it.
func TestCutOnceWaitsForBytes(t *testing.T) {
	s := newSite(t)
	repoPath := repoID + "/" + weights
	url := "/_lfs/tgate/tiny-sd/main/" + weights
	s.srv.CutOnce(repoPath, 10)
	resp, _ := s.do("HEAD", url)
	expect(t, resp, http.StatusOK)
	resp, _ = s.do("GET", url, "If-None-Match", `"`+sha256Hex(s.files[weights])+`"`)
	expect(t, resp, http.StatusNotModified)
	if n := s.srv.Requests(repoPath); n != 0 {
		t.Errorf("HEAD and 304 counted as %d GETs", n)
	}
	resp, body, err := get(t, s.ts.URL+url)
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) != 10 {
		t.Fatalf("cut after HEAD: status %d, %d bytes, err %v", resp.StatusCode, len(body), err)
	}
}

// TestFailOnce checks that an injected failure answers once, with its
// status, and the next request succeeds.
func TestFailOnce(t *testing.T) {
	s := newSite(t)
	for _, rel := range []string{weights, "unet/config.json"} {
		repoPath := repoID + "/" + rel
		s.srv.FailOnce(repoPath, http.StatusServiceUnavailable)
		resp, body := s.do("GET", "/tgate/tiny-sd/resolve/main/"+rel)
		expect(t, resp, http.StatusServiceUnavailable)
		header(t, resp, "Access-Control-Allow-Origin", "*")
		if !strings.Contains(string(body), `"error"`) {
			t.Errorf("failure body %q", body)
		}
		resp, body, err := get(t, s.ts.URL+"/tgate/tiny-sd/resolve/main/"+rel)
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, s.files[rel]) {
			t.Fatalf("%s: after the failure: status %d, err %v", rel, resp.StatusCode, err)
		}
		if n := s.srv.Requests(repoPath); n != 1 {
			t.Errorf("%s: %d GETs counted, want 1", rel, n)
		}
	}
}

// TestRequestsCount checks the counters: ranges count as GETs but not as
// whole-file answers; HEAD and redirects do not count.
func TestRequestsCount(t *testing.T) {
	s := newSite(t)
	repoPath := repoID + "/" + weights
	s.do("HEAD", "/tgate/tiny-sd/resolve/main/"+weights)
	s.do("GET", "/tgate/tiny-sd/resolve/main/"+weights) // the redirect alone
	s.do("GET", "/_lfs/tgate/tiny-sd/main/"+weights, "Range", "bytes=0-0")
	s.do("GET", "/_lfs/tgate/tiny-sd/main/"+weights)
	want := FileStats{Gets: 2, Full: 1, Bytes: 1 + int64(len(s.files[weights]))}
	if st := s.srv.Stats(repoPath); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	if n := s.srv.Requests(repoID + "/unet/config.json"); n != 0 {
		t.Errorf("untouched file counted %d", n)
	}
}

// TestRequestLog checks that the log has one line per Hub request, none for
// the page's files, and marks a cut connection.
func TestRequestLog(t *testing.T) {
	s := newSite(t)
	var mu sync.Mutex
	var buf bytes.Buffer
	srv, err := New(Config{WebDir: s.web, WASM: s.wasm, WasmExec: filepath.Join(s.root, "wasm_exec.js"),
		ModelsDir: s.models, Log: log.New(lockedWriter{&mu, &buf}, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	srv.CutOnce(repoID+"/"+weights, 5)
	for _, p := range []string{"/", "/app.js", "/wasm_exec.js", "/api/local-models", "/tgate/tiny-sd/resolve/main/" + weights} {
		get(t, ts.URL+p)
	}
	ts.Close() // waits for the handlers
	mu.Lock()
	defer mu.Unlock()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("log:\n%s\nwant 3 lines", buf.String())
	}
	if !strings.HasPrefix(lines[0], "GET /api/local-models 200") ||
		!strings.HasPrefix(lines[1], "GET /tgate/tiny-sd/resolve/main/"+weights+" 302") ||
		!strings.HasPrefix(lines[2], "GET /_lfs/tgate/tiny-sd/main/"+weights+" 200 5B") ||
		!strings.HasSuffix(lines[2], "(connection cut)") {
		t.Errorf("log lines:\n%s", strings.Join(lines, "\n"))
	}
}

// lockedWriter serialises writes to a buffer shared with the test.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
