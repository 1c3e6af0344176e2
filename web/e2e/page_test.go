package e2e

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/pnginfo"
	"github.com/tgate-web/tgate/sched"
)

// cpuLatents runs the same generation on the CPU backend (what `tgate
// generate` computes) and returns the final latents.
func cpuLatents(t *testing.T, dir string, req pipeline.Request, variants []string) []float32 {
	t.Helper()
	p, err := pipeline.Load(cpu.New(), dir, pipeline.LoadOptions{SkipVAE: true, Variants: variants})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	req.Decoder = pipeline.DecodeNone
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res.Latents.Data
}

// TestGenerateOnThePage drives the page as a person does: the tiny model
// loads by itself, Generate with and without T-GATE gives the CPU
// backend's latents, the PNG carries its settings and restores them when
// dropped back, and Compare shows both runs with a lower per-step GPU peak
// after the gate with T-GATE.
func TestGenerateOnThePage(t *testing.T) {
	s := open(t, "/", 12*time.Minute)
	s.waitState(2*time.Minute, "ready", "error")
	var loaded string
	s.eval(`(window.tgateApp.model && window.tgateApp.model.source) || ""`, &loaded)
	if loaded != "tgate/tiny-sd@main" {
		t.Fatalf("the page did not open on the tiny model: loaded %q, status %q", loaded, s.text("#status"))
	}
	dir := filepath.Join(env.models, "tgate", "tiny-sd")

	s.setField("prompt", "a red fox in the snow, watercolor")
	s.setField("negative", "blurry")
	s.setField("steps", "4")
	s.setField("seed", "5")
	s.setField("scheduler", "ddim")
	s.setField("tgate-mode", "off")
	if st := s.clickAndWait("#generate", 3*time.Minute); st != "ready" {
		t.Fatalf("generate: state %s, status %s", st, s.text("#status"))
	}
	off := s.lastResult()
	req := pipeline.Request{Prompt: "a red fox in the snow, watercolor", NegativePrompt: "blurry", Steps: 4,
		Guidance: 7.5, Seed: 5, Scheduler: sched.DDIM}
	want := cpuLatents(t, dir, req, nil)
	if d := maxRelDiff(off.Latents, want); !(d <= 1e-4) {
		t.Errorf("T-GATE off: page latents differ from the CPU backend's by %.3g relative (max)", d)
	}
	checkImage(t, off)
	s.screenshot("generate")

	// The PNG's parameters chunk.
	chunks, err := pnginfo.Read(off.PNG)
	if err != nil {
		t.Fatal(err)
	}
	params, err := pnginfo.Parse(chunks[pnginfo.Key])
	if err != nil {
		t.Fatalf("parameters %q: %v", chunks[pnginfo.Key], err)
	}
	if params.Prompt != req.Prompt || params.NegativePrompt != "blurry" || params.Steps != 4 || params.Seed != 5 ||
		params.Sampler != "ddim" || params.Guidance != 7.5 || params.Width != 32 || params.Height != 32 {
		t.Errorf("PNG parameters: %+v", params)
	}

	// With T-GATE v2, gating after step 2.
	s.setField("tgate-mode", "v2")
	s.setField("gate-step", "2")
	s.setField("sp-interval", "1")
	s.setField("fi-interval", "1")
	s.setField("warm-up", "0")
	if st := s.clickAndWait("#generate", 3*time.Minute); st != "ready" {
		t.Fatalf("generate with T-GATE: state %s, status %s", st, s.text("#status"))
	}
	on := s.lastResult()
	req.Gate = gate.Config{Mode: gate.V2, GateStep: 2, SPInterval: 1, FIInterval: 1, WarmUp: 0}
	wantOn := cpuLatents(t, dir, req, nil)
	if d := maxRelDiff(on.Latents, wantOn); !(d <= 1e-4) {
		t.Errorf("T-GATE v2: page latents differ from the CPU backend's by %.3g relative (max)", d)
	}
	if on.Gate.CrossReused == 0 || on.Gate.ReleasedAtStep == nil || *on.Gate.ReleasedAtStep != 3 {
		t.Errorf("T-GATE v2 stats: %+v", on.Gate)
	}
	if maxRelDiff(on.Latents, off.Latents) < 1e-3 {
		t.Error("T-GATE changed nothing")
	}

	// Drop the first PNG back: its settings return to the form.
	file := filepath.Join(t.TempDir(), "fox.png")
	os.WriteFile(file, off.PNG, 0o644)
	s.setField("prompt", "something else")
	s.setField("seed", "99")
	s.setField("steps", "7")
	s.do(chromedp.SetUploadFiles("#png-file", []string{file}))
	deadline := time.Now().Add(10 * time.Second)
	for s.value("prompt") != req.Prompt && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	for id, want := range map[string]string{"prompt": req.Prompt, "negative": "blurry", "seed": "5", "steps": "4",
		"scheduler": "ddim", "tgate-mode": "off"} {
		if got := s.value(id); got != want {
			t.Errorf("after dropping the PNG, #%s = %q, want %q", id, got, want)
		}
	}

	// Compare: T-GATE off and on, side by side.
	s.setField("tgate-mode", "v2")
	s.setField("gate-step", "2")
	if st := s.clickAndWait("#compare", 5*time.Minute); st != "ready" {
		t.Fatalf("compare: state %s, status %s", st, s.text("#status"))
	}
	var items []struct {
		Mode      string  `json:"mode"`
		TimeMs    float64 `json:"timeMs"`
		AfterGate float64 `json:"afterGate"`
		Src       string  `json:"src"`
	}
	s.eval(`Array.from(document.querySelectorAll("#compare-view figure.compare-item")).map((f) => ({
	  mode: f.dataset.mode, timeMs: Number(f.dataset.timeMs), afterGate: Number(f.dataset.peakAfterGateBytes),
	  src: (f.querySelector("img") || {}).src || "" }))`, &items)
	if len(items) != 2 {
		t.Fatalf("compare view shows %d items, want 2", len(items))
	}
	if items[0].Mode != "off" || items[1].Mode == "off" || items[0].Src == "" || items[1].Src == "" {
		t.Errorf("compare items: %+v", items)
	}
	if !(items[1].AfterGate > 0 && items[1].AfterGate < items[0].AfterGate) {
		t.Errorf("per-step GPU peak after the gate: with T-GATE %.0f, without %.0f; want lower with T-GATE", items[1].AfterGate, items[0].AfterGate)
	}
	t.Logf("compare: %s", s.text("#speedup"))
	s.screenshot("compare")
}

// value reads a form control's value.
func (s *session) value(id string) string {
	var v string
	s.eval(`document.getElementById(`+jsString(id)+`).value`, &v)
	return v
}

// checkImage decodes the result's PNG and checks it has the result's
// size and is not blank (its pixels vary).
func checkImage(t *testing.T, r result) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(r.PNG))
	if err != nil {
		t.Fatalf("result PNG: %v", err)
	}
	b := img.Bounds()
	if b.Dx() != r.Width || b.Dy() != r.Height {
		t.Errorf("PNG is %dx%d, result says %dx%d", b.Dx(), b.Dy(), r.Width, r.Height)
	}
	var sum, sq float64
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			rr, g, bb, _ := img.At(x, y).RGBA()
			for _, v := range []uint32{rr, g, bb} {
				f := float64(v >> 8)
				sum += f
				sq += f * f
				n++
			}
		}
	}
	mean := sum / float64(n)
	if std := math.Sqrt(sq/float64(n) - mean*mean); std < 2 {
		t.Errorf("the image is blank: pixel std %.2f", std)
	}
}

var _ = strings.Contains
