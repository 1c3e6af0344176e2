package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelp: -h, -help and --help print the usage to stdout and exit 0
// without starting a browser.
func TestHelp(t *testing.T) {
	for _, h := range []string{"-h", "-help", "--help"} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout := os.Stdout
		os.Stdout = w
		code := run([]string{h})
		os.Stdout = stdout
		w.Close()
		var out bytes.Buffer
		out.ReadFrom(r)
		r.Close()
		if code != 0 || out.String() != usageText {
			t.Errorf("%s: exit %d, stdout %q", h, code, out.String())
		}
	}
	if !strings.HasPrefix(usageText, "usage: wasmtest program.wasm [args...]\n") || !strings.Contains(usageText, "WASMTEST_TIMEOUT") {
		t.Errorf("usage text:\n%s", usageText)
	}
}

func TestFilterArgs(t *testing.T) {
	got := filterArgs([]string{"-test.v=true", "-test.testlogfile=/tmp/x/testlog.txt", "-test.run", "Foo"})
	want := []string{"-test.v=true", "-test.run", "Foo"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("filterArgs = %q, want %q", got, want)
	}
}

// TestRunsWasmInChromium builds a small wasm program that prints its
// arguments, an environment variable and whether WebGPU is present, then
// exits with status 3, and checks that the runner streams its output and
// returns that status.
func TestRunsWasmInChromium(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	dir := t.TempDir()
	prog := `//go:build js && wasm

package main

import (
	"fmt"
	"os"
	"syscall/js"
)

func main() {
	fmt.Println("args:", os.Args[1:])
	fmt.Println("env:", os.Getenv("TGATE_PROBE"))
	fmt.Fprintln(os.Stderr, "gpu:", !js.Global().Get("navigator").Get("gpu").IsUndefined())
	os.Exit(3)
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module probe\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wasm := filepath.Join(dir, "probe.wasm")
	build := exec.Command("go", "build", "-o", wasm, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, out)
	}
	runner := filepath.Join(dir, "wasmtest")
	if out, err := exec.Command("go", "build", "-o", runner, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the runner: %v\n%s", err, out)
	}
	cmd := exec.Command(runner, wasm, "-a", "b c", "-test.testlogfile=/nonexistent/log")
	cmd.Env = append(os.Environ(), "TGATE_PROBE=hello", "WASMTEST_TIMEOUT=2m")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stdout
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("runner exit: %v, want status 3\n%s", err, stdout.String())
	}
	out := stdout.String()
	for _, want := range []string{"args: [-a b c]", "env: hello", "gpu: true"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
