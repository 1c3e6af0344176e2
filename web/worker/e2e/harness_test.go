// Package e2e runs the Worker (web/worker) locally under wrangler dev, the
// way `make worker-dev` does, with KV and R2 simulated by wrangler, a
// model origin of our own (internal/devserver serving the tiny fixture
// model as tgate/tiny-sd) and real HTTP requests on 127.0.0.1: the
// hosting, the model proxy with its Range and cache behaviour, every
// rejection, the share round trip with its card, and 200 concurrent
// requests. It also measures the Worker's size and cold start.
//
// It needs Node and wrangler 4.86.0 installed in web/worker (npm ci, which
// `make test-worker` runs); without them the tests are skipped.
package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tgate-web/tgate/fixture"
	"github.com/tgate-web/tgate/internal/devserver"
	"github.com/tgate-web/tgate/internal/edge/site"
	"github.com/tgate-web/tgate/internal/wasmexec"
)

// shareLimit is the upload limit the Worker runs with here (TestShare
// counts on it).
const shareLimit = 8

// env is what TestMain prepares.
var env struct {
	skip      string
	root      string
	base      string // the Worker, http://127.0.0.1:<port>
	origin    *httptest.Server
	evil      *httptest.Server // a host the Worker must never reach
	evilHits  counter
	originLog *requestLog
	models    string
	site      *site.Site
	engine    []byte // tgate.wasm as built
	wasmSize  int    // the Worker's app.wasm, bytes
	wasmGzip  int
	readyIn   time.Duration // from starting wrangler to "Ready"
	firstReq  time.Duration // the first request (instantiates the Go program)
	wrangler  *exec.Cmd
	log       *lockedBuffer
}

func TestMain(m *testing.M) {
	code := func() int {
		tmp, err := os.MkdirTemp("", "tgate-worker-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		if err := prepare(tmp); err != nil {
			fmt.Fprintln(os.Stderr, "worker e2e:", err)
			if env.log != nil {
				fmt.Fprintln(os.Stderr, "wrangler output:\n"+env.log.String())
			}
			stop()
			return 1
		}
		defer stop()
		return m.Run()
	}()
	os.Exit(code)
}

// wranglerBin returns web/worker's wrangler, or why it cannot run.
func wranglerBin(root string) (string, string) {
	bin := filepath.Join(root, "web", "worker", "node_modules", ".bin", "wrangler")
	if _, err := exec.LookPath("node"); err != nil {
		return "", "node is not installed (apt-get install nodejs); the Worker's end-to-end tests need it for wrangler"
	}
	if _, err := os.Stat(bin); err != nil {
		return "", "wrangler is not installed in web/worker: run `npm ci` there (`make test-worker` does)"
	}
	return bin, ""
}

// prepare builds the Worker and the site into tmp, starts the model origin
// and wrangler, and waits until the Worker answers.
func prepare(tmp string) error {
	root, err := filepath.Abs("../../..")
	if err != nil {
		return err
	}
	env.root = root
	bin, skip := wranglerBin(root)
	if skip != "" {
		env.skip = skip
		return nil
	}
	build := filepath.Join(tmp, "build")
	run := func(extra []string, args ...string) error {
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), extra...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	js := []string{"GOOS=js", "GOARCH=wasm"}
	if err := run(nil, "tool", "workers-assets-gen", "-mode=go", "-o", build); err != nil {
		return err
	}
	if err := run(js, "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(build, "app.wasm"), "./web/worker"); err != nil {
		return err
	}
	enginePath := filepath.Join(tmp, "tgate.wasm")
	if err := run(js, "build", "-o", enginePath, "./wasm"); err != nil {
		return err
	}
	app, err := os.ReadFile(filepath.Join(build, "app.wasm"))
	if err != nil {
		return err
	}
	env.wasmSize, env.wasmGzip = len(app), gzipSize(app)
	if env.engine, err = os.ReadFile(enginePath); err != nil {
		return err
	}
	wasmExec, err := wasmexec.Find()
	if err != nil {
		return err
	}
	if env.site, err = site.Collect(filepath.Join(root, "web"), map[string]string{"tgate.wasm": enginePath, "wasm_exec.js": wasmExec}); err != nil {
		return err
	}
	if err := env.site.Write(filepath.Join(build, "site")); err != nil {
		return err
	}
	for _, f := range []string{"wrangler.toml", "entry.mjs"} {
		data, err := os.ReadFile(filepath.Join(root, "web", "worker", f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, f), data, 0o644); err != nil {
			return err
		}
	}

	env.models = filepath.Join(tmp, "models")
	if err := fixture.Write(filepath.Join(env.models, "tgate", "tiny-sd"), fixture.Options{Preset: fixture.SD15, Seed: 7}); err != nil {
		return err
	}
	if err := startOrigin(); err != nil {
		return err
	}
	return startWrangler(bin, tmp)
}

// startOrigin starts the model origin: the devserver with the fixture
// model, plus one path that redirects to the "evil" server, and logs the
// paths it is asked for.
func startOrigin() error {
	env.evil = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.evilHits.add()
		w.Write([]byte("secret"))
	}))
	dev, err := devserver.New(devserver.Config{ModelsDir: env.models})
	if err != nil {
		return err
	}
	env.originLog = &requestLog{}
	env.origin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.originLog.add(r)
		if strings.HasSuffix(r.URL.Path, "/resolve/main/redirect-away") {
			http.Redirect(w, r, env.evil.URL+"/stolen", http.StatusFound)
			return
		}
		dev.ServeHTTP(w, r)
	}))
	return nil
}

// startWrangler runs `wrangler dev` on a free port in its own process
// group, with the variables of `make worker-dev`, and waits for the
// Worker's first answer, timing both.
func startWrangler(bin, dir string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	env.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	args := []string{"dev", "--config", filepath.Join(dir, "wrangler.toml"), "--ip", "127.0.0.1", "--port", fmt.Sprint(port),
		"--var", "ORIGIN:" + env.origin.URL, "--var", "ALLOW:tgate/tiny-sd", "--var", fmt.Sprintf("SHARE_LIMIT:%d", shareLimit),
		"--persist-to", filepath.Join(dir, "state")}
	// The dev server opens several sockets per request in flight: allow
	// as many files as the system does.
	cmd := exec.Command("bash", append([]string{"-c", `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"`, bin}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CI=true", "WRANGLER_SEND_METRICS=false", "CLOUDFLARE_CF_FETCH_ENABLED=false", "NO_COLOR=1", "FORCE_COLOR=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	env.log = &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = env.log, env.log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	env.wrangler = cmd
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(env.log.String(), "Ready on") {
		if time.Now().After(deadline) {
			return fmt.Errorf("wrangler dev did not start within 90 s")
		}
		if cmd.ProcessState != nil {
			return fmt.Errorf("wrangler dev exited")
		}
		time.Sleep(20 * time.Millisecond)
	}
	env.readyIn = time.Since(start)
	t0 := time.Now()
	res, err := http.Get(env.base + "/api/health")
	if err != nil {
		return fmt.Errorf("the Worker's first answer: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	env.firstReq = time.Since(t0)
	if res.StatusCode != 200 {
		return fmt.Errorf("the Worker's first answer: %s", res.Status)
	}
	return nil
}

// stop ends wrangler and everything it started (its process group), and
// the servers.
func stop() {
	if c := env.wrangler; c != nil && c.Process != nil {
		syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			<-done
		}
		env.wrangler = nil
	}
	for _, s := range []*httptest.Server{env.origin, env.evil} {
		if s != nil {
			s.Close()
		}
	}
}

// needWorker skips a test when wrangler is not installed.
func needWorker(t *testing.T) {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// client sends requests as they are written (paths are not cleaned) and
// does not follow redirects or decompress.
var client = &http.Client{
	Timeout:       60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64},
}

// do sends a request to the Worker and returns the answer with its body.
func do(t testing.TB, method, path string, header http.Header, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, env.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\nwrangler's output ends:\n%s", method, path, err, tail(env.log.String(), 3000))
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return res, data
}

// gzipSize returns the size of data gzip-compressed at the best level.
func gzipSize(data []byte) int {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(data)
	zw.Close()
	return b.Len()
}

// gunzip decompresses a gzip body.
func gunzip(t testing.TB, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// counter counts events across goroutines.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) add() { c.mu.Lock(); c.n++; c.mu.Unlock() }

func (c *counter) get() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// requestLog keeps the paths the origin was asked for.
type requestLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *requestLog) add(r *http.Request) {
	l.mu.Lock()
	l.paths = append(l.paths, r.Method+" "+r.URL.RequestURI())
	l.mu.Unlock()
}

// since returns the paths logged after the first n.
func (l *requestLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.paths[n:]...)
}

func (l *requestLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.paths)
}

// lockedBuffer is an io.Writer for a child's output, safe to read while
// it is written.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// logLines returns wrangler's output lines that contain s.
func logLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(env.log.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
