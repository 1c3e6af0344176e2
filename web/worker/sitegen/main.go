// Command sitegen lays out the site the Worker hosts, for Workers Static
// Assets: the page's files from web/, the engine (tgate.wasm) and the Go
// toolchain's wasm_exec.js, each at its own name and again under
// /v/<version>/ (package site explains why), with the HTML pages pointing
// at the versioned copies.
//
//	go run ./web/worker/sitegen -web web -wasm bin/tgate.wasm -out web/worker/build/site
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tgate-web/tgate/internal/edge/site"
	"github.com/tgate-web/tgate/internal/wasmexec"
)

func main() {
	web := flag.String("web", "web", "the page's folder")
	wasm := flag.String("wasm", "bin/tgate.wasm", "the built engine (GOOS=js GOARCH=wasm go build -o bin/tgate.wasm ./wasm)")
	wasmExec := flag.String("wasm-exec", "", "wasm_exec.js to serve (default: the Go toolchain's)")
	out := flag.String("out", "web/worker/build/site", "the folder to write (emptied first)")
	flag.Parse()
	if err := run(*web, *wasm, *wasmExec, *out); err != nil {
		fmt.Fprintln(os.Stderr, "sitegen:", err)
		os.Exit(1)
	}
}

// run collects the site and writes it, then prints its version and size.
func run(web, wasm, wasmExec, out string) error {
	if wasmExec == "" {
		p, err := wasmexec.Find()
		if err != nil {
			return err
		}
		wasmExec = p
	}
	if _, err := os.Stat(wasm); err != nil {
		return fmt.Errorf("the engine %s is missing: build it with `make wasm`", wasm)
	}
	s, err := site.Collect(web, map[string]string{"tgate.wasm": wasm, "wasm_exec.js": wasmExec})
	if err != nil {
		return err
	}
	if err := s.Write(out); err != nil {
		return err
	}
	total := 0
	for _, f := range s.Files {
		total += len(f.Data)
	}
	fmt.Printf("site %s: %d files, %.1f MB, in %s (immutable copies under /v/%s/)\n", s.Version, len(s.Files), float64(total)/1e6, out, s.Version)
	return nil
}
