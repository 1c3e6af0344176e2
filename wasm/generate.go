//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"syscall/js"
	"time"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/jsutil"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/pnginfo"
	"github.com/tgate-web/tgate/tensor"
	"github.com/tgate-web/tgate/wasm/jsapi"
)

// runStats collects what a generation measured for its result.
type runStats struct {
	phaseMs    map[string]float64
	stepMs     []float64
	stepPeak   []float64
	peak       int64
	released   int // first step whose cross-attention came from the cache (1-based; 0: none)
	lastStepAt time.Time
}

// generate runs one generation on the loaded model. latents is an optional
// Float32Array of initial latents; images optionally holds initImage and
// mask, each { width, height, data: Uint8ClampedArray (RGBA) }.
func (e *engine) generate(optJSON string, latents, onEvent, images js.Value) (any, error) {
	if e.p == nil {
		return nil, coded("bad-request", errors.New("no model is loaded: call engine.load first"))
	}
	if err := e.begin(); err != nil {
		return nil, err
	}
	defer e.end()
	if lost := e.b.DeviceLost(); lost != nil {
		return nil, coded("device-lost", lost)
	}
	opts, err := jsapi.ParseGenerate([]byte(optJSON))
	if err != nil {
		return nil, coded("bad-request", err)
	}
	p := e.p
	r, err := jsapi.Resolve(opts, p.Kind, p.VAE != nil, p.TAESD != nil)
	if err != nil {
		return nil, coded("bad-request", err)
	}
	req := r.Request
	if opts.PromptEmbeds != "" {
		f, name, err := e.openFile(opts.PromptEmbeds, e.hub, "prompt_embeds.safetensors")
		if err == nil {
			req.PromptEmbeds, err = pipeline.LoadPromptEmbeds(f, name)
		}
		if err != nil {
			return nil, coded("bad-request", fmt.Errorf("promptEmbeds %s: %w", opts.PromptEmbeds, err))
		}
	}
	if err := readImages(&req, images); err != nil {
		return nil, coded("bad-request", err)
	}
	if req.Latents, err = initLatents(p, req, latents); err != nil {
		return nil, coded("bad-request", err)
	}
	// LoRAs last: re-binding the weights is the costly part, done once
	// the rest of the request has passed its checks.
	if err := e.applyLoRAs(opts.LoRAs, emitter(onEvent)); err != nil {
		if lost := e.b.DeviceLost(); lost != nil {
			return nil, coded("device-lost", lost)
		}
		code := codeOf(err) // a download's code, else the request's fault
		if code == "internal" {
			code = "bad-request"
		}
		return nil, coded(code, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.mu.Lock()
	e.cancel = cancel
	e.mu.Unlock()

	emit := emitter(onEvent)
	b := e.b
	start := time.Now()
	st := &runStats{phaseMs: map[string]float64{}}
	b.ResetPeak()
	note := func() { // fold the peak since the last reset into the run's
		st.peak = max(st.peak, b.Memory().Peak)
		b.ResetPeak()
	}
	var warnings []string
	warnings = append(warnings, r.Warnings...)
	req.ReleaseTextEncoder = true
	req.Phase = func(ev pipeline.PhaseEvent) {
		if ev.Done {
			b.Sync() // honest times: the phase's GPU work is done
			ev.Elapsed = time.Since(start) - time.Duration(sumMs(st.phaseMs)*float64(time.Millisecond))
			st.phaseMs[ev.Name] = ms(ev.Elapsed)
			emit(map[string]any{"type": "phase", "phase": ev.Name, "ms": ms(ev.Elapsed)})
		} else {
			emit(map[string]any{"type": "phase", "phase": ev.Name, "start": true})
		}
		note()
		st.lastStepAt = time.Now()
	}
	req.Progress = func(pr pipeline.Progress) {
		// Waiting for the GPU here lets a cancel message in and makes the
		// step's time real.
		b.Sync()
		now := time.Now()
		st.stepMs = append(st.stepMs, ms(now.Sub(st.lastStepAt)))
		st.lastStepAt = now
		m := b.Memory()
		st.stepPeak = append(st.stepPeak, float64(m.Peak))
		note()
		if pr.Plan.Cross == gate.Reuse && st.released == 0 {
			st.released = pr.Step
		}
		var sim any
		if !math.IsNaN(pr.Similarity) {
			sim = pr.Similarity
		}
		ev := map[string]any{"type": "step", "step": pr.Step, "total": pr.Total, "timestep": pr.Timestep,
			"deepcachePartial": pr.DeepCachePartial, "similarity": sim,
			"plan":      map[string]any{"cfg": pr.Plan.CFG, "cross": pr.Plan.Cross.String(), "self": pr.Plan.Self.String()},
			"elapsedMs": ms(pr.Elapsed),
			"memory":    map[string]any{"liveBytes": float64(m.Live), "stepPeakBytes": float64(m.Peak), "peakBytes": float64(st.peak)},
			"preview":   nil}
		if k := opts.PreviewEvery; k > 0 && (pr.Step%k == 0 || pr.Step == pr.Total) {
			if png, err := e.preview(pr); err == nil && png != nil {
				ev["preview"] = jsutil.Uint8Array(png)
			}
		}
		emit(ev)
		st.lastStepAt = time.Now()
	}
	req.Warn = func(w string) { warnings = append(warnings, w) }
	req.TextEncoderProgress = func(done, total int) {
		emit(map[string]any{"type": "phase", "phase": pipeline.PhaseTextEncoder, "done": done, "total": total})
	}
	for _, w := range r.Warnings {
		emit(map[string]any{"type": "warning", "message": w})
	}

	res, err := p.Generate(ctx, req)
	if err != nil {
		if lost := b.DeviceLost(); lost != nil {
			return nil, coded("device-lost", fmt.Errorf("the GPU device was lost (%v); the engine restarts", lost))
		}
		if ctx.Err() != nil {
			return nil, coded("cancelled", errors.New("generation cancelled"))
		}
		return nil, err
	}
	note()
	total := ms(time.Since(start))

	settings := p.Settings(req, res, e.model.Source)
	out := js.Global().Get("Object").New()
	params := pnginfo.Format(settings)
	if res.Image != nil {
		png, err := pipeline.EncodePNG(res.Image)
		if err == nil {
			png, err = pnginfo.Encode(png, pnginfo.Key, params)
		}
		if err != nil {
			return nil, err
		}
		out.Set("png", jsutil.Uint8Array(png))
	}
	if opts.ReturnLatents {
		out.Set("latents", float32Array(res.Latents.Data))
	}
	meta := e.resultMeta(r, req, res, st, settings, params, warnings, total)
	v, err := jsonValue(meta)
	if err != nil {
		return nil, err
	}
	out.Set("meta", v)
	return out, nil
}

// resultMeta is the JSON part of the Result (docs/js-api.md).
func (e *engine) resultMeta(r *jsapi.Resolved, req pipeline.Request, res *pipeline.Result, st *runStats,
	settings pnginfo.Params, params string, warnings []string, total float64) map[string]any {
	g := req.Gate
	gateStep := g.GateStep
	if g.Auto.Enabled() {
		gateStep = res.Gate.GateStep // where the auto gate closed
	}
	evals := len(res.Timesteps)
	// PNDM's PRK warm-up evaluations; image to image runs fewer than
	// r.Steps, and its gate counts from the first step that runs.
	warm := max(0, evals-r.Steps)
	var after float64
	for i, v := range st.stepPeak {
		if i+1 > gateStep+warm {
			after = max(after, v)
		}
	}
	var released any
	if st.released > 0 {
		released = st.released
	}
	spacing := req.TimestepSpacing
	decoder := map[pipeline.Decoder]string{pipeline.DecodeVAE: "vae", pipeline.DecodeTAESD: "taesd", pipeline.DecodeNone: "none"}[req.Decoder]
	return map[string]any{
		"width": settings.Width, "height": settings.Height,
		"latentShape": res.Latents.Shape,
		"parameters":  params,
		"timings": map[string]any{
			"tokenizeMs": st.phaseMs[pipeline.PhaseTokenize], "textEncoderMs": st.phaseMs[pipeline.PhaseTextEncoder],
			"denoiseMs": st.phaseMs[pipeline.PhaseDenoise], "decodeMs": st.phaseMs[pipeline.PhaseDecode],
			"totalMs": total, "stepMs": st.stepMs,
		},
		"memory": map[string]any{
			"peakBytes": st.peak, "liveBytes": e.b.Memory().Live,
			"stepPeakBytes": st.stepPeak, "peakAfterGateBytes": after, "promptCacheBytes": e.p.PromptCacheBytes(),
		},
		"gate": map[string]any{
			"mode": g.Mode.String(), "gateStep": gateStep,
			"crossComputed": res.Gate.CrossComputed, "crossReused": res.Gate.CrossReused,
			"selfComputed": res.Gate.SelfComputed, "selfReused": res.Gate.SelfReused,
			"releasedAtStep": released,
		},
		"gateStep":             gateStepOf(req, res),
		"adaptiveGuidanceStep": nullIfZero(res.AdaptiveGuidanceStep),
		"deepcache":            map[string]any{"refreshes": res.DeepCache.Refreshes, "partials": res.DeepCache.Partials},
		"warnings":             append([]string{}, warnings...),
		"settings": map[string]any{
			"prompt": req.Prompt, "negativePrompt": req.NegativePrompt, "steps": r.Steps, "guidance": r.Guidance,
			"guidanceRescale": req.GuidanceRescale, "seed": req.Seed, "width": settings.Width, "height": settings.Height,
			"scheduler": settings.Sampler, "timestepSpacing": spacing, "decoder": decoder, "model": e.model.Source,
			"tgate": map[string]any{"mode": g.Mode.String(), "gateStep": settingsGateStep(g), "spInterval": g.SPInterval,
				"fiInterval": g.FIInterval, "warmUp": g.WarmUp},
		},
	}
}

// gateStepOf is the step T-GATE gated at (the auto gate's decision), or
// null when T-GATE is off or the gate stayed open.
func gateStepOf(req pipeline.Request, res *pipeline.Result) any {
	g := res.Gate.GateStep
	if req.Gate.Mode == gate.Off || g < 1 || g > len(res.Timesteps) {
		return nil
	}
	return g
}

// settingsGateStep is the gate step as asked: a number, or "auto".
func settingsGateStep(g gate.Config) any {
	if g.Auto.Enabled() {
		return "auto"
	}
	return g.GateStep
}

func nullIfZero(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

func sumMs(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// initLatents reads the optional initial latents, shaped for the
// request's size.
func initLatents(p *pipeline.Pipeline, req pipeline.Request, v js.Value) (*tensor.Host, error) {
	if v.Type() != js.TypeObject || v.IsNull() {
		return nil, nil
	}
	if !v.InstanceOf(js.Global().Get("Float32Array")) {
		return nil, errors.New("latents must be a Float32Array")
	}
	h, w := req.Height, req.Width
	if req.InitImage != nil && h == 0 && w == 0 { // the init image's size
		h, w = req.InitImage.Shape[2], req.InitImage.Shape[3]
	}
	shape, err := p.LatentShape(h, w)
	if err != nil {
		return nil, err
	}
	n := v.Get("length").Int()
	if n != shape.Numel() {
		return nil, fmt.Errorf("latents hold %d values; the image's latents are %v = %d values", n, shape, shape.Numel())
	}
	buf := make([]byte, 4*n)
	js.CopyBytesToGo(buf, js.Global().Get("Uint8Array").New(v.Get("buffer"), v.Get("byteOffset"), 4*n))
	out := tensor.New(shape...)
	tensor.DecodeFloat32(out.Data, buf, tensor.F32)
	return out, nil
}

// float32Array copies values into a new JS Float32Array.
func float32Array(x []float32) js.Value {
	raw := make([]byte, 4*len(x))
	tensor.EncodeFloat32(raw, x, tensor.F32)
	u8 := jsutil.Uint8Array(raw)
	return js.Global().Get("Float32Array").New(u8.Get("buffer"))
}

// readImages reads the init image and mask tensors.js sends beside the
// options into req.
func readImages(req *pipeline.Request, v js.Value) error {
	if v.Type() != js.TypeObject {
		return nil
	}
	pixels := func(name string) (*jsapi.Pixels, error) {
		o := v.Get(name)
		if o.Type() != js.TypeObject {
			return nil, nil
		}
		data := o.Get("data")
		if data.Type() != js.TypeObject || !(data.InstanceOf(js.Global().Get("Uint8ClampedArray")) || data.InstanceOf(js.Global().Get("Uint8Array"))) {
			return nil, fmt.Errorf("%s: data must be a Uint8ClampedArray of RGBA bytes", name)
		}
		px := &jsapi.Pixels{Width: o.Get("width").Int(), Height: o.Get("height").Int(), RGBA: make([]byte, data.Get("length").Int())}
		js.CopyBytesToGo(px.RGBA, data)
		return px, nil
	}
	img, err := pixels("initImage")
	if err != nil {
		return err
	}
	mask, err := pixels("mask")
	if err != nil {
		return err
	}
	return jsapi.SetImages(req, img, mask)
}
