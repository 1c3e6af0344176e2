// Command wasmtest runs a GOOS=js GOARCH=wasm program, usually a test
// binary, inside headless Chromium, where WebGPU is available (through
// SwiftShader on machines without a GPU). It is meant for `go test -exec`:
//
//	GOOS=js GOARCH=wasm go test -exec="$PWD/bin/wasmtest" ./webgpu/...
//
// and equally runs a plain wasm main:
//
//	wasmtest prog.wasm [args...]
//
// It serves the binary with the toolchain's wasm_exec.js on 127.0.0.1,
// passes the remaining arguments through as os.Args, streams the page's
// console to stdout, and exits with the Go program's exit status (read from
// wasm_exec.js's exit hook). Chromium is killed when the program exits,
// when the timeout passes, or on SIGINT/SIGTERM.
//
// Environment:
//
//	WASMTEST_TIMEOUT   overall limit (Go duration, default 10m)
//	WASMTEST_CHROME    the browser binary (default: chromium on $PATH)
//	WASMTEST_FLAGS     extra Chromium flags, space separated
//	TGATE_*            copied into the Go program's environment
//
// The page also serves the project root (the directory holding go.mod) read
// only under /fs/, and the reference data beside it (../shared from the
// project root, where it exists) read only under /shared/, for programs
// that need data files over HTTP.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// usageText is what wasmtest -h prints.
const usageText = `usage: wasmtest program.wasm [args...]

Runs a GOOS=js GOARCH=wasm program, usually a test binary, in headless Chromium with WebGPU,
streams its console to stdout and exits with its status. For go test:

  GOOS=js GOARCH=wasm go test -exec="$PWD/bin/wasmtest" ./webgpu/...

The page also serves the project root under /fs/ and ../shared (where it exists) under /shared/.

environment:
  WASMTEST_TIMEOUT   overall limit (Go duration, default 10m)
  WASMTEST_CHROME    the browser binary (default: chromium on $PATH)
  WASMTEST_FLAGS     extra Chromium flags, space separated
  TGATE_*            copied into the Go program's environment
`

func run(args []string) int {
	if len(args) < 1 {
		fmt.Fprint(os.Stderr, usageText)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(os.Stdout, usageText)
		return 0
	}
	wasmPath, progArgs := args[0], filterArgs(args[1:])

	timeout := 10 * time.Minute
	if s := os.Getenv("WASMTEST_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "wasmtest: WASMTEST_TIMEOUT=%q: %v\n", s, err)
			return 2
		}
		timeout = d
	}

	wasmExec, err := findWasmExec()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wasmtest:", err)
		return 2
	}
	if _, err := os.Stat(wasmPath); err != nil {
		fmt.Fprintln(os.Stderr, "wasmtest:", err)
		return 2
	}

	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "TGATE_") {
			env[k] = v
		}
	}
	if wd, err := os.Getwd(); err == nil {
		env["PWD"] = wd
	}

	root := projectRoot()
	shared := filepath.Join(root, "..", "shared")
	if fi, err := os.Stat(shared); err != nil || !fi.IsDir() {
		shared = ""
	}
	srv, err := startServer(serverConfig{
		wasmPath: wasmPath,
		wasmExec: wasmExec,
		fsRoot:   root,
		shared:   shared,
		argv:     append([]string{filepath.Base(wasmPath)}, progArgs...),
		env:      env,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "wasmtest:", err)
		return 2
	}
	defer srv.close()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	code, err := runBrowser(ctx, srv)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			fmt.Fprintf(os.Stderr, "wasmtest: timed out after %v (set WASMTEST_TIMEOUT to change)\n", timeout)
		} else {
			fmt.Fprintln(os.Stderr, "wasmtest:", err)
		}
		return 1
	}
	return code
}

// filterArgs drops flags the go command passes that a program in a browser
// cannot honour: the test log file (there is no file system to write it to).
func filterArgs(args []string) []string {
	var out []string
	for _, a := range args {
		if strings.HasPrefix(a, "-test.testlogfile=") {
			continue
		}
		out = append(out, a)
	}
	return out
}

// projectRoot returns the nearest directory at or above the working
// directory that holds go.mod, or the working directory.
func projectRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		p := filepath.Dir(d)
		if p == d {
			return wd
		}
		d = p
	}
}
