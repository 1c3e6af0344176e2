package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestWontFitAndDeviceLoss: a model that needs more GPU memory than allowed
// is refused before any weight is downloaded, with both numbers; a lost GPU
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
	s.eval(`window.tgateApp.engine.load("tgate/tiny-sd", {hub: location.origin})`, nil)

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
