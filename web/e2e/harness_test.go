// Package e2e drives the generation page (web/) in headless Chromium with
// chromedp: the real page, the real engine (tgate.wasm on WebGPU, which is
// SwiftShader on machines without a GPU), served by internal/devserver
// with model folders in the Hub's layout. Results are checked against the
// CPU backend and against diffusers' reference runs.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tgate-web/tgate/fixture"
	"github.com/tgate-web/tgate/internal/chrome"
	"github.com/tgate-web/tgate/internal/devserver"
	"github.com/tgate-web/tgate/tensor"
)

// env is what TestMain prepares once: the engine build, the models folder
// and the project root.
var env struct {
	root, wasm, models string
	skip               string
}

func TestMain(m *testing.M) {
	code := func() int {
		tmp, err := os.MkdirTemp("", "tgate-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		if err := prepare(tmp); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// prepare builds tgate.wasm and the models folder: the tiny fixture model
// as tgate/tiny-sd and, where ../shared exists, diffusers' tiny reference
// pipelines under golden/.
func prepare(tmp string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	env.root = root
	env.wasm = filepath.Join(tmp, "tgate.wasm")
	build := exec.Command("go", "build", "-o", env.wasm, "./wasm")
	build.Dir = root
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building tgate.wasm: %v\n%s", err, out)
	}
	env.models = filepath.Join(tmp, "models")
	if err := fixture.Write(filepath.Join(env.models, "tgate", "tiny-sd"), fixture.Options{Preset: fixture.SD15, Seed: 7}); err != nil {
		return err
	}
	// The same model as F16 weights in diffusers' fp16 variant, each
	// component sharded in two, as large repositories are.
	if err := fixture.Write(filepath.Join(env.models, "tgate", "tiny-sd-fp16"), fixture.Options{Preset: fixture.SD15, Seed: 11,
		DType: tensor.F16, Variant: "fp16", Shards: 2}); err != nil {
		return err
	}
	if err := writeBroken(filepath.Join(env.models, "tgate", "tiny-sd"), filepath.Join(env.models, "tgate", "broken")); err != nil {
		return err
	}
	golden := filepath.Join(root, "..", "shared", "golden")
	if _, err := os.Stat(golden); err == nil {
		os.MkdirAll(filepath.Join(env.models, "golden"), 0o755)
		for _, name := range []string{"sd15_tiny_pipeline", "lcm_tiny_pipeline", "sd15_inpaint_tiny_pipeline", "sdxl_tiny_pipeline",
			"pixart_tiny_pipeline", "lora_tiny", "single_file"} {
			if err := os.Symlink(filepath.Join(golden, name), filepath.Join(env.models, "golden", name)); err != nil {
				return err
			}
		}
		// The real TAESD decoder, in taesd.py's single-file layout.
		os.MkdirAll(filepath.Join(env.models, "madebyollin"), 0o755)
		taesd := filepath.Join(root, "..", "shared", "assets", "taesd", "bf16_comfyui_fork")
		if err := os.Symlink(taesd, filepath.Join(env.models, "madebyollin", "taesd-bf16")); err != nil {
			return err
		}
	}
	if _, err := chrome.Find(); err != nil {
		return err
	}
	return nil
}

// writeBroken copies a model folder whose UNet config then disagrees
// with its weights (wider first block): a bad model folder.
func writeBroken(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if rel == filepath.Join("unet", "config.json") {
			var cfg map[string]any
			if err := json.Unmarshal(data, &cfg); err != nil {
				return err
			}
			ch := cfg["block_out_channels"].([]any)
			ch[0] = ch[0].(float64) * 2
			if data, err = json.Marshal(cfg); err != nil {
				return err
			}
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755)
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
}

// session is one page in a fresh browser profile (so an empty cache)
// with its own server.
type session struct {
	t   *testing.T
	srv *devserver.Server
	url string
	ctx context.Context
	log []string
}

// open starts a server and a fresh headless Chromium on path ("/?...",
// where {origin} stands for the server's address).
func open(t *testing.T, path string, timeout time.Duration) *session {
	t.Helper()
	srv, err := devserver.New(devserver.Config{WebDir: filepath.Join(env.root, "web"), WASM: env.wasm, ModelsDir: env.models})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	bin, err := chrome.Find()
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}, chrome.Flags...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(cancelTab)
	s := &session{t: t, srv: srv, url: hs.URL, ctx: tab}
	messages := chromedp.Console(tab)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			s.log = append(s.log, m.Text)
		}
	}()
	if err := chromedp.Do(tab, chromedp.Navigate(hs.URL+strings.ReplaceAll(path, "{origin}", url.QueryEscape(hs.URL)))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range s.log {
				t.Logf("console: %s", l)
			}
		}
	})
	return s
}

// do runs chromedp actions, failing the test on error.
func (s *session) do(actions ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	if err := chromedp.Do(s.ctx, actions...); err != nil {
		s.t.Fatalf("%v (state %q, status %q)", err, s.state(), s.text("#status"))
	}
}

// eval evaluates a JS expression (awaiting a promise) into out.
func (s *session) eval(expr string, out any) {
	s.t.Helper()
	raw, err := chromedp.Run(s.ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		s.t.Fatalf("evaluating %s: %v", short(expr), err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("evaluating %s: %v (%s)", short(expr), err, short(string(raw)))
		}
	}
}

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func (s *session) state() string {
	v, _ := chromedp.Run(s.ctx, chromedp.Evaluate[string](`document.body.dataset.state || ""`))
	return v
}

func (s *session) text(sel string) string {
	v, _ := chromedp.Run(s.ctx, chromedp.Evaluate[string](`(document.querySelector(`+jsString(sel)+`) || {}).textContent || ""`))
	return strings.TrimSpace(v)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitState polls until the page's state is one of want, failing after d.
func (s *session) waitState(d time.Duration, want ...string) string {
	s.t.Helper()
	end := time.Now().Add(d)
	for {
		st := s.state()
		for _, w := range want {
			if st == w {
				return st
			}
		}
		if time.Now().After(end) {
			s.t.Fatalf("page state %q after %v, want %v; status: %s", st, d, want, s.text("#status"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the page to out/e2e-NAME.png under the project root.
func (s *session) screenshot(name string) {
	buf, err := chromedp.Run(s.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := filepath.Join(env.root, "out")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "e2e-"+name+".png"), buf, 0o644)
}

// result is the part of an engine Result the tests read, with the PNG as
// bytes.
type result struct {
	PNG         []byte    `json:"png"`
	Latents     []float32 `json:"latents"`
	LatentShape []int     `json:"latentShape"`
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	Parameters  string    `json:"parameters"`
	Memory      struct {
		PeakBytes          float64   `json:"peakBytes"`
		StepPeakBytes      []float64 `json:"stepPeakBytes"`
		PeakAfterGateBytes float64   `json:"peakAfterGateBytes"`
	} `json:"memory"`
	Gate struct {
		Mode           string `json:"mode"`
		CrossReused    int    `json:"crossReused"`
		ReleasedAtStep *int   `json:"releasedAtStep"`
	} `json:"gate"`
	Timings struct {
		TotalMs float64   `json:"totalMs"`
		StepMs  []float64 `json:"stepMs"`
	} `json:"timings"`
	Warnings []string `json:"warnings"`
}

// packJS turns a Result (r) into JSON-friendly form: the PNG as base64
// (decoded by encoding/json into []byte) and latents as an array.
const packJS = `async (r) => {
  let png = null;
  if (r.png) {
    const b = new Uint8Array(await r.png.arrayBuffer());
    let s = ""; for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
    png = btoa(s);
  }
  return { ...r, png, latents: r.latents ? Array.from(r.latents) : null };
}`

// lastResult returns the page's latest result.
func (s *session) lastResult() result {
	s.t.Helper()
	var r result
	s.eval(`(`+packJS+`)(window.tgateApp.lastResult)`, &r)
	return r
}

// generate calls engine.generate with the options object literal opts.
func (s *session) generate(opts string) result {
	s.t.Helper()
	var r result
	s.eval(`(async () => (`+packJS+`)(await window.tgateApp.engine.generate(`+opts+`)))()`, &r)
	return r
}

// setField sets a form control's value and fires input and change, as a
// person's edit does.
func (s *session) setField(id, value string) {
	s.t.Helper()
	s.eval(`(() => { const el = document.getElementById(`+jsString(id)+`);
	  el.value = `+jsString(value)+`;
	  el.dispatchEvent(new Event("input", { bubbles: true }));
	  el.dispatchEvent(new Event("change", { bubbles: true }));
	  return el.value; })()`, nil)
}

// clickAndWait clicks a button and waits until the run it starts is over
// (the page ready, or showing an error). The state is first marked
// "clicked", so the wait sees the run's own return to ready.
func (s *session) clickAndWait(sel string, d time.Duration) string {
	s.t.Helper()
	s.eval(`document.body.dataset.state = "clicked", true`, nil)
	s.do(chromedp.Click(sel))
	return s.waitState(d, "ready", "error")
}

// maxRelDiff is max|a−b| / max|b|.
func maxRelDiff(a, b []float32) float64 {
	var d, m float64
	for i := range b {
		d = max(d, abs(float64(a[i]-b[i])))
		m = max(m, abs(float64(b[i])))
	}
	return d / m
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
