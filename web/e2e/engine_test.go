package e2e

import (
	"bytes"
	"context"
	"image/png"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/sched"
)

// TestWontFitAndDeviceLoss: a model that needs more GPU memory than allowed
// is refused before any weight is downloaded, with both numbers; a model
// given by its folder URL loads by probing file names; a lost GPU
// device gets a message, the engine restarts its Worker, and the next
// Generate on the same page works.
func TestWontFitAndDeviceLoss(t *testing.T) {
	s := open(t, "/", 8*time.Minute)
	s.waitState(2*time.Minute, "ready", "error")

	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	const unet = "tgate/tiny-sd-fp16/unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors"
	s.eval(`window.tgateApp.engine.load("tgate/tiny-sd-fp16", {hub: location.origin, memoryBudget: 1e6})
	  .then(() => ({code: "loaded"}), (err) => ({code: err.code, message: err.message}))`, &e)
	if e.Code != "wont-fit" || !strings.Contains(e.Message, "MB of GPU memory") || !strings.Contains(e.Message, "1 MB allowed") {
		t.Errorf("over budget: %+v; want code wont-fit naming both sizes", e)
	}
	if n := s.srv.Stats(unet).Gets; n != 0 {
		t.Errorf("a refused model downloaded its weights (%d requests)", n)
	}
	// A folder URL instead of a repository id: no model API, so the files
	// are found by asking the server for the names diffusers looks for.
	var info struct {
		Source string `json:"source"`
		Files  []struct {
			Path string `json:"path"`
		} `json:"files"`
	}
	s.eval(`window.tgateApp.engine.load(location.origin + "/tgate/tiny-sd/resolve/main/")`, &info)
	if len(info.Files) != 3 || !strings.HasSuffix(info.Source, "/tgate/tiny-sd/resolve/main/") {
		t.Errorf("loading by folder URL: %+v", info)
	}

	s.setField("prompt", "a boat")
	s.setField("steps", "2")
	s.eval(`window.tgateApp.engine._loseDevice()`, nil)
	s.clickAndWait("#generate", 2*time.Minute)
	if msg := s.statusError(); !strings.Contains(strings.ToLower(msg), "device") {
		t.Errorf("after losing the device: status %q, want a message about the GPU device", msg)
	}
	var before float64
	s.eval(`window.tgateApp.lastResult ? window.tgateApp.lastResult.timings.totalMs : 0`, &before)
	if st := s.clickAndWait("#generate", 3*time.Minute); st != "ready" {
		t.Fatalf("generate after the restart: state %s, status %q", st, s.text("#status"))
	}
	r := s.lastResult()
	if r.Timings.TotalMs == before || len(r.Latents) == 0 {
		t.Fatalf("no new result after the restart")
	}
	checkImage(t, r)
}

// TestTAESDDecoderAndPreviews loads the tiny model with the real TAESD
// decoder in place of the VAE (taesd.py's taesd_decoder.safetensors from
// the model server): the step brings a TAESD preview, and the final
// image is the CPU backend's to within one 8-bit level.
func TestTAESDDecoderAndPreviews(t *testing.T) {
	s := open(t, "/", 6*time.Minute)
	s.waitState(2*time.Minute, "ready", "error")
	var info struct {
		VAE   bool `json:"vae"`
		TAESD bool `json:"taesd"`
	}
	s.eval(`window.tgateApp.engine.load("tgate/tiny-sd", {hub: location.origin, decoder: "taesd", taesd: "madebyollin/taesd-bf16"})`, &info)
	if info.VAE || !info.TAESD {
		t.Fatalf("model info %+v: want the TAESD decoder and no VAE", info)
	}
	var out struct {
		Result   result `json:"result"`
		Previews []int  `json:"previews"`
	}
	s.eval(`(async () => {
	  const previews = [];
	  const r = await window.tgateApp.engine.generate({prompt: "a harbour", steps: 1, seed: 3, scheduler: "ddim",
	    decoder: "taesd", previewEvery: 1, returnLatents: true,
	    onProgress: (ev) => { if (ev.type === "step") previews.push(ev.preview instanceof Blob ? ev.preview.size : 0); }});
	  return {result: await (`+packJS+`)(r), previews};
	})()`, &out)
	if len(out.Previews) != 1 || out.Previews[0] == 0 {
		t.Errorf("previews (PNG sizes per step): %v; want one for the step", out.Previews)
	}
	dir := filepath.Join(env.models, "tgate", "tiny-sd")
	p, err := pipeline.Load(cpu.New(), dir, pipeline.LoadOptions{SkipVAE: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.LoadTAESD(filepath.Join(env.models, "madebyollin", "taesd-bf16", "taesd_decoder.safetensors")); err != nil {
		t.Fatal(err)
	}
	res, err := p.Generate(context.Background(), pipeline.Request{Prompt: "a harbour", Steps: 1, Guidance: 7.5, Seed: 3,
		Scheduler: sched.DDIM, Decoder: pipeline.DecodeTAESD})
	if err != nil {
		t.Fatal(err)
	}
	want, err := pipeline.ToRGBA(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	got, err := png.Decode(bytes.NewReader(out.Result.PNG))
	if err != nil {
		t.Fatal(err)
	}
	worst := 0
	for i := 0; i < len(want.Pix); i += 4 {
		x, y := (i/4)%want.Rect.Dx(), (i/4)/want.Rect.Dx()
		r, g, b, _ := got.At(x, y).RGBA()
		for c, v := range []uint32{r >> 8, g >> 8, b >> 8} {
			worst = max(worst, absInt(int(v)-int(want.Pix[i+c])))
		}
	}
	if worst > 1 {
		t.Errorf("TAESD image differs from the CPU backend's by up to %d levels", worst)
	}
	checkImage(t, out.Result)
}

func absInt(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestPageWithoutWebGPU: in a browser without WebGPU the page says so in
// people's words, stays usable, and its cache manager (which needs no
// engine) still lists what is stored.
func TestPageWithoutWebGPU(t *testing.T) {
	s := openWidgetPage(t, func(origin string) string { return origin + "/" }, 2*time.Minute,
		`delete Navigator.prototype.gpu; delete WorkerNavigator.prototype.gpu;`)
	s.waitState(time.Minute, "error")
	if msg := s.statusError(); !strings.Contains(msg, "WebGPU") {
		t.Errorf("status %q, want a message about WebGPU", msg)
	}
	var enabled bool
	s.eval(`!document.getElementById("generate").disabled && !document.getElementById("load").disabled`, &enabled)
	if !enabled {
		t.Error("the page's buttons are disabled after the error")
	}
	var cacheText string
	s.eval(`document.getElementById("cache").textContent`, &cacheText)
	if strings.Contains(cacheText, "could not") {
		t.Errorf("cache manager without an engine: %q", cacheText)
	}
	s.screenshot("no-webgpu")
}
