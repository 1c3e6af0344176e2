package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/wasmexec"
)

// TestHelpAndBadFlags checks -h (usage, status 0) and a bad flag (one error
// line and a pointer to -h, status 2).
func TestHelpAndBadFlags(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		var out, errOut bytes.Buffer
		if code := run([]string{arg}, &out, &errOut); code != 0 {
			t.Errorf("%s: status %d", arg, code)
		}
		if !strings.Contains(out.String(), "--models DIR") || errOut.Len() != 0 {
			t.Errorf("%s: stdout %q stderr %q", arg, out.String(), errOut.String())
		}
	}
	for _, args := range [][]string{{"--port", "1"}, {"extra"}, {"--addr"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%q: status %d, want 2", args, code)
		}
		lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "tgate serve: ") || !strings.Contains(lines[1], "-h") {
			t.Errorf("%q: stderr %q", args, errOut.String())
		}
	}
}

// TestStartErrors checks the messages for a missing web folder and a busy
// port.
func TestStartErrors(t *testing.T) {
	if _, err := wasmexec.Find(); err != nil {
		t.Skip(err)
	}
	var out, errOut bytes.Buffer
	code := run([]string{"--web", filepath.Join(t.TempDir(), "nope"), "--addr", "127.0.0.1:0"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "web folder") {
		t.Errorf("missing web folder: status %d, stderr %q", code, errOut.String())
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	errOut.Reset()
	code = run([]string{"--web", t.TempDir(), "--addr", busy.Addr().String()}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "already in use") {
		t.Errorf("busy port: status %d, stderr %q", code, errOut.String())
	}
}

// TestStart checks the start line and that the server answers the page and
// the model API.
func TestStart(t *testing.T) {
	if _, err := wasmexec.Find(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	web := filepath.Join(dir, "web")
	models := filepath.Join(dir, "models")
	for name, body := range map[string]string{
		filepath.Join(web, "index.html"):                              "<p>page</p>",
		filepath.Join(models, "tgate", "tiny-sd", "model_index.json"): "{}",
	} {
		os.MkdirAll(filepath.Dir(name), 0o755)
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o, err := parse([]string{"--addr", "127.0.0.1:0", "--web", web, "--models", models, "--wasm", filepath.Join(dir, "tgate.wasm")})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	srv, ln, err := start(o, &out)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/"
	if want := "tgate serve: " + url + "  (models: tgate/tiny-sd from " + models + ")\n"; out.String() != want {
		t.Errorf("start line %q, want %q", out.String(), want)
	}
	for path, want := range map[string]string{"": "<p>page</p>", "api/local-models": "[\"tgate/tiny-sd\"]\n"} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("/%s: status %d body %q", path, resp.StatusCode, body)
		}
	}
}
