package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// widgetProbe runs in every document before the page's own scripts: it
// counts the Workers the page starts, records the widgets' events in order
// (and each tgate-done's detail, by the element's id) and the page's
// uncaught errors.
const widgetProbe = `(() => {
  if (window.widgetProbe) return;
  const probe = window.widgetProbe = { workers: [], events: [], done: {}, errors: [] };
  const NativeWorker = window.Worker;
  window.Worker = class extends NativeWorker {
    constructor(url, options) { super(url, options); probe.workers.push(String(url)); }
  };
  for (const type of ["tgate-progress", "tgate-done", "tgate-error"]) {
    document.addEventListener(type, (e) => {
      const d = e.detail || {};
      probe.events.push({ id: e.target.id, type, kind: d.type || "", phase: d.phase || "", start: !!d.start,
        step: d.step || 0, total: d.total || 0, code: d.code || "", message: d.message || "",
        bubbles: e.bubbles, composed: e.composed });
      if (type === "tgate-done") (probe.done[e.target.id] ||= []).push(d);
    });
  }
  addEventListener("error", (e) => probe.errors.push(String(e.message)));
  addEventListener("unhandledrejection", (e) => probe.errors.push(String((e.reason && e.reason.message) || e.reason)));
})()`

// noWebGPU removes WebGPU from the page before any script runs, as in a
// browser without it.
const noWebGPU = `delete Navigator.prototype.gpu;`

// widgetEvent is one event the probe recorded.
type widgetEvent struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Kind     string `json:"kind"`
	Phase    string `json:"phase"`
	Start    bool   `json:"start"`
	Step     int    `json:"step"`
	Total    int    `json:"total"`
	Code     string `json:"code"`
	Message  string `json:"message"`
	Bubbles  bool   `json:"bubbles"`
	Composed bool   `json:"composed"`
}

// widgetResult is a tgate-done's detail: the PNG and the engine's result.
type widgetResult struct {
	PNG    []byte `json:"png"`
	Result struct {
		result
		Settings struct {
			Seed   float64 `json:"seed"`
			Prompt string  `json:"prompt"`
		} `json:"settings"`
	} `json:"result"`
}

// openWidgetPage starts a server and a browser (as open does) on a page
// that runs nothing, installs the init scripts, then goes to target: a
// path of the server, or a URL that target builds from the server's
// address (a page on another origin).
func openWidgetPage(t *testing.T, target func(origin string) string, timeout time.Duration, init ...string) *session {
	t.Helper()
	s := open(t, "/no-such-page", timeout)
	for _, src := range init {
		if _, err := chromedp.Call(s.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(s.ctx, chromedp.Navigate(target(s.url))); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitJS polls a JavaScript condition until it is true, failing after d
// with what describe (an expression) says.
func (s *session) waitJS(d time.Duration, cond, describe string) {
	s.t.Helper()
	end := time.Now().Add(d)
	for {
		var ok bool
		s.eval(`!!(`+cond+`)`, &ok)
		if ok {
			return
		}
		if time.Now().After(end) {
			var what any
			s.eval(describe, &what)
			s.t.Fatalf("still waiting after %v for %s: %v", d, cond, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *session) probeEvents() []widgetEvent {
	s.t.Helper()
	var evs []widgetEvent
	s.eval(`window.widgetProbe.events`, &evs)
	return evs
}

// noWidgetErrors fails the test at once when a widget fired tgate-error.
func (s *session) noWidgetErrors() {
	s.t.Helper()
	for _, e := range s.probeEvents() {
		if e.Type == "tgate-error" {
			s.t.Fatalf("%s: tgate-error %s: %s", e.ID, e.Code, e.Message)
		}
	}
}

// doneResult returns the i-th tgate-done detail of the widget with id.
func (s *session) doneResult(id string, i int) widgetResult {
	s.t.Helper()
	var r widgetResult
	s.eval(`(async () => { const d = window.widgetProbe.done[`+jsString(id)+`][`+fmt.Sprint(i)+`];
	  const packed = await (`+packJS+`)({ png: d.png });
	  return { png: packed.png, result: { ...d.result, png: null, latents: null } }; })()`, &r)
	return r
}

// shadow evaluates expr with `root` bound to the shadow root of the
// element with id.
func (s *session) shadow(id, expr string, out any) {
	s.t.Helper()
	s.eval(`(() => { const root = document.getElementById(`+jsString(id)+`).shadowRoot; return (`+expr+`); })()`, out)
}

// checkRunEvents checks one widget's events: progress events with steps in
// order, then exactly one tgate-done per run, no tgate-error; every event
// bubbles out of the shadow DOM. It returns the number of runs.
func checkRunEvents(t *testing.T, evs []widgetEvent, id string) int {
	t.Helper()
	runs, progress, lastStep := 0, 0, 0
	for _, e := range evs {
		if e.ID != id {
			continue
		}
		if !e.Bubbles || !e.Composed {
			t.Errorf("%s: %s does not bubble out of the shadow root", id, e.Type)
		}
		switch e.Type {
		case "tgate-progress":
			progress++
			if e.Kind == "step" {
				if e.Step != lastStep+1 || e.Total < e.Step {
					t.Errorf("%s: step event %d/%d after step %d", id, e.Step, e.Total, lastStep)
				}
				lastStep = e.Step
			}
		case "tgate-done":
			if progress == 0 || lastStep == 0 {
				t.Errorf("%s: tgate-done without progress and step events before it", id)
			}
			runs++
			progress, lastStep = 0, 0
		case "tgate-error":
			t.Errorf("%s: tgate-error %s: %s", id, e.Code, e.Message)
		}
	}
	if progress != 0 {
		t.Errorf("%s: %d progress events after the last tgate-done", id, progress)
	}
	return runs
}

// weightLoads counts the model loads the widgets asked of the engine.
func weightLoads(evs []widgetEvent) int {
	n := 0
	for _, e := range evs {
		if e.Type == "tgate-progress" && e.Kind == "phase" && e.Phase == "weights" && e.Start {
			n++
		}
	}
	return n
}

// TestWidgetDemo: the demo page's two widgets (same seed, T-GATE off and
// v2) generate with the tiny model on one engine: one Worker, the model
// loaded once, runs queued; each fires progress events and then tgate-done
// with a PNG that is not blank; the image and its download link show in
// the shadow root.
func TestWidgetDemo(t *testing.T) {
	s := openWidgetPage(t, func(origin string) string { return origin + "/widget-demo.html" }, 6*time.Minute, widgetProbe)
	s.waitJS(4*time.Minute, `(window.widgetProbe.done.off && window.widgetProbe.done.v2) || window.widgetProbe.events.some((e) => e.type === "tgate-error")`,
		`window.widgetProbe.events.slice(-3)`)
	s.screenshot("widget")
	s.noWidgetErrors()

	evs := s.probeEvents()
	for _, id := range []string{"off", "v2"} {
		if n := checkRunEvents(t, evs, id); n != 1 {
			t.Errorf("%s: %d runs, want 1", id, n)
		}
	}
	if n := weightLoads(evs); n != 1 {
		t.Errorf("the model was loaded %d times for two widgets, want once", n)
	}
	var workers []string
	s.eval(`window.widgetProbe.workers`, &workers)
	if len(workers) != 1 {
		t.Errorf("the page started %d Workers (%v), want one engine for both widgets", len(workers), workers)
	}
	// The second widget waited for the first: its first event comes after
	// the first widget's tgate-done.
	firstDone, v2First := -1, -1
	for i, e := range evs {
		if e.ID == "off" && e.Type == "tgate-done" && firstDone < 0 {
			firstDone = i
		}
		if e.ID == "v2" && v2First < 0 {
			v2First = i
		}
	}
	if v2First < firstDone {
		t.Errorf("the second widget's run started (event %d) before the first one's ended (event %d)", v2First, firstDone)
	}

	for _, c := range []struct{ id, mode string }{{"off", "off"}, {"v2", "v2"}} {
		r := s.doneResult(c.id, 0)
		r.Result.PNG = r.PNG
		checkImage(t, r.Result.result)
		if r.Result.Gate.Mode != c.mode || r.Result.Settings.Seed != 42 {
			t.Errorf("%s: T-GATE %q, seed %v; want %s and 42", c.id, r.Result.Gate.Mode, r.Result.Settings.Seed, c.mode)
		}
		if c.mode == "v2" && r.Result.Gate.CrossReused == 0 {
			t.Errorf("%s: T-GATE v2 reused no cross-attention", c.id)
		}
		var ui struct {
			Src, Href, Download, Info string
			FormHidden, LinkHidden    bool
		}
		s.shadow(c.id, `({ src: root.querySelector("img").src, href: root.querySelector("a[download]").href,
		  download: root.querySelector("a[download]").download, linkHidden: root.querySelector("a[download]").hidden,
		  info: root.querySelector(".info").textContent, formHidden: root.querySelector("form").hidden })`, &ui)
		if !strings.HasPrefix(ui.Src, "blob:") || ui.Href != ui.Src || ui.LinkHidden || !strings.HasSuffix(ui.Download, ".png") {
			t.Errorf("%s: image %q, download link %q (%q, hidden %v); want the PNG shown and offered", c.id, ui.Src, ui.Href, ui.Download, ui.LinkHidden)
		}
		if !ui.FormHidden {
			t.Errorf("%s: a prompt box shows although prompt is fixed and autorun set", c.id)
		}
		if !strings.Contains(ui.Info, "T-GATE "+c.mode) {
			t.Errorf("%s: info line %q does not name T-GATE %s", c.id, ui.Info, c.mode)
		}
	}
	var errs []string
	s.eval(`window.widgetProbe.errors`, &errs)
	if len(errs) > 0 {
		t.Errorf("uncaught errors on the page: %v", errs)
	}
}

// TestWidgetNoWebGPU: in a browser without WebGPU the demo's widgets say so
// inside their shadow roots and fire tgate-error "no-webgpu"; the page's
// own script keeps working, no Worker starts, and the page's styles are
// its own.
func TestWidgetNoWebGPU(t *testing.T) {
	s := openWidgetPage(t, func(origin string) string { return origin + "/widget-demo.html" }, 2*time.Minute, noWebGPU, widgetProbe)
	s.waitJS(30*time.Second, `["off", "v2"].every((id) => window.widgetProbe.events.some((e) => e.id === id && e.type === "tgate-error"))`,
		`window.widgetProbe.events`)
	s.screenshot("widget-no-webgpu")
	for _, id := range []string{"off", "v2"} {
		var msg struct {
			Text   string
			Hidden bool
		}
		s.shadow(id, `({ text: root.querySelector(".message").textContent, hidden: root.querySelector(".message").hidden })`, &msg)
		if msg.Hidden || !strings.Contains(msg.Text, "WebGPU") {
			t.Errorf("%s: message %q (hidden %v); want one about WebGPU", id, msg.Text, msg.Hidden)
		}
	}
	for _, e := range s.probeEvents() {
		if e.Type == "tgate-error" && e.Code != "no-webgpu" {
			t.Errorf("%s: tgate-error code %q, want no-webgpu", e.ID, e.Code)
		}
		if e.Type != "tgate-error" {
			t.Errorf("%s: %s without WebGPU", e.ID, e.Type)
		}
	}

	// The page's own script ran and still answers: its form sets both
	// widgets' prompt (which runs them again, failing the same way).
	var page struct {
		Host, Font                       string
		Prompts                          []string
		Workers, Styles, Adopted, Errors int
	}
	s.eval(`(() => {
	  document.getElementById("both-prompt").value = "a quiet harbour";
	  document.querySelector("#both button").click();
	  return { host: document.getElementById("origin").textContent,
	    prompts: [...document.querySelectorAll("tgate-image")].map((w) => w.getAttribute("prompt")),
	    font: getComputedStyle(document.body).fontFamily,
	    workers: window.widgetProbe.workers.length, errors: window.widgetProbe.errors.length,
	    styles: document.querySelectorAll("style, link[rel=stylesheet]").length,
	    adopted: document.adoptedStyleSheets.length };
	})()`, &page)
	var u struct{ Host string }
	s.eval(`({ host: location.origin })`, &u)
	if page.Host != u.Host {
		t.Errorf("the page's script did not run: host %q, want %q", page.Host, u.Host)
	}
	if len(page.Prompts) != 2 || page.Prompts[0] != "a quiet harbour" || page.Prompts[1] != "a quiet harbour" {
		t.Errorf("the page's form did not reach the widgets: prompts %v", page.Prompts)
	}
	if page.Workers != 0 || page.Errors != 0 {
		t.Errorf("without WebGPU: %d Workers started, %d uncaught errors; want none", page.Workers, page.Errors)
	}
	if page.Styles != 1 || page.Adopted != 0 || !strings.Contains(page.Font, "Georgia") {
		t.Errorf("the page's styles changed: %d style elements (want its own 1), %d adopted sheets, body font %q", page.Styles, page.Adopted, page.Font)
	}
	s.waitJS(30*time.Second, `window.widgetProbe.events.filter((e) => e.type === "tgate-error").length >= 4`, `window.widgetProbe.events`)
}

// otherSite is a page of another origin that embeds the widget from the
// engine's server, with the models from there too.
const otherSite = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Someone's blog</title>
<style>body { font-family: Georgia, serif; }</style></head>
<body>
<h1>A post with a picture</h1>
<tgate-image id="w" model="tgate/tiny-sd" hub="%[1]s" prompt="a red boat" steps="2" seed="7"
             tgate="v2" gate-step="1" width="32" height="32" autorun></tgate-image>
<script type="module" src="%[1]s/tgate-widget.js"></script>
</body></html>`

// TestWidgetOtherSite: a page on another origin embeds the widget with one
// script tag: it generates; changing an attribute runs it again; without
// autorun its prompt box shows and runs on Enter. One Worker, the model
// loaded once.
func TestWidgetOtherSite(t *testing.T) {
	var site *httptest.Server
	s := openWidgetPage(t, func(origin string) string {
		site = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, otherSite, origin)
		}))
		return site.URL
	}, 6*time.Minute, widgetProbe)
	t.Cleanup(site.Close)
	doneCount := func(n int) string {
		return fmt.Sprintf(`(window.widgetProbe.done.w || []).length >= %d || window.widgetProbe.events.some((e) => e.type === "tgate-error")`, n)
	}
	last := `window.widgetProbe.events.slice(-3)`

	s.waitJS(3*time.Minute, doneCount(1), last)
	s.noWidgetErrors()
	r := s.doneResult("w", 0)
	r.Result.PNG = r.PNG
	checkImage(t, r.Result.result)
	if r.Result.Width != 32 || r.Result.Gate.Mode != "v2" || !strings.HasPrefix(r.Result.Parameters, "a red boat") {
		t.Errorf("first run: %dx%d, T-GATE %q, parameters %q", r.Result.Width, r.Result.Height, r.Result.Gate.Mode, r.Result.Parameters)
	}

	// A changed attribute runs an autorun widget again.
	s.eval(`document.getElementById("w").setAttribute("prompt", "a blue boat"), true`, nil)
	s.waitJS(3*time.Minute, doneCount(2), last)
	s.noWidgetErrors()
	if r := s.doneResult("w", 1); !strings.HasPrefix(r.Result.Parameters, "a blue boat") {
		t.Errorf("after the prompt attribute changed: parameters %q", r.Result.Parameters)
	}

	// Without autorun the prompt box shows; Enter in it runs.
	var hidden bool
	s.eval(`document.getElementById("w").removeAttribute("autorun"), new Promise((r) => setTimeout(r, 50))`, nil)
	s.shadow("w", `root.querySelector("form").hidden`, &hidden)
	if hidden {
		t.Fatal("no prompt box without autorun")
	}
	s.shadow("w", `(() => { const p = root.querySelector("textarea"); p.focus(); p.value = "a green boat";
	  p.dispatchEvent(new Event("input")); return true; })()`, nil)
	s.do(chromedp.KeyEvent("\r"))
	s.waitJS(3*time.Minute, doneCount(3), last)
	s.noWidgetErrors()
	if r := s.doneResult("w", 2); !strings.HasPrefix(r.Result.Parameters, "a green boat") {
		t.Errorf("a run from the prompt box: parameters %q", r.Result.Parameters)
	}

	evs := s.probeEvents()
	if n := checkRunEvents(t, evs, "w"); n != 3 {
		t.Errorf("%d runs, want 3", n)
	}
	if n := weightLoads(evs); n != 1 {
		t.Errorf("the model was loaded %d times, want once", n)
	}
	var workers []string
	s.eval(`window.widgetProbe.workers`, &workers)
	if len(workers) != 1 {
		t.Errorf("the page started %d Workers, want 1", len(workers))
	}
}
