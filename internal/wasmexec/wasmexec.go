// Package wasmexec locates the Go toolchain's wasm_exec.js, the JavaScript
// support file every page that runs a GOOS=js program loads.
package wasmexec

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Find returns the path of wasm_exec.js: $GOROOT/lib/wasm (Go ≥ 1.24) or
// $GOROOT/misc/wasm (older toolchains), where GOROOT is taken from the
// environment first and then from `go env GOROOT`.
func Find() (string, error) {
	var roots []string
	if r := os.Getenv("GOROOT"); r != "" {
		roots = append(roots, r)
	}
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		roots = append(roots, strings.TrimSpace(string(out)))
	}
	for _, r := range roots {
		for _, sub := range []string{"lib/wasm", "misc/wasm"} {
			p := filepath.Join(r, sub, "wasm_exec.js")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", errors.New("cannot find wasm_exec.js under $GOROOT/lib/wasm or $GOROOT/misc/wasm (is the go command on PATH?)")
}
