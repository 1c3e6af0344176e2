package main

import (
	"encoding/json"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/tgate-web/tgate/internal/wasmexec"
)

type serverConfig struct {
	wasmPath string            // the program to run
	wasmExec string            // path of the toolchain's wasm_exec.js
	fsRoot   string            // directory served read-only under /fs/
	shared   string            // directory served read-only under /shared/ (may be "")
	argv     []string          // os.Args of the Go program
	env      map[string]string // its environment
}

// server serves the page and receives the program's exit status.
type server struct {
	url  string
	exit chan int
	ln   net.Listener
	srv  *http.Server
}

// findWasmExec locates the toolchain's wasm_exec.js.
func findWasmExec() (string, error) { return wasmexec.Find() }

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>wasmtest</title></head>
<body>
<script src="/wasm_exec.js"></script>
<script>
(async () => {
  const report = (code) => fetch("/exit", {method: "POST", body: String(code)});
  try {
    const go = new Go();
    go.argv = {{.Argv}};
    go.env = {{.Env}};
    let reported = false;
    go.exit = (code) => { reported = true; report(code); };
    const resp = await fetch("/prog.wasm");
    const { instance } = await WebAssembly.instantiateStreaming(resp, go.importObject);
    await go.run(instance);
    if (!reported) { console.error("wasmtest: program returned without calling exit"); report(1); }
  } catch (e) {
    console.error("wasmtest: " + (e && e.stack ? e.stack : e));
    report(3);
  }
})();
</script>
</body></html>`))

func startServer(cfg serverConfig) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{
		url:  "http://" + ln.Addr().String() + "/",
		exit: make(chan int, 1),
		ln:   ln,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// The template escapes argv and env into JS literals.
		pageTmpl.Execute(w, map[string]any{"Argv": cfg.argv, "Env": cfg.env})
	})
	mux.HandleFunc("GET /wasm_exec.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, cfg.wasmExec)
	})
	mux.HandleFunc("GET /prog.wasm", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/wasm")
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFile(w, r, cfg.wasmPath)
	})
	mux.Handle("GET /fs/", http.StripPrefix("/fs/", http.FileServer(http.Dir(cfg.fsRoot))))
	if cfg.shared != "" {
		mux.Handle("GET /shared/", http.StripPrefix("/shared/", http.FileServer(http.Dir(cfg.shared))))
	}
	mux.HandleFunc("POST /exit", func(w http.ResponseWriter, r *http.Request) {
		var buf [32]byte
		n, _ := r.Body.Read(buf[:])
		code, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
		if err != nil {
			code = 1
		}
		select {
		case s.exit <- code:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	s.srv = &http.Server{Handler: mux}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *server) close() { s.srv.Close() }

// unquoteJSON decodes a JSON value (a console argument) into v.
func unquoteJSON(raw []byte, v any) error { return json.Unmarshal(raw, v) }
