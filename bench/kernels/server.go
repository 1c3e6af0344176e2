package main

import (
	"embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"sync"
)

//go:embed page
var pageFS embed.FS

// timing is what the page reports for one case: each engine's rep times in
// ms and the message of each engine that failed.
type timing struct {
	Times  map[string][]float64 `json:"times"`
	Errors map[string]string    `json:"errors"`
}

// pageInfo is what the page reports at the end: the adapter, each
// engine's version, or the error that stopped it.
type pageInfo struct {
	UserAgent string `json:"userAgent"`
	Adapter   string `json:"adapter"`
	Ours      string `json:"ours"`
	TFJS      string `json:"tfjs"`
	ORT       string `json:"ort"`
	Error     string `json:"error"`
}

// server serves the page, the engines, the cases' inputs and models, and
// collects the page's outputs and timings.
type server struct {
	url  string
	done chan pageInfo
	srv  *http.Server

	mu      sync.Mutex
	outputs map[string]map[string][]float32 // case → engine → output
	timings map[string]timing
}

// serverConfig names what the server serves besides the embedded page.
type serverConfig struct {
	engineWasm  string // our engine, GOOS=js GOARCH=wasm
	wasmExec    string // the toolchain's wasm_exec.js
	nodeModules string // bench/kernels/node_modules, served under /npm/
	manifest    []byte // /cases.json
	cases       []*benchCase
}

func startServer(cfg serverConfig) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{
		url:     "http://" + ln.Addr().String() + "/",
		done:    make(chan pageInfo, 1),
		outputs: map[string]map[string][]float32{},
		timings: map[string]timing{},
	}
	byName := map[string]*benchCase{}
	for _, c := range cfg.cases {
		byName[c.Name] = c
	}
	page, _ := fs.Sub(pageFS, "page")
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(page))
	file := func(path, ctype string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			http.ServeFile(w, r, path)
		}
	}
	mux.HandleFunc("GET /wasm_exec.js", file(cfg.wasmExec, "text/javascript"))
	mux.HandleFunc("GET /engine.wasm", file(cfg.engineWasm, "application/wasm"))
	// Go's MIME table types .js, .mjs and .wasm as modules and wasm need.
	mux.Handle("GET /npm/", http.StripPrefix("/npm/", http.FileServer(http.Dir(cfg.nodeModules))))
	mux.HandleFunc("GET /cases.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(cfg.manifest)
	})
	mux.HandleFunc("GET /data/{case}/{input}", func(w http.ResponseWriter, r *http.Request) {
		c := byName[r.PathValue("case")]
		if c == nil {
			http.NotFound(w, r)
			return
		}
		for _, t := range c.Inputs {
			if t.Name == r.PathValue("input") {
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Write(f32Bytes(t.data))
				return
			}
		}
		http.NotFound(w, r)
	})
	mux.HandleFunc("GET /model/{case}/{model}", func(w http.ResponseWriter, r *http.Request) {
		c := byName[r.PathValue("case")]
		name := r.PathValue("model")
		if c == nil || len(name) < 5 || c.models[name[:len(name)-5]] == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(c.models[name[:len(name)-5]])
	})
	mux.HandleFunc("POST /result/{case}/{engine}", func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil || len(raw)%4 != 0 {
			http.Error(w, fmt.Sprintf("bad output body (%d bytes): %v", len(raw), err), http.StatusBadRequest)
			return
		}
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		s.mu.Lock()
		if s.outputs[r.PathValue("case")] == nil {
			s.outputs[r.PathValue("case")] = map[string][]float32{}
		}
		s.outputs[r.PathValue("case")][r.PathValue("engine")] = out
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /timing/{case}", func(w http.ResponseWriter, r *http.Request) {
		var t timing
		if err := json.NewDecoder(r.Body).Decode(&t); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.timings[r.PathValue("case")] = t
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /done", func(w http.ResponseWriter, r *http.Request) {
		var p pageInfo
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			p.Error = "unreadable /done report: " + err.Error()
		}
		select {
		case s.done <- p:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	s.srv = &http.Server{Handler: mux}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *server) close() { s.srv.Close() }

// f32Bytes encodes float32s little-endian (a Float32Array's bytes).
func f32Bytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}
