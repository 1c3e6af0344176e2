package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestSizeAndColdStart reports the Worker's size and how fast it starts
// under wrangler: the time to "Ready", the first request (which starts the
// Go program) and the median of later ones.
func TestSizeAndColdStart(t *testing.T) {
	needWorker(t)
	var warm []time.Duration
	for i := 0; i < 21; i++ {
		t0 := time.Now()
		res, _ := do(t, "GET", "/api/health", nil, nil)
		warm = append(warm, time.Since(t0))
		if res.StatusCode != 200 {
			t.Fatalf("health: %d", res.StatusCode)
		}
	}
	sort.Slice(warm, func(i, j int) bool { return warm[i] < warm[j] })
	t.Logf("Worker app.wasm: %.2f MB raw, %.2f MB gzip", float64(env.wasmSize)/1e6, float64(env.wasmGzip)/1e6)
	t.Logf("cold start under wrangler dev: ready after %v; first request %v (Go program start included); warm median %v",
		env.readyIn.Round(time.Millisecond), env.firstReq.Round(time.Millisecond), warm[len(warm)/2].Round(time.Millisecond))
	if env.firstReq > time.Second {
		t.Errorf("the first request took %v: over the platform's one second of startup", env.firstReq)
	}
}

func TestHosting(t *testing.T) {
	needWorker(t)
	gz := http.Header{"Accept-Encoding": {"gzip"}}
	v := "/v/" + env.site.Version + "/"

	res, body := do(t, "GET", "/", gz, nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		res.Header.Get("Cache-Control") != "no-cache" || res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("/: %d %v", res.StatusCode, res.Header)
	}
	html := gunzip(t, body)
	for _, ref := range []string{`src="` + v + `app.js"`, `href="` + v + `style.css"`} {
		if !bytes.Contains(html, []byte(ref)) {
			t.Errorf("index.html lacks %s", ref)
		}
	}
	res, _ = do(t, "GET", "/", http.Header{"Accept-Encoding": {"gzip"}, "If-None-Match": {res.Header.Get("ETag")}}, nil)
	if res.StatusCode != 304 {
		t.Errorf("revalidating /: %d", res.StatusCode)
	}

	// The engine: compressed, immutable, byte for byte the build.
	res, body = do(t, "GET", v+"tgate.wasm", gz, nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/wasm" || res.Header.Get("Content-Encoding") != "gzip" ||
		res.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("tgate.wasm: %d %v", res.StatusCode, res.Header)
	}
	if !bytes.Equal(gunzip(t, body), env.engine) {
		t.Error("tgate.wasm differs from the build")
	}
	t.Logf("tgate.wasm: %.2f MB, %.2f MB as sent", float64(len(env.engine))/1e6, float64(len(body))/1e6)
	res, body = do(t, "GET", v+"tgate.wasm", http.Header{"Accept-Encoding": {"identity"}}, nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, env.engine) {
		t.Errorf("tgate.wasm without gzip: %d %v", res.StatusCode, res.Header)
	}

	wantType := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8", ".wasm": "application/wasm"}
	for _, f := range env.site.Files {
		for _, p := range []string{"/" + f.Name, v + f.Name} {
			if strings.HasSuffix(f.Name, ".html") && strings.HasPrefix(p, v) {
				continue
			}
			res, body := do(t, "GET", p, http.Header{"Accept-Encoding": {"identity"}}, nil)
			if res.StatusCode != 200 || !bytes.Equal(body, f.Data) {
				t.Errorf("%s: %d, %d bytes (want %d)", p, res.StatusCode, len(body), len(f.Data))
				continue
			}
			if want, ok := wantType[filepath.Ext(f.Name)]; ok && res.Header.Get("Content-Type") != want {
				t.Errorf("%s: Content-Type %q", p, res.Header.Get("Content-Type"))
			}
			if res.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("%s: no CORS", p)
			}
		}
	}
	for _, name := range []string{"wasm_exec.js", "tgate.js", "engine-worker.js", "store.js", "app.js", "style.css"} {
		if _, ok := env.site.File(name); !ok {
			t.Errorf("the site lacks %s", name)
		}
	}
	if _, ok := env.site.File("tgate-widget.js"); ok {
		res, _ := do(t, "GET", "/tgate-widget.js", nil, nil)
		if res.StatusCode != 200 || res.Header.Get("Cache-Control") != "no-cache" || res.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("tgate-widget.js: %d %v", res.StatusCode, res.Header)
		}
	}

	for _, p := range []string{"/missing.js", "/v/000000000000/app.js", v + "index.html", "/.wrangler/x", "/e2e/harness_test.go"} {
		if res, _ := do(t, "GET", p, nil, nil); res.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, res.StatusCode)
		}
	}
	if res, _ := do(t, "DELETE", "/index.html", nil, nil); res.StatusCode != 405 {
		t.Errorf("DELETE /index.html: %d", res.StatusCode)
	}
}

const (
	modelIndex = "/hf/tgate/tiny-sd/resolve/main/model_index.json"
	weights    = "/hf/tgate/tiny-sd/resolve/main/unet/diffusion_pytorch_model.safetensors"
)

func TestProxy(t *testing.T) {
	needWorker(t)
	want, err := os.ReadFile(filepath.Join(env.models, "tgate", "tiny-sd", "model_index.json"))
	if err != nil {
		t.Fatal(err)
	}
	res, body := do(t, "GET", modelIndex, nil, nil)
	if res.StatusCode != 200 || !bytes.Equal(body, want) || res.Header.Get("Access-Control-Allow-Origin") != "*" || res.Header.Get("X-Repo-Commit") == "" {
		t.Fatalf("model_index.json: %d %v", res.StatusCode, res.Header)
	}
	n := env.originLog.len()
	res, again := do(t, "GET", modelIndex, nil, nil)
	if res.StatusCode != 200 || !bytes.Equal(again, want) || res.Header.Get("X-Tgate-Cache") != "hit" {
		t.Errorf("again: %d %v", res.StatusCode, res.Header)
	}
	if got := env.originLog.since(n); len(got) != 0 {
		t.Errorf("a cached file went to the origin: %v", got)
	}

	// Weights: the origin redirects to its LFS store; the Worker follows.
	file, err := os.ReadFile(filepath.Join(env.models, "tgate", "tiny-sd", "unet", "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	size := fmt.Sprint(len(file))
	res, _ = do(t, "HEAD", weights, nil, nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Length") != size || res.Header.Get("X-Linked-Size") != size || res.Header.Get("ETag") == "" {
		t.Errorf("HEAD weights: %d %v", res.StatusCode, res.Header)
	}
	res, body = do(t, "GET", weights, http.Header{"Range": {"bytes=0-0"}}, nil)
	if res.StatusCode != 206 || res.Header.Get("Content-Range") != "bytes 0-0/"+size || !bytes.Equal(body, file[:1]) {
		t.Errorf("Range bytes=0-0: %d %v %q", res.StatusCode, res.Header, body)
	}
	res, body = do(t, "GET", weights, http.Header{"Range": {"bytes=1000-1999"}}, nil)
	if res.StatusCode != 206 || !bytes.Equal(body, file[1000:2000]) {
		t.Errorf("Range bytes=1000-1999: %d %v", res.StatusCode, res.Header)
	}
	res, body = do(t, "GET", weights, nil, nil)
	if res.StatusCode != 200 || !bytes.Equal(body, file) || res.Header.Get("X-Tgate-Cache") != "miss" {
		t.Fatalf("GET weights: %d %v (%d bytes)", res.StatusCode, res.Header, len(body))
	}
	res, body = do(t, "GET", weights, http.Header{"Range": {"bytes=-100"}}, nil)
	if res.StatusCode != 206 || !bytes.Equal(body, file[len(file)-100:]) || res.Header.Get("X-Tgate-Cache") != "hit" {
		t.Errorf("Range from the cache: %d %v", res.StatusCode, res.Header)
	}

	// The model API, as the engine asks for it, through /hf and at the
	// root (the Worker's origin is a hub too).
	for _, p := range []string{"/hf/api/models/tgate/tiny-sd/revision/main?blobs=true", "/api/models/tgate/tiny-sd/revision/main?blobs=true"} {
		res, body := do(t, "GET", p, nil, nil)
		var info struct {
			Siblings []struct {
				Name string `json:"rfilename"`
				Size int64  `json:"size"`
			} `json:"siblings"`
		}
		if res.StatusCode != 200 || json.Unmarshal(body, &info) != nil || len(info.Siblings) < 5 {
			t.Errorf("%s: %d %s", p, res.StatusCode, body)
		}
	}
	if res, body := do(t, "GET", "/tgate/tiny-sd/resolve/main/model_index.json", nil, nil); res.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Errorf("root layout: %d", res.StatusCode)
	}
	if res, body := do(t, "GET", "/api/local-models", nil, nil); res.StatusCode != 200 || string(body) != `["tgate/tiny-sd"]` {
		t.Errorf("local models: %d %s", res.StatusCode, body)
	}
	res, _ = do(t, "GET", "/hf/tgate/tiny-sd/resolve/main/missing.json", nil, nil)
	if res.StatusCode != 404 || res.Header.Get("X-Error-Code") != "EntryNotFound" {
		t.Errorf("missing file: %d %v", res.StatusCode, res.Header)
	}
	res, _ = do(t, "OPTIONS", weights, http.Header{"Origin": {"https://elsewhere.example"}, "Access-Control-Request-Method": {"GET"},
		"Access-Control-Request-Headers": {"range"}}, nil)
	if res.StatusCode != 204 || !strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Range") {
		t.Errorf("preflight: %d %v", res.StatusCode, res.Header)
	}
	// No Referer reaches the origin, whatever the client sent.
	res, _ = do(t, "GET", "/hf/tgate/tiny-sd/resolve/main/scheduler/scheduler_config.json", http.Header{"Referer": {"https://x.workers.dev/"}}, nil)
	if res.StatusCode != 200 {
		t.Errorf("with a Referer: %d", res.StatusCode)
	}
}

// TestRejections sends every request the Worker must refuse, and checks
// that each gets a 4xx, that the Worker keeps serving, and that nothing
// reaches a host other than the origin.
func TestRejections(t *testing.T) {
	needWorker(t)
	evil := strings.TrimPrefix(env.evil.URL, "http://")
	cases := []struct {
		name, method, path string
		status             int // 0: any 4xx (the runtime may normalize the path first)
	}{
		{"POST to the proxy", "POST", modelIndex, 405},
		{"PUT to the proxy", "PUT", modelIndex, 405},
		{"DELETE to the API", "DELETE", "/hf/api/models/tgate/tiny-sd", 405},
		{"repo off the allow-list", "GET", "/hf/stabilityai/sd-turbo/resolve/main/model_index.json", 403},
		{"API of a repo off the allow-list", "GET", "/hf/api/models/evil/model", 403},
		{"traversal", "GET", "/hf/tgate/tiny-sd/resolve/main/../../../../etc/passwd", 0},
		{"traversal out of the repo", "GET", "/hf/tgate/tiny-sd/resolve/main/../../other/resolve/main/x", 0},
		{"encoded traversal", "GET", "/hf/tgate/tiny-sd/resolve/main/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 0},
		{"encoded traversal with slashes", "GET", "/hf/tgate/tiny-sd/resolve/main/unet%2f..%2f..%2f..%2fx", 400},
		{"double-encoded traversal", "GET", "/hf/tgate/tiny-sd/resolve/main/%252e%252e/x", 400},
		{"backslash traversal", "GET", "/hf/tgate/tiny-sd/resolve/main/..%5c..%5cx", 400},
		{"absolute URL", "GET", "/hf/http://" + evil + "/x/resolve/main/y", 0},
		{"encoded absolute URL", "GET", "/hf/http:%2F%2F" + evil + "/x/resolve/main/y", 400},
		{"userinfo", "GET", "/hf/tgate/tiny-sd@" + evil + "/resolve/main/x", 400},
		{"host in a file path", "GET", "/hf/tgate/tiny-sd/resolve/main/@" + evil + "/x", 400},
		{"scheme-relative", "GET", "/hf//" + evil + "/resolve/main/x", 400},
		{"redirect off the origin", "GET", "/hf/tgate/tiny-sd/resolve/main/redirect-away", 502},
	}
	for _, tc := range cases {
		res, body := do(t, tc.method, tc.path, nil, nil)
		ok := res.StatusCode == tc.status || (tc.status == 0 && res.StatusCode >= 400 && res.StatusCode < 500)
		if !ok {
			t.Errorf("%s (%s %s): %d %s", tc.name, tc.method, tc.path, res.StatusCode, body)
		}
		if res, _ := do(t, "GET", "/api/health", nil, nil); res.StatusCode != 200 {
			t.Fatalf("after %s the Worker answers %d", tc.name, res.StatusCode)
		}
	}
	if n := env.evilHits.get(); n != 0 {
		t.Errorf("the Worker reached another host %d times", n)
	}
	for _, p := range env.originLog.since(0) {
		if strings.Contains(p, "sd-turbo") || strings.Contains(p, "evil") || strings.Contains(p, "passwd") || strings.Contains(p, "..") {
			t.Errorf("the origin was asked for %s", p)
		}
	}
}

// TestConcurrent sends 200 requests at once over the Worker's endpoints.
func TestConcurrent(t *testing.T) {
	needWorker(t)
	do(t, "GET", modelIndex, nil, nil) // cached before the burst
	paths := []string{"/", "/v/" + env.site.Version + "/tgate.js", "/api/health", modelIndex,
		"/hf/api/models/tgate/tiny-sd/revision/main?blobs=true", "/v/" + env.site.Version + "/style.css", "/api/local-models", "/tgate.js"}
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	start := time.Now()
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(p string) {
			defer wg.Done()
			req, _ := http.NewRequest("GET", env.base+p, nil)
			res, err := client.Do(req)
			if err != nil {
				errs <- fmt.Sprintf("%s: %v", p, err)
				return
			}
			defer res.Body.Close()
			var b bytes.Buffer
			if _, err := b.ReadFrom(res.Body); err != nil || res.StatusCode != 200 {
				errs <- fmt.Sprintf("%s: %d %v", p, res.StatusCode, err)
			}
		}(paths[i%len(paths)])
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	t.Logf("200 concurrent requests in %v", time.Since(start).Round(time.Millisecond))
}

// TestPageInBrowser opens the page the Worker hosts in headless Chromium:
// its modules load from the versioned folder (relative imports, the Web
// Worker, wasm_exec.js and tgate.wasm included), the page lists the
// allow-listed model as its own, loads it through the Worker's proxy and
// generates an image.
func TestPageInBrowser(t *testing.T) {
	needWorker(t)
	chrome := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chrome = p
			break
		}
	}
	if chrome == "" {
		t.Skip("no Chromium found (apt-get install chromium): the page is not opened in a browser")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chrome),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("enable-unsafe-webgpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	var console lockedBuffer
	messages := chromedp.Console(tab)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			console.Write([]byte(m.Text + "\n"))
		}
	}()
	defer func() {
		if t.Failed() {
			t.Logf("console:\n%s", console.String())
		}
	}()
	eval := func(expr string) string {
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	if err := chromedp.Do(tab, chromedp.Navigate(env.base+"/")); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	deadline := time.Now().Add(2 * time.Minute)
	state := ""
	for time.Now().Before(deadline) {
		if state = eval(`document.body.dataset.state || ""`); state == "ready" || state == "error" {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if state != "ready" {
		t.Fatalf("the page is %q: %s", state, eval(`document.querySelector("#status").textContent`))
	}
	t.Logf("page ready with the model loaded through the proxy after %v", time.Since(t0).Round(time.Millisecond))
	if loaded := eval(`document.querySelector("#model-loaded").textContent`); !strings.Contains(loaded, "tgate/tiny-sd") {
		t.Errorf("loaded model: %q", loaded)
	}
	got := eval(`(async () => {
	  const r = await window.tgateApp.engine.generate({ prompt: "a red fox", steps: 1, width: 32, height: 32 });
	  return r.png && r.png.type + " " + r.width + "x" + r.height;
	})()`)
	if got != "image/png 32x32" {
		t.Errorf("generate: %q", got)
	}
	v := "/v/" + env.site.Version + "/"
	loadedFiles := eval(`performance.getEntriesByType("resource").map(e => new URL(e.name).pathname).join(" ")`)
	for _, want := range []string{v + "app.js", v + "tgate.js", v + "engine-worker.js", v + "style.css"} {
		if !strings.Contains(loadedFiles, want) {
			t.Errorf("the page did not load %s: %s", want, loadedFiles)
		}
	}
	if os.Getenv("WORKER_E2E_SCREENSHOT") != "" {
		if buf, err := chromedp.Run(tab, chromedp.FullScreenshot(90)); err == nil {
			os.WriteFile(os.Getenv("WORKER_E2E_SCREENSHOT"), buf, 0o644)
		}
	}
}
