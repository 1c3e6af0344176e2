//go:build js && wasm

// Command worker is tgate-web's Cloudflare Worker: it hosts the page, the
// widget and the engine, proxies the Hugging Face Hub for them, and makes
// share links with preview cards. The logic lives in plain Go packages
// under internal/edge (tested natively); this package only wires them to
// the Workers platform through github.com/syumai/workers (platform.go).
//
// Build (see web/worker/README.md and `make worker`):
//
//	go tool workers-assets-gen -mode=go -o web/worker/build
//	GOOS=js GOARCH=wasm go build -o web/worker/build/app.wasm ./web/worker
//	go run ./web/worker/sitegen -out web/worker/build/site
//
// entry.mjs, the Worker's main module, starts this program once per
// isolate with the generated glue (wasm_exec.js, runtime.mjs) in place of
// the generated worker.mjs, which would start one per request.
//
// Bindings (wrangler.toml): ASSETS (the site folder), SHARES (R2),
// RATE_LIMIT (KV); variables ORIGIN, ALLOW, REDIRECT_HOSTS, CACHE_MAX,
// EDGE_CACHE, SHARE_LIMIT, SHARE_WINDOW (package server's ConfigFromEnv).
package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall/js"

	"github.com/syumai/workers"
	"github.com/syumai/workers/cloudflare"
	"github.com/tgate-web/tgate/internal/edge/server"
	"github.com/tgate-web/tgate/internal/jsutil"
)

// Binding names, as wrangler.toml declares them.
const (
	assetsBinding = "ASSETS"
	bucketBinding = "SHARES"
	kvBinding     = "RATE_LIMIT"
)

// main serves requests until the isolate goes away: entry.mjs starts this
// program once and hands it every request, each on its own goroutine.
func main() {
	workers.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bw := &bodyWriter{w: w}
		defer bw.finish(r)
		defer drain(r)
		handle(bw, r)
	}))
}

// handle serves one request with a server built from the variables and
// bindings of the environment (cheap: a few structs).
func handle(w http.ResponseWriter, r *http.Request) {
	joinHeaders(r.Header)
	cfg, err := server.ConfigFromEnv(cloudflare.Getenv)
	if err != nil {
		http.Error(w, "the Worker is misconfigured: "+err.Error(), http.StatusInternalServerError)
		return
	}
	s := &server.Server{
		Config: cfg,
		Assets: newFetcher(cloudflare.GetBinding(assetsBinding)),
		Origin: newFetcher(globalThis()),
		Cache:  edgeCache{},
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		},
	}
	if b, err := newBucket(bucketBinding); err == nil {
		s.Bucket = b
	} else {
		s.Bucket = missingBucket{err}
	}
	s.Counts = newKV(kvBinding)
	s.ServeHTTP(w, r)
}

// joinHeaders undoes syumai/workers' splitting of header values at
// commas (it turns "bytes=0-1,5-6" into two values): each header gets its
// one value back, as the client sent it.
func joinHeaders(h http.Header) {
	for k, v := range h {
		if len(v) > 1 {
			h[k] = []string{strings.Join(v, ",")}
		}
	}
}

// maxDrain bounds how much of an unread request body drain reads.
const maxDrain = 64 << 20

// drain reads what is left of a request body (a refused upload, read in
// part or not at all) before the request ends, up to maxDrain, then
// cancels the rest. The runtime then sees a complete request: under
// wrangler dev, a body left half-read stalls the next request sent on the
// same internal connection.
func drain(r *http.Request) {
	if r.Body == nil {
		return
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		io.Copy(io.Discard, io.LimitReader(r.Body, maxDrain))
	}
	r.Body.Close()
}

// bodyWriter is the http.ResponseWriter the server writes to. It gives
// syumai/workers' writer every body as a JS value, never through its pipe:
// closing that pipe would end the Go program, which serves all requests of
// the isolate (entry.mjs). A body that is a JS stream (from fetch, the
// cache or the bucket) passes through as it is; bytes written from Go
// (JSON, HTML, cards) are collected and handed over as one Uint8Array
// when the handler returns; an answer to HEAD gets a null body. A panic in
// the handler becomes a 500 instead of ending the program.
type bodyWriter struct {
	w       http.ResponseWriter
	buf     bytes.Buffer
	raw     *js.Value
	status  int
	written bool
}

// Header returns the answer's headers.
func (b *bodyWriter) Header() http.Header { return b.w.Header() }

// WriteHeader records the status; it is sent when the handler returns.
func (b *bodyWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

// Write collects body bytes written from Go.
func (b *bodyWriter) Write(p []byte) (int, error) {
	b.written = true
	return b.buf.Write(p)
}

// WriteRawJSBody takes a JS stream as the body; io.Copy from a body that
// came from the runtime calls it.
func (b *bodyWriter) WriteRawJSBody(v js.Value) { b.raw = &v }

// Flush does nothing: the body is sent whole.
func (b *bodyWriter) Flush() {}

// finish recovers a panic of the handler and hands the status and body to
// the underlying writer.
func (b *bodyWriter) finish(r *http.Request) {
	if v := recover(); v != nil {
		fmt.Fprintf(os.Stderr, "panic serving %s %s: %v\n%s", r.Method, r.URL.Path, v, debug.Stack())
		for k := range b.w.Header() {
			delete(b.w.Header(), k)
		}
		b.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		b.status, b.raw, b.written = http.StatusInternalServerError, nil, true
		b.buf.Reset()
		b.buf.WriteString("internal error\n")
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	raw, ok := b.w.(rawWriter)
	if !ok {
		b.w.WriteHeader(b.status)
		b.w.Write(b.buf.Bytes())
		return
	}
	b.w.WriteHeader(b.status)
	switch {
	case r.Method == http.MethodHead:
		// Headers only; a Content-Length with an empty stream would make
		// the runtime wait for bytes that never come.
		raw.WriteRawJSBody(js.Null())
	case b.raw != nil:
		raw.WriteRawJSBody(*b.raw)
	default:
		if b.written {
			b.w.Header().Set("Content-Length", strconv.Itoa(b.buf.Len()))
		}
		raw.WriteRawJSBody(jsutil.Uint8Array(b.buf.Bytes()))
	}
}
