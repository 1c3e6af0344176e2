package devserver

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tgate-web/tgate/internal/wasmexec"
)

// TestStaticFiles checks the page's files: index, content types,
// Cache-Control, folders and their index.html, and no listings.
func TestStaticFiles(t *testing.T) {
	s := newSite(t)
	cases := []struct{ path, ctype, body string }{
		{"/", "text/html; charset=utf-8", "<!doctype html><title>tgate</title>"},
		{"/index.html", "text/html; charset=utf-8", "<!doctype html><title>tgate</title>"},
		{"/app.js", "text/javascript; charset=utf-8", "export const x = 1;\n"},
		{"/style.css", "text/css; charset=utf-8", "body{}\n"},
		{"/data.json", "application/json", "{}\n"},
		{"/logo.svg", "image/svg+xml", "<svg xmlns='http://www.w3.org/2000/svg'/>"},
		{"/logo.png", "image/png", "\x89PNG\r\n\x1a\n"},
		{"/docs/", "text/html; charset=utf-8", "<p>docs</p>"},
		{"/wasm_exec.js", "text/javascript; charset=utf-8", "// wasm_exec.js\n"},
	}
	for _, c := range cases {
		resp, body := s.do("GET", c.path)
		expect(t, resp, http.StatusOK)
		header(t, resp, "Content-Type", c.ctype)
		header(t, resp, "Cache-Control", "no-cache")
		if string(body) != c.body {
			t.Errorf("%s: body %q, want %q", c.path, body, c.body)
		}
	}
	resp, _ := s.do("GET", "/docs")
	expect(t, resp, http.StatusMovedPermanently)
	header(t, resp, "Location", "/docs/")
	for _, path := range []string{"/empty/", "/missing.js", "/.env", "/docs/missing"} {
		resp, body := s.do("GET", path)
		expect(t, resp, http.StatusNotFound)
		if strings.Contains(string(body), "note.txt") {
			t.Errorf("%s lists a folder: %q", path, body)
		}
	}
}

// TestPathTraversal sends paths that try to leave the served folders, as
// raw request lines so that no client cleans them first.
func TestPathTraversal(t *testing.T) {
	s := newSite(t)
	paths := []string{
		"/../secret.txt",
		"/%2e%2e/secret.txt",
		"/docs/../../secret.txt",
		"/..%2fsecret.txt",
		"/..%5csecret.txt",
		"/tgate/tiny-sd/resolve/main/../../../secret.txt",
		"/tgate/tiny-sd/resolve/main/%2e%2e/%2e%2e/%2e%2e/secret.txt",
		"/tgate/tiny-sd/resolve/main/..%2f..%2f..%2fsecret.txt",
		"/_lfs/tgate/tiny-sd/main/../../../secret.txt",
		"/tgate/..%2f..%2f/resolve/main/secret.txt",
		"/api/models/tgate/..%2f..",
		"/../models/tgate/tiny-sd/model_index.json",
	}
	addr := strings.TrimPrefix(s.ts.URL, "http://")
	for _, p := range paths {
		status, body := rawGet(t, addr, p)
		if status == http.StatusOK || strings.Contains(body, "secret") || strings.Contains(body, "StableDiffusion") {
			t.Errorf("GET %s: status %d body %q", p, status, body)
		}
	}
}

// rawGet sends one GET with the request line exactly as given and returns
// the status and body.
func rawGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWASM checks /tgate.wasm: 503 while not built, gzip that decodes to the
// file when accepted, the file as it is otherwise, and a new compressed copy
// when the file changes.
func TestWASM(t *testing.T) {
	s := newSite(t)
	resp, body := s.do("GET", "/tgate.wasm")
	expect(t, resp, http.StatusServiceUnavailable)
	if !strings.Contains(string(body), wasmMissing) {
		t.Errorf("503 body %q", body)
	}

	wasm := bytes.Repeat([]byte("\x00asm\x01\x00\x00\x00 some code "), 5000)
	s.write(s.wasm, wasm)
	resp, body = s.do("GET", "/tgate.wasm", "Accept-Encoding", "gzip, deflate, br")
	expect(t, resp, http.StatusOK)
	header(t, resp, "Content-Type", "application/wasm")
	header(t, resp, "Content-Encoding", "gzip")
	header(t, resp, "Vary", "Accept-Encoding")
	header(t, resp, "Cache-Control", "no-cache")
	if len(body) >= len(wasm) {
		t.Errorf("compressed size %d is not below %d", len(body), len(wasm))
	}
	if got := gunzip(t, body); !bytes.Equal(got, wasm) {
		t.Fatal("gzip body does not decode to the file")
	}

	resp, body = s.do("GET", "/tgate.wasm", "Accept-Encoding", "identity")
	expect(t, resp, http.StatusOK)
	header(t, resp, "Content-Encoding", "")
	header(t, resp, "Content-Type", "application/wasm")
	if !bytes.Equal(body, wasm) {
		t.Fatal("plain body differs from the file")
	}
	resp, _ = s.do("GET", "/tgate.wasm", "Accept-Encoding", "gzip;q=0")
	header(t, resp, "Content-Encoding", "")

	rebuilt := append(wasm, "more"...)
	s.write(s.wasm, rebuilt)
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(s.wasm, later, later)
	resp, body = s.do("GET", "/tgate.wasm", "Accept-Encoding", "gzip")
	if got := gunzip(t, body); !bytes.Equal(got, rebuilt) {
		t.Fatal("a rebuilt engine is served from the old compressed copy")
	}
}

// gunzip decodes a gzip stream.
func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNewFindsWasmExec checks that New finds the toolchain's wasm_exec.js
// when none is named, and that it rejects a missing web folder.
func TestNewFindsWasmExec(t *testing.T) {
	want, err := wasmexec.Find()
	if err != nil {
		t.Skip(err)
	}
	srv, err := New(Config{WebDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if srv.wasmExec != want {
		t.Errorf("wasm_exec.js %s, want %s", srv.wasmExec, want)
	}
	if _, err := New(Config{WebDir: "/no/such/folder", WasmExec: want}); err == nil {
		t.Error("New accepts a missing web folder")
	}
	if _, err := New(Config{WasmExec: "/no/such/wasm_exec.js"}); err == nil {
		t.Error("New accepts a missing wasm_exec.js")
	}
}
