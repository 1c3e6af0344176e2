//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
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
// Float32Array of initial latents.
func (e *engine) generate(optJSON string, latents, onEvent js.Value) (any, error) {
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
	if req.Latents, err = initLatents(p, req, latents); err != nil {
		return nil, coded("bad-request", err)
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
		ev := map[string]any{"type": "step", "step": pr.Step, "total": pr.Total, "timestep": pr.Timestep,
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
	evals := len(res.Timesteps)
	warm := evals - r.Steps // PNDM's PRK warm-up evaluations
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
			"stepPeakBytes": st.stepPeak, "peakAfterGateBytes": after,
		},
		"gate": map[string]any{
			"mode": g.Mode.String(), "gateStep": gateStep,
			"crossComputed": res.Gate.CrossComputed, "crossReused": res.Gate.CrossReused,
			"selfComputed": res.Gate.SelfComputed, "selfReused": res.Gate.SelfReused,
			"releasedAtStep": released,
		},
		"warnings": append([]string{}, warnings...),
		"settings": map[string]any{
			"prompt": req.Prompt, "negativePrompt": req.NegativePrompt, "steps": r.Steps, "guidance": r.Guidance,
			"guidanceRescale": req.GuidanceRescale, "seed": req.Seed, "width": settings.Width, "height": settings.Height,
			"scheduler": settings.Sampler, "timestepSpacing": spacing, "decoder": decoder, "model": e.model.Source,
			"tgate": map[string]any{"mode": g.Mode.String(), "gateStep": g.GateStep, "spInterval": g.SPInterval,
				"fiInterval": g.FIInterval, "warmUp": g.WarmUp},
		},
	}
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
	shape, err := p.LatentShape(req.Height, req.Width)
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
