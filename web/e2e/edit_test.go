package e2e

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tgate-web/tgate/pnginfo"
)

// The Image panel, the LoRA list, the presets of the new models and the options the page hands
// to engine.generate. These run on the page alone: engine.generate is replaced by a recorder
// (the real one checks its options in tgate.js before anything reaches the Worker, and that part
// is exercised directly).

// writePattern writes a w×h PNG whose pixel (x, y) is patternAt(x, y) and returns its path.
func writePattern(t *testing.T, w, h int) string {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, patternAt(x, y))
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "init.png")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func patternAt(x, y int) color.NRGBA {
	return color.NRGBA{R: uint8(x * 4), G: uint8(y * 5), B: uint8((x + y) * 2), A: 255}
}

// distToSegment is the distance from (px, py) to the segment (ax, ay)–(bx, by).
func distToSegment(px, py, ax, ay, bx, by float64) float64 {
	dx, dy := bx-ax, by-ay
	u := ((px-ax)*dx + (py-ay)*dy) / (dx*dx + dy*dy)
	u = math.Max(0, math.Min(1, u))
	return math.Hypot(px-(ax+u*dx), py-(ay+u*dy))
}

// canvasPixels reads a canvas's RGBA bytes as a flat array.
func (s *session) canvasPixels(id string) (w, h int, data []int) {
	s.t.Helper()
	var out struct {
		W, H int
		D    []int
	}
	s.eval(`(() => { const c = document.getElementById(`+jsString(id)+`);
	  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
	  return { W: c.width, H: c.height, D: Array.from(d) }; })()`, &out)
	return out.W, out.H, out.D
}

// strokeMask draws a brush stroke on the mask canvas from image pixel a to b, with pointer
// events at the matching screen positions (the canvas is shown scaled).
func (s *session) strokeMask(ax, ay, bx, by float64) {
	s.t.Helper()
	s.eval(`(() => { const c = document.getElementById("mask-canvas");
	  const r = c.getBoundingClientRect();
	  const at = (x, y) => ({ clientX: r.left + (x + 0.5) * r.width / c.width, clientY: r.top + (y + 0.5) * r.height / c.height,
	    button: 0, buttons: 1, pointerId: 7, bubbles: true });
	  c.dispatchEvent(new PointerEvent("pointerdown", at(`+ftoa(ax)+`, `+ftoa(ay)+`)));
	  for (let i = 1; i <= 8; i++) {
	    const f = i / 8;
	    c.dispatchEvent(new PointerEvent("pointermove", at(`+ftoa(ax)+` + f * (`+ftoa(bx-ax)+`), `+ftoa(ay)+` + f * (`+ftoa(by-ay)+`))));
	  }
	  c.dispatchEvent(new PointerEvent("pointerup", at(`+ftoa(bx)+`, `+ftoa(by)+`)));
	  return true; })()`, nil)
}

func ftoa(v float64) string {
	return jsonString(v)
}

// jsonString is v as JSON (map keys sorted), for comparing values read from the page.
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// checkStroke compares the mask with an independent rendering of a round brush of the given
// width along a–b: white within the brush (1 px inside its edge), black beyond it (1 px out);
// the antialiased edge is not checked. Returns the number of pixels checked white.
func checkStroke(t *testing.T, w, h int, d []int, ax, ay, bx, by, width float64, inverted bool) int {
	t.Helper()
	inside, outside, bad := 0, 0, 0
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			// pixel centres; the stroke is drawn through pixel centres too
			dist := distToSegment(float64(x)+0.5, float64(y)+0.5, ax+0.5, ay+0.5, bx+0.5, by+0.5)
			i := 4 * (y*w + x)
			lum := (d[i]*19595 + d[i+1]*38470 + d[i+2]*7471 + 0x8000) >> 16
			wantWhite := dist <= width/2-1
			wantBlack := dist >= width/2+1
			if inverted {
				wantWhite, wantBlack = wantBlack, wantWhite
			}
			switch {
			case wantWhite:
				inside++
				if lum < 250 {
					bad++
					if bad <= 5 {
						t.Errorf("mask pixel (%d, %d) at %.1f px from the stroke: luminance %d, want white", x, y, dist, lum)
					}
				}
			case wantBlack:
				outside++
				if lum > 5 || d[i+3] != 255 {
					bad++
					if bad <= 5 {
						t.Errorf("mask pixel (%d, %d) at %.1f px from the stroke: luminance %d alpha %d, want opaque black", x, y, dist, lum, d[i+3])
					}
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d checked mask pixels are wrong", bad, inside+outside)
	}
	return inside
}

// TestEditPanels drives the Image panel (an init image from a file, the mask brush, invert,
// clear), the LoRA list, the presets of SD-XL and PixArt, the options the page passes to
// engine.generate (init image, mask, strength, LoRAs, DeepCache, adaptive guidance, the auto
// gate, SD-XL micro-conditioning), the Compare view's methods, "use as init image" on a gallery
// image, and tgate.js's own checks of the image options.
func TestEditPanels(t *testing.T) {
	s := open(t, "/", 8*time.Minute)
	s.waitState(2*time.Minute, "ready", "error")

	// ---- presets fill the fields, and the fields follow the model family ----
	type fields struct {
		Steps, Guidance, Scheduler, Spacing, Width, Mode, Gate, SP, Warm string
		SDXL, PixArt, DeepCache                                          bool
		Note                                                             string
	}
	readFields := func() fields {
		var f fields
		s.eval(`(() => { const v = (id) => document.getElementById(id).value; const shown = (id) => !document.getElementById(id).hidden;
		  return { Steps: v("steps"), Guidance: v("guidance"), Scheduler: v("scheduler"), Spacing: v("spacing"), Width: v("width"),
		    Mode: v("tgate-mode"), Gate: v("gate-step"), SP: v("sp-interval"), Warm: v("warm-up"),
		    SDXL: shown("sdxl-fields"), PixArt: shown("pixart-fields"), DeepCache: shown("deepcache-fields"),
		    Note: shown("model-note") ? document.getElementById("model-note").textContent : "" }; })()`, &f)
		return f
	}
	s.setField("model", "sdxl-base")
	if f := readFields(); f != (fields{Steps: "25", Guidance: "5", Scheduler: "euler", Width: "1024", Mode: "v2", Gate: "10", SP: "5", Warm: "2", SDXL: true, DeepCache: true}) {
		t.Errorf("SD-XL base preset: %+v", f)
	}
	s.setField("model", "sdxl-turbo")
	if f := readFields(); f.Steps != "1" || f.Guidance != "0" || f.Scheduler != "euler-a" || f.Spacing != "trailing" || f.Width != "512" || f.Mode != "off" || !f.SDXL {
		t.Errorf("SDXL-Turbo preset: %+v", f)
	}
	s.setField("model", "lcm-sdxl")
	if f := readFields(); f.Steps != "4" || f.Scheduler != "lcm" || f.Gate != "1" || !strings.Contains(f.Note, "UNet alone") {
		t.Errorf("LCM-SDXL preset: %+v", f)
	}
	s.setField("model", "pixart-lcm")
	if f := readFields(); f != (fields{Steps: "4", Guidance: "0", Scheduler: "lcm", Width: "1024", Mode: "v2", Gate: "1", SP: "1", Warm: "0", PixArt: true}) {
		t.Errorf("LCM-PixArt preset: %+v", f)
	}
	s.setField("model", "pixart-alpha-512")
	if f := readFields(); f.Steps != "25" || f.Guidance != "4.5" || f.Scheduler != "dpm++2m" || f.Width != "512" || f.Gate != "15" || f.SP != "3" || !f.PixArt || f.DeepCache {
		t.Errorf("PixArt-α 512 preset: %+v", f)
	}
	var sources map[string]string
	s.eval(`Object.fromEntries([...document.getElementById("model").options].map((o) => [o.value, o.textContent]))`, &sources)
	for _, id := range []string{"sdxl-base", "sdxl-turbo", "ssd-1b", "lcm-sdxl", "pixart-alpha-512", "pixart-alpha-1024", "pixart-sigma-1024", "pixart-lcm", "checkpoint"} {
		if _, ok := sources[id]; !ok {
			t.Errorf("model choice %q missing (have %v)", id, sources)
		}
	}

	// SD-XL options shaped for an SD-XL model (its preset chosen, not loaded).
	s.setField("model", "sdxl-base")
	s.setField("prompt", "a lighthouse")
	s.setField("prompt2", "oil painting")
	s.setField("original-h", "1024")
	s.setField("original-w", "768")
	s.setField("crop-top", "0")
	s.setField("crop-left", "32")
	var sdxl map[string]any
	s.eval(`(() => { const o = window.tgateApp.buildOptions(); return { prompt2: o.prompt2, originalSize: o.originalSize,
	  crops: o.cropsCoordsTopLeft, target: o.targetSize ?? null, binning: o.resolutionBinning ?? null }; })()`, &sdxl)
	if got := jsonString(sdxl); got != `{"binning":null,"crops":[0,32],"originalSize":[1024,768],"prompt2":"oil painting","target":null}` {
		t.Errorf("SD-XL options: %s", got)
	}
	s.setField("crop-left", "")
	var flagged string
	s.eval(`(() => { try { window.tgateApp.buildOptions(); return ""; } catch (e) { return e.message; } })()`, &flagged)
	if !strings.Contains(flagged, "give both") {
		t.Errorf("a half-filled crop pair: %q, want an error asking for both numbers", flagged)
	}
	s.setField("crop-top", "")
	// Back to the tiny model the page loaded.
	s.setField("model", "local")
	s.setField("steps", "3")

	// ---- the init image and the mask brush ----
	const iw, ih = 64, 48
	s.do(chromedp.SetUploadFiles("#init-file", []string{writePattern(t, iw, ih)}))
	s.waitJS(10*time.Second, `window.tgateApp.initImage`, `document.getElementById("status").textContent`)
	if w, h := s.value("width"), s.value("height"); w != "64" || h != "48" {
		t.Errorf("after picking a 64×48 init image: width %s height %s", w, h)
	}
	w, h, pix := s.canvasPixels("init-canvas")
	if w != iw || h != ih {
		t.Fatalf("init canvas %d×%d, want %d×%d", w, h, iw, ih)
	}
	for _, p := range [][2]int{{0, 0}, {10, 7}, {63, 47}, {31, 20}} {
		c := patternAt(p[0], p[1])
		i := 4 * (p[1]*w + p[0])
		if pix[i] != int(c.R) || pix[i+1] != int(c.G) || pix[i+2] != int(c.B) {
			t.Errorf("init canvas pixel %v = %v, want %v", p, pix[i:i+4], c)
		}
	}
	if v := s.value("strength"); v != "0.8" {
		t.Errorf("img2img strength %s, want diffusers' default 0.8", v)
	}
	s.eval(`document.getElementById("mask-on").click(), true`, nil)
	if v := s.value("strength"); v != "1" {
		t.Errorf("inpainting strength %s, want diffusers' default 1.0", v)
	}
	s.setField("brush-size", "10")
	s.strokeMask(10, 10, 50, 20)
	w, h, pix = s.canvasPixels("mask-canvas")
	if w != iw || h != ih {
		t.Fatalf("mask canvas %d×%d, want the init image's %d×%d", w, h, iw, ih)
	}
	white := checkStroke(t, w, h, pix, 10, 10, 50, 20, 10, false)
	t.Logf("mask brush: %d pixels checked white along the stroke; coverage text %q", white, s.text("#mask-coverage"))
	s.eval(`document.getElementById("mask-invert").click(), true`, nil)
	_, _, inv := s.canvasPixels("mask-canvas")
	checkStroke(t, w, h, inv, 10, 10, 50, 20, 10, true)
	s.eval(`document.getElementById("mask-invert").click(), true`, nil)
	_, _, back := s.canvasPixels("mask-canvas")
	if jsonString(back) != jsonString(pix) {
		t.Error("inverting the mask twice did not give it back")
	}
	s.eval(`document.getElementById("mask-clear").click(), true`, nil)
	_, _, cleared := s.canvasPixels("mask-canvas")
	for i := 0; i < len(cleared); i += 4 {
		if cleared[i] != 0 || cleared[i+1] != 0 || cleared[i+2] != 0 || cleared[i+3] != 255 {
			t.Fatalf("cleared mask pixel %d = %v, want opaque black", i/4, cleared[i:i+4])
		}
	}
	s.strokeMask(10, 10, 50, 20)
	_, _, pix = s.canvasPixels("mask-canvas")
	s.screenshot("edit-mask")

	// ---- LoRAs: a Hub path with a scale, a file from disk, one removed ----
	s.setField("lora-url", "owner/repo/detail.safetensors")
	s.eval(`document.getElementById("lora-add").click(), true`, nil)
	s.setField("lora-scale-0", "0.5")
	loraFile := filepath.Join(t.TempDir(), "my style.safetensors")
	os.WriteFile(loraFile, []byte("{}"), 0o644)
	s.do(chromedp.SetUploadFiles("#lora-file", []string{loraFile}))
	s.waitJS(5*time.Second, `document.querySelectorAll("#lora-list li").length === 2`, `document.getElementById("lora-list").textContent`)
	s.setField("lora-url", "https://example.com/x/gone.safetensors")
	s.eval(`document.getElementById("lora-add").click(), true`, nil)
	s.eval(`document.querySelectorAll("#lora-list .lora-remove")[2].click(), true`, nil)
	var flaggedLoras int
	s.eval(`document.querySelectorAll("#lora-list li[data-missing]").length`, &flaggedLoras)
	if flaggedLoras != 0 {
		t.Errorf("%d LoRAs flagged as missing their file", flaggedLoras)
	}

	// ---- the options the page passes to engine.generate ----
	if st := s.state(); st != "ready" {
		t.Fatalf("the engine did not start (state %s, status %s): the page's generate needs it", st, s.text("#status"))
	}
	s.eval(`(() => {
	  window.generateCalls = [];
	  window.tgateApp.engine.generate = async (o) => {
	    window.generateCalls.push(o);
	    const c = new OffscreenCanvas(40, 24);
	    const ctx = c.getContext("2d");
	    ctx.fillStyle = "rgb(10, 200, 30)";
	    ctx.fillRect(0, 0, 40, 24);
	    const png = await c.convertToBlob({ type: "image/png" });
	    return { png, width: 40, height: 24, timings: { totalMs: 5 }, memory: {}, gate: { mode: (o.tgate && o.tgate.mode) || "off" },
	      settings: { prompt: o.prompt, seed: o.seed ?? 0 } };
	  };
	  return true; })()`, nil)
	s.setField("prompt", "a red fox")
	s.setField("tgate-mode", "v2")
	s.eval(`document.getElementById("gate-auto").click(), true`, nil)
	s.setField("auto-threshold", "0.02")
	s.setField("deepcache-interval", "3")
	s.setField("deepcache-branch", "1")
	s.setField("adaptive-guidance", "0.9993")
	if st := s.clickAndWait("#generate", time.Minute); st != "ready" {
		t.Fatalf("generate: state %s, status %s", st, s.text("#status"))
	}
	var call struct {
		Prompt       string `json:"prompt"`
		Strength     float64
		InitIsBlob   bool
		InitName     string
		MaskIsCanvas bool
		Mask         []int
		Loras        []struct {
			URL   string  `json:"url"`
			Scale float64 `json:"scale"`
		}
		TGate            map[string]any `json:"tgate"`
		DeepCache        map[string]any `json:"deepcache"`
		AdaptiveGuidance float64        `json:"adaptiveGuidance"`
		Width            int            `json:"width"`
		Height           int            `json:"height"`
		Prompt2          *string        `json:"prompt2"`
	}
	s.eval(`(() => { const o = window.generateCalls[0]; const m = o.mask;
	  return { ...o, initImage: undefined, mask: undefined, InitIsBlob: o.initImage instanceof Blob, InitName: o.initImage && o.initImage.name,
	    Strength: o.strength, MaskIsCanvas: m instanceof HTMLCanvasElement, Loras: o.loras,
	    Mask: m ? Array.from(m.getContext("2d").getImageData(0, 0, m.width, m.height).data) : null }; })()`, &call)
	if call.Prompt != "a red fox" || !call.InitIsBlob || call.InitName != "init.png" || call.Strength != 1 || !call.MaskIsCanvas {
		t.Errorf("generate options: prompt %q, init image a Blob %v (%q), strength %v, mask a canvas %v", call.Prompt, call.InitIsBlob, call.InitName, call.Strength, call.MaskIsCanvas)
	}
	if jsonString(call.Mask) != jsonString(pix) {
		t.Error("the mask passed to generate is not the mask drawn")
	}
	if len(call.Loras) != 2 || call.Loras[0].URL != "owner/repo/detail.safetensors" || call.Loras[0].Scale != 0.5 ||
		!strings.HasPrefix(call.Loras[1].URL, "blob:") || !strings.HasSuffix(call.Loras[1].URL, "#my%20style.safetensors") || call.Loras[1].Scale != 1 {
		t.Errorf("loras: %+v", call.Loras)
	}
	if jsonString(call.TGate) != `{"autoThreshold":0.02,"gateStep":"auto","mode":"v2"}` {
		t.Errorf("tgate: %s", jsonString(call.TGate))
	}
	// T-GATE is on, so the Adaptive Guidance field (which the pipeline
	// refuses together with T-GATE) is not sent.
	if jsonString(call.DeepCache) != `{"branch":1,"interval":3}` || call.AdaptiveGuidance != 0 {
		t.Errorf("deepcache %s, adaptiveGuidance %v", jsonString(call.DeepCache), call.AdaptiveGuidance)
	}
	if call.Width != 64 || call.Height != 48 || call.Prompt2 != nil {
		t.Errorf("size %dx%d (want the init image's 64x48), prompt2 %v (want none for an SD 1.5 model)", call.Width, call.Height, call.Prompt2)
	}

	// ---- Compare: off / T-GATE / DeepCache / both ----
	s.setField("compare-method", "all")
	if st := s.clickAndWait("#compare", time.Minute); st != "ready" {
		t.Fatalf("compare: state %s, status %s", st, s.text("#status"))
	}
	var runs []string
	s.eval(`window.generateCalls.slice(1).map((o) => JSON.stringify({ t: o.tgate.mode, g: o.tgate.gateStep ?? null, d: o.deepcache || null, a: o.adaptiveGuidance ?? null }))`, &runs)
	want := []string{
		`{"t":"off","g":null,"d":null,"a":null}`,
		`{"t":"v2","g":"auto","d":null,"a":null}`,
		`{"t":"off","g":null,"d":{"interval":3,"branch":1},"a":null}`,
		`{"t":"v2","g":"auto","d":{"interval":3,"branch":1},"a":null}`,
	}
	if strings.Join(runs, "\n") != strings.Join(want, "\n") {
		t.Errorf("compare runs:\n%s\nwant\n%s", strings.Join(runs, "\n"), strings.Join(want, "\n"))
	}
	var methods []string
	s.eval(`Array.from(document.querySelectorAll("#compare-view figure.compare-item")).map((f) => f.dataset.method)`, &methods)
	if strings.Join(methods, ",") != "off,T-GATE,DeepCache,T-GATE + DeepCache" {
		t.Errorf("compare view methods %v", methods)
	}

	var agNote bool
	s.eval(`!document.getElementById("ag-none").hidden`, &agNote)
	if !agNote {
		t.Error("with T-GATE on, the page does not say that Adaptive Guidance does nothing")
	}
	// With T-GATE off, the Adaptive Guidance field is sent and the note goes.
	s.setField("tgate-mode", "off")
	s.eval(`!document.getElementById("ag-none").hidden`, &agNote)
	if agNote {
		t.Error("with T-GATE off on an SD model, the page still says Adaptive Guidance does nothing")
	}
	if st := s.clickAndWait("#generate", time.Minute); st != "ready" {
		t.Fatalf("generate with T-GATE off: state %s, status %s", st, s.text("#status"))
	}
	var ag float64
	s.eval(`window.generateCalls[window.generateCalls.length - 1].adaptiveGuidance ?? 0`, &ag)
	if ag != 0.9993 {
		t.Errorf("adaptiveGuidance %v with T-GATE off, want 0.9993", ag)
	}

	// ---- "use as init image" on a gallery image ----
	s.eval(`document.querySelector("#gallery .use-init").click(), true`, nil)
	s.waitJS(10*time.Second, `window.tgateApp.initImage && window.tgateApp.initImage.width === 40`, `JSON.stringify(window.tgateApp.initImage)`)
	w, h, pix = s.canvasPixels("init-canvas")
	if w != 40 || h != 24 || pix[0] != 10 || pix[1] != 200 || pix[2] != 30 {
		t.Errorf("init image from the gallery: %d×%d, first pixel %v; want 40×24 rgb(10, 200, 30)", w, h, pix[:4])
	}
	if s.value("width") != "40" || s.value("height") != "24" {
		t.Errorf("size fields after use as init image: %s×%s", s.value("width"), s.value("height"))
	}
	var masked bool
	s.eval(`window.tgateApp.initImage.masked`, &masked)
	if masked {
		t.Error("a new init image kept the old mask switched on")
	}

	// ---- a PNG's settings come back: strength, LoRAs, DeepCache, the auto gate, SD-XL fields ----
	params := pnginfo.Params{Prompt: "a castle", Steps: 6, Sampler: "euler", Guidance: 5, Seed: 9, Width: 64, Height: 48,
		Model: "tgate/tiny-sd", Extra: []pnginfo.KV{
			{Key: "T-GATE", Value: "v2"}, {Key: "Gate step", Value: "auto"}, {Key: "Auto gate threshold", Value: "0.05"},
			{Key: "Denoising strength", Value: "0.6"}, {Key: "LoRA", Value: "owner/repo/detail.safetensors:0.8, my style:1.5"},
			{Key: "DeepCache interval", Value: "2"}, {Key: "DeepCache branch", Value: "1"}, {Key: "Adaptive guidance", Value: "0.999"},
			{Key: "Prompt 2", Value: "oil, canvas"}, {Key: "Original size", Value: "1024,768"},
		}}
	var plain bytes.Buffer
	png.Encode(&plain, image.NewNRGBA(image.Rect(0, 0, 8, 8)))
	withParams, err := pnginfo.Encode(plain.Bytes(), pnginfo.Key, pnginfo.Format(params))
	if err != nil {
		t.Fatal(err)
	}
	pngPath := filepath.Join(t.TempDir(), "castle.png")
	os.WriteFile(pngPath, withParams, 0o644)
	s.do(chromedp.SetUploadFiles("#png-file", []string{pngPath}))
	s.waitJS(10*time.Second, `document.getElementById("prompt").value === "a castle"`, `document.getElementById("status").textContent`)
	var restored struct {
		Strength, DCInterval, DCBranch, Adaptive, Threshold, Prompt2, OrigH, OrigW string
		Auto                                                                       bool
		Loras                                                                      []string
	}
	s.eval(`(() => { const v = (id) => document.getElementById(id).value;
	  return { Strength: v("strength"), DCInterval: v("deepcache-interval"), DCBranch: v("deepcache-branch"), Adaptive: v("adaptive-guidance"),
	    Threshold: v("auto-threshold"), Prompt2: v("prompt2"), OrigH: v("original-h"), OrigW: v("original-w"), Auto: document.getElementById("gate-auto").checked,
	    Loras: Array.from(document.querySelectorAll("#lora-list li")).map((li) => li.querySelector(".lora-name").textContent + "|" +
	      li.querySelector(".lora-scale").value + "|" + (li.dataset.missing || "")) }; })()`, &restored)
	wantBack := `{"Strength":"0.6","DCInterval":"2","DCBranch":"1","Adaptive":"0.999","Threshold":"0.05","Prompt2":"oil, canvas","OrigH":"1024","OrigW":"768","Auto":true,` +
		`"Loras":["detail|0.8|","my style (pick the file again)|1.5|true"]}`
	if got := jsonString(restored); got != wantBack {
		t.Errorf("settings read back from a PNG:\n got %s\nwant %s", got, wantBack)
	}
	var sent []map[string]any
	s.eval(`window.tgateApp.buildOptions().loras`, &sent)
	if jsonString(sent) != `[{"scale":0.8,"url":"owner/repo/detail.safetensors"}]` {
		t.Errorf("LoRAs sent after reading the PNG: %s (the file not picked again must not be sent)", jsonString(sent))
	}

	// ---- tgate.js's own checks and conversion (the real engine.generate, stopped before the Worker) ----
	var checks struct {
		Mismatch, Strength, Kind string
		Same                     bool
	}
	s.eval(`(async () => {
	  const tg = await import("/tgate.js");
	  const { toRGBA } = await import("/imagedata.js");
	  const eng = window.tgateApp.engine;
	  const real = (o) => tg.Engine.prototype.generate.call(eng, o);
	  const msg = (p) => p.then(() => "resolved", (e) => e.code + ": " + e.message);
	  const init = await (await fetch(document.getElementById("init-canvas").toDataURL())).blob();
	  const out = {};
	  out.Mismatch = await msg(real({ prompt: "x", initImage: init, mask: new ImageData(32, 32) }));
	  out.Strength = await msg(real({ prompt: "x", initImage: init, strength: 1.5 }));
	  out.Kind = await msg(real({ prompt: "x", initImage: "fox.png" }));
	  const c = document.getElementById("mask-canvas");
	  const a = await toRGBA(c, "mask");
	  const b = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
	  out.Same = a.width === c.width && a.data.length === b.length && a.data.every((v, i) => v === b[i]);
	  return out; })()`, &checks)
	if !strings.HasPrefix(checks.Mismatch, "bad-request: the mask is 32×32 but the initImage is 40×24") {
		t.Errorf("mask size mismatch: %q", checks.Mismatch)
	}
	if !strings.HasPrefix(checks.Strength, "bad-request: strength must be a number in (0, 1]") {
		t.Errorf("strength 1.5: %q", checks.Strength)
	}
	if !strings.HasPrefix(checks.Kind, "bad-request: initImage must be") {
		t.Errorf("initImage a string: %q", checks.Kind)
	}
	if !checks.Same {
		t.Error("toRGBA of the mask canvas differs from its getImageData pixels")
	}

	// ---- paste and drop an image onto the panel ----
	var sizes []string
	s.eval(`(async () => {
	  const file = async (w, h, name) => {
	    const c = new OffscreenCanvas(w, h);
	    c.getContext("2d").fillRect(0, 0, w, h);
	    return new File([await c.convertToBlob({ type: "image/png" })], name, { type: "image/png" });
	  };
	  const wait = async (w) => { for (let i = 0; i < 100 && !(window.tgateApp.initImage && window.tgateApp.initImage.width === w); i++) await new Promise((r) => setTimeout(r, 50)); };
	  const out = [];
	  const pasted = new DataTransfer();
	  pasted.items.add(await file(24, 16, "image.png"));
	  document.getElementById("prompt").dispatchEvent(new ClipboardEvent("paste", { clipboardData: pasted, bubbles: true, cancelable: true }));
	  await wait(24);
	  out.push(JSON.stringify(window.tgateApp.initImage));
	  const dropped = new DataTransfer();
	  dropped.items.add(await file(56, 32, "dropped.png"));
	  document.getElementById("init-empty").dispatchEvent(new DragEvent("drop", { dataTransfer: dropped, bubbles: true, cancelable: true }));
	  await wait(56);
	  out.push(JSON.stringify(window.tgateApp.initImage));
	  return out; })()`, &sizes)
	if strings.Join(sizes, " ") != `{"name":"pasted image","width":24,"height":16,"masked":false} {"name":"dropped.png","width":56,"height":32,"masked":false}` {
		t.Errorf("init images after a paste and a drop: %v", sizes)
	}
	if s.value("prompt") != "a castle" {
		t.Errorf("pasting an image changed the prompt to %q", s.value("prompt"))
	}

	// ---- single-file checkpoints: a file from disk or a URL, with the config folder ----
	s.setField("model", "checkpoint")
	if s.text("#checkpoint-fields") == "" || s.value("checkpoint-config") != "stable-diffusion-v1-5/stable-diffusion-v1-5" {
		t.Errorf("checkpoint fields: %q, config %q", s.text("#checkpoint-fields"), s.value("checkpoint-config"))
	}
	var hiddenCheckpoint bool
	s.eval(`document.getElementById("checkpoint-fields").hidden`, &hiddenCheckpoint)
	if hiddenCheckpoint {
		t.Error("choosing a single-file checkpoint did not show its fields")
	}
	s.clickAndWait("#load", 10*time.Second)
	if msg := s.statusError(); !strings.Contains(msg, "Pick a .safetensors checkpoint") {
		t.Errorf("load with no checkpoint: status %q", msg)
	}
	s.eval(`(() => {
	  window.loadCalls = [];
	  window.tgateApp.engine.load = async (source, o) => {
	    window.loadCalls.push({ source, config: o.config ?? null });
	    const sdxl = /sdxl/.test(source);
	    return { source: sdxl ? "sdxl.safetensors" : "dreamshaper.safetensors", kind: sdxl ? "sdxl" : "sd", className: "StableDiffusionPipeline", files: [], vae: true };
	  };
	  return true; })()`, nil)
	ckpt := filepath.Join(t.TempDir(), "dreamshaper.safetensors")
	os.WriteFile(ckpt, []byte("{}"), 0o644)
	s.do(chromedp.SetUploadFiles("#checkpoint-file", []string{ckpt}))
	if st := s.clickAndWait("#load", 10*time.Second); st != "ready" {
		t.Fatalf("load a checkpoint file: state %s, status %s", st, s.text("#status"))
	}
	s.setField("checkpoint-url", "https://example.com/m/sdxl.safetensors")
	s.setField("checkpoint-config", "stabilityai/stable-diffusion-xl-base-1.0")
	if st := s.clickAndWait("#load", 10*time.Second); st != "ready" {
		t.Fatalf("load a checkpoint URL: state %s, status %s", st, s.text("#status"))
	}
	var loads []struct {
		Source string `json:"source"`
		Config string `json:"config"`
	}
	s.eval(`window.loadCalls`, &loads)
	if len(loads) != 2 || !strings.HasPrefix(loads[0].Source, "blob:") || !strings.HasSuffix(loads[0].Source, "#dreamshaper.safetensors") ||
		loads[0].Config != "stable-diffusion-v1-5/stable-diffusion-v1-5" ||
		loads[1].Source != "https://example.com/m/sdxl.safetensors" || loads[1].Config != "stabilityai/stable-diffusion-xl-base-1.0" {
		t.Errorf("engine.load calls: %+v", loads)
	}
	var sdxlShown bool
	s.eval(`!document.getElementById("sdxl-fields").hidden && document.getElementById("pixart-fields").hidden`, &sdxlShown)
	if !sdxlShown {
		t.Error("an SD-XL checkpoint loaded, but the SD-XL fields are not shown")
	}
	s.screenshot("edit")
}
