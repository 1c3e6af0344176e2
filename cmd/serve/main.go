// Command serve is tgate-web's development server: it serves the page
// (web/), the wasm engine (bin/tgate.wasm, gzip-compressed), Go's
// wasm_exec.js, and local model folders in the Hugging Face Hub's own layout
// and manner, so the browser engine loads models offline exactly as it does
// from huggingface.co.
//
// Usage:
//
//	serve [--addr 127.0.0.1:8080] [--models out/models] [--web web] [--wasm bin/tgate.wasm]
//
// A model folder <models>/<owner>/<name> is the repository "owner/name":
// its files are at /<owner>/<name>/resolve/main/<path> (weights through a
// redirect, as the Hub sends them), its file list at /api/models/<owner>/<name>,
// and /api/local-models lists the repositories that hold a model_index.json.
// See package internal/devserver for every route and header.
//
// On start it prints the URL and the models it found; then it logs one line
// per request that is not for a static file of the page.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/tgate-web/tgate/internal/devserver"
)

// options are the command's flags.
type options struct {
	addr, models, web, wasm string
}

const usage = `usage: serve [flags]

Serves the tgate-web page, the wasm engine and local model folders in the
Hugging Face Hub's layout (/<owner>/<name>/resolve/main/<file>,
/api/models/<owner>/<name>), for development and offline tests.

flags:
  --addr ADDR    address to listen on (default 127.0.0.1:8080)
  --models DIR   folder of model repositories, as DIR/<owner>/<name> (default out/models)
  --web DIR      the page's static files (default web)
  --wasm FILE    the built engine, served as /tgate.wasm (default bin/tgate.wasm)
  -h, --help     print this help
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, starts the server and serves until it fails; it returns
// the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "tgate serve: %v\nrun 'serve -h' for usage\n", err)
		return 2
	}
	srv, ln, err := start(opts, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "tgate serve: %v\n", err)
		return 1
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "tgate serve: %v\n", err)
		return 1
	}
	return 0
}

// parse reads the command line into options; -h gives flag.ErrHelp.
func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "")
	fs.StringVar(&o.models, "models", "out/models", "")
	fs.StringVar(&o.web, "web", "web", "")
	fs.StringVar(&o.wasm, "wasm", "bin/tgate.wasm", "")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, nil
}

// start checks the folders, builds the handler, listens on opts.addr and
// prints the start line; the caller serves on the returned listener.
func start(o options, stdout io.Writer) (*http.Server, net.Listener, error) {
	if fi, err := os.Stat(o.web); err != nil || !fi.IsDir() {
		return nil, nil, fmt.Errorf("web folder %q not found (run from the repository root, or pass --web DIR)", o.web)
	}
	h, err := devserver.New(devserver.Config{
		WebDir:    o.web,
		WASM:      o.wasm,
		ModelsDir: o.models,
		Log:       log.New(stdout, "", log.Ltime),
	})
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", o.addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, nil, fmt.Errorf("address %s is already in use (another server is running there; pick another with --addr)", o.addr)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	models, err := h.LocalModels()
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	list := "none"
	if len(models) > 0 {
		list = strings.Join(models, ", ")
	}
	fmt.Fprintf(stdout, "tgate serve: http://%s/  (models: %s from %s)\n", ln.Addr(), list, o.models)
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln, nil
}
