package devserver

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// site is a server over temporary folders, with the files the tests check
// against.
type site struct {
	t      *testing.T
	root   string // parent of web/ and models/; holds secret.txt
	web    string
	models string
	wasm   string
	srv    *Server
	ts     *httptest.Server
	// files of the repository tgate/tiny-sd, by slash path
	files map[string][]byte
}

// The repository the tests serve, and its LFS weight file.
const (
	repoID  = "tgate/tiny-sd"
	weights = "unet/diffusion_pytorch_model.safetensors"
)

// newSite writes a web folder, a built engine, a wasm_exec.js and one model
// repository (plus a folder without model_index.json) into a temporary
// folder, and serves them.
func newSite(t *testing.T) *site {
	t.Helper()
	root := t.TempDir()
	s := &site{t: t, root: root, web: filepath.Join(root, "web"), models: filepath.Join(root, "models"),
		wasm: filepath.Join(root, "bin", "tgate.wasm"), files: map[string][]byte{}}
	rng := rand.New(rand.NewPCG(1, 2))
	weightBytes := make([]byte, 70_001)
	for i := range weightBytes {
		weightBytes[i] = byte(rng.Uint32())
	}
	s.files = map[string][]byte{
		"model_index.json":       []byte(`{"_class_name":"StableDiffusionPipeline"}`),
		"unet/config.json":       []byte(`{"sample_size":8}`),
		weights:                  weightBytes,
		"text_encoder/vocab.txt": []byte("a\nb\nc\n"),
		"empty.txt":              {},
	}
	for rel, b := range s.files {
		s.write(filepath.Join(s.models, "tgate", "tiny-sd", rel), b)
	}
	s.write(filepath.Join(s.models, "tgate", "tiny-sd", ".gitattributes"), []byte("*.safetensors filter=lfs\n"))
	s.write(filepath.Join(s.models, "tgate", "tiny-sd", ".cache", "x"), []byte("x"))
	s.write(filepath.Join(s.models, "other", "taesd", "config.json"), []byte(`{}`))
	s.write(filepath.Join(s.models, "acme", "sd-turbo", "model_index.json"), []byte(`{}`))

	s.write(filepath.Join(s.web, "index.html"), []byte("<!doctype html><title>tgate</title>"))
	s.write(filepath.Join(s.web, "app.js"), []byte("export const x = 1;\n"))
	s.write(filepath.Join(s.web, "style.css"), []byte("body{}\n"))
	s.write(filepath.Join(s.web, "data.json"), []byte("{}\n"))
	s.write(filepath.Join(s.web, "logo.svg"), []byte("<svg xmlns='http://www.w3.org/2000/svg'/>"))
	s.write(filepath.Join(s.web, "logo.png"), []byte("\x89PNG\r\n\x1a\n"))
	s.write(filepath.Join(s.web, "docs", "index.html"), []byte("<p>docs</p>"))
	s.write(filepath.Join(s.web, "empty", "note.txt"), []byte("note"))
	s.write(filepath.Join(s.web, ".env"), []byte("hidden"))
	s.write(filepath.Join(root, "secret.txt"), []byte("secret"))
	wasmExec := filepath.Join(root, "wasm_exec.js")
	s.write(wasmExec, []byte("// wasm_exec.js\n"))

	srv, err := New(Config{WebDir: s.web, WASM: s.wasm, WasmExec: wasmExec, ModelsDir: s.models})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	s.ts = httptest.NewServer(srv)
	t.Cleanup(s.ts.Close)
	return s
}

// write creates a file and its folders.
func (s *site) write(name string, b []byte) {
	s.t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// do sends a request with optional headers (name, value pairs), follows no
// redirect, and returns the answer with its body read.
func (s *site) do(method, path string, hdr ...string) (*http.Response, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.ts.URL+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, body
}

// expect checks an answer's status.
func expect(t *testing.T, resp *http.Response, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status)
	}
}

// header checks one header of an answer.
func header(t *testing.T, resp *http.Response, name, want string) {
	t.Helper()
	if got := resp.Header.Get(name); got != want {
		t.Errorf("%s %s: %s = %q, want %q", resp.Request.Method, resp.Request.URL.Path, name, got, want)
	}
}

// sha256Hex is the sha256 of b, hex, computed independently of the server.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// gitSHA1 is git's blob id of b, computed independently of the server.
func gitSHA1(b []byte) string {
	h := sha1.New()
	h.Write([]byte(fmt.Sprintf("blob %d", len(b))))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}
