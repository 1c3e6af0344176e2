//go:build js && wasm

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/hub/browser"
	"github.com/tgate-web/tgate/macs"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
	"github.com/tgate-web/tgate/webgpu"
)

// engine is the state behind the JS API: one WebGPU device and at most one
// loaded model.
type engine struct {
	b     *webgpu.Backend
	store js.Value
	hub   string

	p     *pipeline.Pipeline
	model *modelInfo
	// loras is the LoRA set fused into the loaded model; lorasStale says
	// a change failed midway, so the weights may match no set.
	loras      []appliedLoRA
	lorasStale bool

	mu     sync.Mutex
	busy   bool
	cancel context.CancelFunc
}

// initOptions are createEngine's options that reach the engine.
type initOptions struct {
	Hub string `json:"hub"`
}

// init starts the WebGPU device and returns the adapter's description.
func (e *engine) init(opts js.Value) (any, error) {
	var o initOptions
	if opts.Type() == js.TypeString {
		if err := json.Unmarshal([]byte(opts.String()), &o); err != nil {
			return nil, coded("bad-request", fmt.Errorf("createEngine options: %w", err))
		}
	}
	e.hub = o.Hub
	e.store = js.Global().Get("tgateStore")
	if e.store.Type() != js.TypeObject {
		return nil, coded("internal", fmt.Errorf("the model store (tgateStore) is missing from the Worker"))
	}
	if js.Global().Get("navigator").Get("gpu").IsUndefined() {
		return nil, coded("no-webgpu", fmt.Errorf("this browser has no WebGPU (navigator.gpu is missing): use a recent Chrome or Edge, or enable WebGPU in your browser's settings"))
	}
	b, err := webgpu.New(webgpu.Options{})
	if err != nil {
		return nil, coded("no-webgpu", fmt.Errorf("WebGPU could not start: %w", err))
	}
	e.b = b
	info := b.AdapterInfo()
	lim := b.Limits()
	var features []any
	for _, f := range []string{"shader-f16", "subgroups", "timestamp-query"} {
		if b.HasFeature(f) {
			features = append(features, f)
		}
	}
	return js.ValueOf(map[string]any{
		"vendor": info.Vendor, "architecture": info.Architecture, "description": info.Description,
		"features": features,
		"limits": map[string]any{
			"maxBufferSize":               float64(lim.MaxBufferSize),
			"maxStorageBufferBindingSize": float64(lim.MaxStorageBufferBindingSize),
		},
	}), nil
}

// loadOptions are engine.load's options.
type loadOptions struct {
	Hub     string `json:"hub"`
	Decoder string `json:"decoder"`
	TAESD   string `json:"taesd"`
	Width   int    `json:"width"`
	Height  int    `json:"height"`
	Steps   int    `json:"steps"`
	TGate   *struct {
		Mode string `json:"mode"`
	} `json:"tgate"`
	// MemoryBudget, when positive, is the most GPU bytes the model may
	// need at the chosen size.
	MemoryBudget float64 `json:"memoryBudget"`
	// Config is the diffusers folder (repo id or URL) whose configs,
	// tokenizer and scheduler go with a single-file checkpoint source;
	// empty infers them from the weights.
	Config string `json:"config"`
	// UNet8Bit binds the UNet's Linear and convolution weights as 8-bit
	// (pipeline.LoadOptions.UNet8Bit); the estimate counts them so.
	UNet8Bit bool `json:"unet8bit"`
	// SkipTextEncoder leaves PixArt's T5 encoder unloaded: generate then
	// needs promptEmbeds.
	SkipTextEncoder bool `json:"skipTextEncoder"`
	// TextEncoder8Bit binds PixArt's T5 projections as 8-bit.
	TextEncoder8Bit bool `json:"textEncoder8bit"`
}

// modelInfo is what load resolves to (ModelInfo in docs/js-api.md).
type modelInfo struct {
	Source        string         `json:"source"`
	Base          string         `json:"base"`
	ClassName     string         `json:"className"`
	Kind          string         `json:"kind"`
	DefaultWidth  int            `json:"defaultWidth"`
	DefaultHeight int            `json:"defaultHeight"`
	Scheduler     string         `json:"scheduler"`
	Files         []browser.File `json:"files"`
	DownloadBytes int64          `json:"downloadBytes"`
	Estimate      estimate       `json:"estimate"`
	VAE           bool           `json:"vae"`
	TAESD         bool           `json:"taesd"`
	LoadMs        float64        `json:"loadMs"`
}

type estimate struct {
	PeakBytes       int64 `json:"peakBytes"`
	WeightBytes     int64 `json:"weightBytes"`
	ActivationBytes int64 `json:"activationBytes"`
	LargestBytes    int64 `json:"largestBytes"`
}

// load resolves a model source, estimates its memory, then binds its
// weights on the GPU, streaming them from the store.
func (e *engine) load(source, optJSON string, onEvent js.Value) (any, error) {
	if e.b == nil {
		return nil, coded("internal", fmt.Errorf("the engine is not started"))
	}
	if err := e.begin(); err != nil {
		return nil, err
	}
	defer e.end()
	var o loadOptions
	if optJSON != "" {
		if err := json.Unmarshal([]byte(optJSON), &o); err != nil {
			return nil, coded("bad-request", fmt.Errorf("load options: %w", err))
		}
	}
	emit := emitter(onEvent)
	start := time.Now()
	hubAddr := o.Hub
	if hubAddr == "" {
		hubAddr = e.hub
	}
	progress := func(file string, n, total int64, cached, done bool) {
		emit(map[string]any{"type": "download", "file": file, "bytes": float64(n), "total": float64(total), "fromCache": cached, "done": done})
	}
	emit(map[string]any{"type": "phase", "phase": "resolve", "start": true})
	m, err := e.resolveModel(source, hubAddr, o.Config, progress)
	if err != nil {
		return nil, err
	}
	src := m.src
	// Estimate from the configs before any weight is fetched.
	var est estimate
	if mi, err := hub.ReadModelIndexIn(m.configs); err != nil {
		return nil, coded(codeOrBadModel(err), err)
	} else if k, _ := pipeline.KindOf(mi.ClassName); k != pipeline.PixArtAlpha && k != pipeline.PixArtSigma {
		// The counting backend covers the UNet pipelines; PixArt loads
		// without an estimate.
		arch, err := macs.LoadFolder(m.configs)
		if err != nil {
			return nil, coded(codeOrBadModel(err), err)
		}
		if est, err = e.estimate(arch, m.f16, o); err != nil {
			return nil, err
		}
	}
	emit(map[string]any{"type": "phase", "phase": "resolve", "ms": ms(time.Since(start))})

	// Release the previous model first: two need not fit at once.
	if e.p != nil {
		e.p.Close()
		e.p, e.model = nil, nil
	}
	wstart := time.Now()
	emit(map[string]any{"type": "phase", "phase": "weights", "start": true})
	lopt := pipeline.LoadOptions{
		SkipVAE:         o.Decoder == "taesd" || o.Decoder == "none",
		Variants:        hub.PreferFP16,
		UNet8Bit:        o.UNet8Bit,
		SkipTextEncoder: o.SkipTextEncoder,
		TextEncoder8Bit: o.TextEncoder8Bit,
		// T5-XXL is 9.5 GB in F16: bind it a block at a time.
		StreamTextEncoder: true,
	}
	var p *pipeline.Pipeline
	if m.file != nil {
		p, err = pipeline.LoadSingleFile(e.b, m.file, m.name, m.config, lopt)
	} else {
		p, err = pipeline.LoadFolder(e.b, m.repo, lopt)
	}
	if err != nil {
		if lost := e.b.DeviceLost(); lost != nil {
			return nil, coded("device-lost", lost)
		}
		return nil, coded(codeOrBadModel(err), err)
	}
	// Decode by tiles only when the whole image's decode would need a
	// buffer above the adapter's limit (SD-XL at 1024² needs 1 GiB), by
	// 512-pixel tiles (a quarter of that).
	p.VAETiling = pipeline.VAETiling{Enabled: true, MaxActivationBytes: int64(e.b.Limits().MaxBufferSize), TileSize: 512}
	if o.TAESD != "" {
		if err := e.loadTAESD(p, o.TAESD, hubAddr); err != nil {
			p.Close()
			return nil, coded(codeOrBadModel(err), fmt.Errorf("TAESD decoder %s: %w", o.TAESD, err))
		}
	}
	if err := e.b.Sync(); err != nil {
		p.Close()
		return nil, coded("device-lost", err)
	}
	emit(map[string]any{"type": "phase", "phase": "weights", "ms": ms(time.Since(wstart))})
	h, w := p.DefaultSize()
	schedName, _ := sched.NameFromConfig(p.Scheduler)
	kind := kindName(p)
	info := &modelInfo{Source: src.ID(), Base: src.Base, ClassName: p.Kind.String(), Kind: kind,
		DefaultWidth: w, DefaultHeight: h, Scheduler: string(schedName), Files: m.opened(),
		Estimate: est, VAE: p.VAE != nil, TAESD: p.TAESD != nil, LoadMs: ms(time.Since(start))}
	for _, f := range info.Files {
		if !f.Cached {
			info.DownloadBytes += f.Bytes
		}
	}
	e.p, e.model, e.loras, e.lorasStale = p, info, nil, false
	return jsonValue(info)
}

// loadTAESD loads a TAESD decoder from spec: a repository or folder URL in
// diffusers' AutoencoderTiny layout (config.json and weights), a folder
// holding taesd.py's taesd_decoder.safetensors, or the URL (or
// "owner/name/file") of one .safetensors file.
func (e *engine) loadTAESD(p *pipeline.Pipeline, spec, hubAddr string) error {
	if strings.HasSuffix(spec, ".safetensors") || browser.IsBlobURL(spec) {
		f, name, err := e.openFile(spec, hubAddr, "taesd_decoder.safetensors")
		if err != nil {
			return err
		}
		return p.LoadTAESDIn(f, name)
	}
	src, err := hub.ParseSource(spec, hubAddr)
	if err != nil {
		return err
	}
	repo, err := browser.Open(src, e.store, nil)
	if err != nil {
		return err
	}
	name := ""
	if ok, err := repo.Exists("config.json"); err != nil {
		return err
	} else if !ok {
		name = "taesd_decoder.safetensors"
	}
	return p.LoadTAESDIn(repo, name)
}

// estimate counts the GPU memory a generation at the chosen size needs
// (package macs, from the configs alone) and refuses a model whose largest
// tensor exceeds the adapter's buffer limit or whose total exceeds the
// caller's budget.
func (e *engine) estimate(arch *macs.Model, f16 bool, o loadOptions) (estimate, error) {
	spec := macs.DefaultSpec()
	spec.Scheduler = ""
	spec.Width, spec.Height = o.Width, o.Height
	spec.Steps = 25
	if o.Steps > 0 {
		spec.Steps = o.Steps
	}
	spec.Gate = gate.Config{Mode: gate.Off}
	if o.TGate != nil && o.TGate.Mode != "" && o.TGate.Mode != "off" {
		if m, err := gate.ParseMode(o.TGate.Mode); err == nil {
			spec.Gate = gate.SDDefaults()
			spec.Gate.Mode = m
		}
	}
	spec.UNet8Bit = o.UNet8Bit
	spec.WeightDType = tensor.F32
	if f16 {
		spec.WeightDType = tensor.F16
	}
	rep, err := macs.Count(arch, spec)
	if err != nil {
		return estimate{}, coded("bad-model", err)
	}
	est := estimate{PeakBytes: rep.Peak.Total, WeightBytes: rep.WeightBytes,
		ActivationBytes: rep.Peak.Activations, LargestBytes: max(rep.Largest.Weights, rep.Largest.Activations, rep.Largest.Caches)}
	if lim := int64(e.b.Limits().MaxBufferSize); est.LargestBytes > lim {
		return est, coded("wont-fit", fmt.Errorf("this model will not fit this GPU at %dx%d: its largest tensor needs %s but the adapter's largest buffer (maxBufferSize) is %s; choose a smaller size",
			rep.Width, rep.Height, mb(est.LargestBytes), mb(lim)))
	}
	if o.MemoryBudget > 0 && float64(est.PeakBytes) > o.MemoryBudget {
		return est, coded("wont-fit", fmt.Errorf("this model will not fit at %dx%d: it needs about %s of GPU memory, more than the %s allowed; choose a smaller size or model",
			rep.Width, rep.Height, mb(est.PeakBytes), mb(int64(o.MemoryBudget))))
	}
	return est, nil
}

func mb(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/1e6) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// codeOrBadModel keeps a download's or the store's code, else calls the
// error a bad model folder.
func codeOrBadModel(err error) string {
	if c := codeOf(err); c != "internal" {
		return c
	}
	return "bad-model"
}

// begin marks the engine busy: one load or generate at a time.
func (e *engine) begin() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.busy {
		return coded("busy", fmt.Errorf("the engine is busy with another load or generation"))
	}
	e.busy = true
	return nil
}

func (e *engine) end() {
	e.mu.Lock()
	e.busy = false
	e.cancel = nil
	e.mu.Unlock()
}

func (e *engine) cancelRun() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel != nil {
		e.cancel()
	}
}

// emitter returns a function that passes events to the JS callback f
// (when it is one).
func emitter(f js.Value) func(map[string]any) {
	return func(ev map[string]any) {
		if f.Type() == js.TypeFunction {
			f.Invoke(js.ValueOf(ev))
		}
	}
}

// jsonValue returns v as a JS object (through JSON).
func jsonValue(v any) (js.Value, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return js.Value{}, err
	}
	return js.Global().Get("JSON").Call("parse", string(data)), nil
}

// kindName is ModelInfo.kind: "sd", "inpaint" (an inpainting UNet),
// "lcm", "sdxl" or "pixart".
func kindName(p *pipeline.Pipeline) string {
	switch p.Kind {
	case pipeline.LatentConsistency:
		return "lcm"
	case pipeline.StableDiffusionXL:
		return "sdxl"
	case pipeline.PixArtAlpha, pipeline.PixArtSigma:
		return "pixart"
	}
	if p.InpaintingUNet() {
		return "inpaint"
	}
	return "sd"
}
