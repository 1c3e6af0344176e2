//go:build js && wasm

package gpu

import (
	"errors"
	"fmt"
	"strings"
	"syscall/js"
)

// Limits are the device limits a compute engine cares about
// (https://www.w3.org/TR/webgpu/#limits). In a DeviceDescriptor a zero
// field means "the default".
type Limits struct {
	MaxBufferSize                             uint64
	MaxStorageBufferBindingSize               uint64
	MaxUniformBufferBindingSize               uint64
	MaxComputeWorkgroupsPerDimension          uint64
	MaxComputeWorkgroupStorageSize            uint64
	MaxComputeInvocationsPerWorkgroup         uint64
	MaxComputeWorkgroupSizeX                  uint64
	MaxComputeWorkgroupSizeY                  uint64
	MaxComputeWorkgroupSizeZ                  uint64
	MaxStorageBuffersPerShaderStage           uint64
	MaxDynamicUniformBuffersPerPipelineLayout uint64
	MinStorageBufferOffsetAlignment           uint64
	MinUniformBufferOffsetAlignment           uint64
}

// fields pairs each Limits field with its WebGPU name.
func (l *Limits) fields() []struct {
	name string
	p    *uint64
} {
	return []struct {
		name string
		p    *uint64
	}{
		{"maxBufferSize", &l.MaxBufferSize},
		{"maxStorageBufferBindingSize", &l.MaxStorageBufferBindingSize},
		{"maxUniformBufferBindingSize", &l.MaxUniformBufferBindingSize},
		{"maxComputeWorkgroupsPerDimension", &l.MaxComputeWorkgroupsPerDimension},
		{"maxComputeWorkgroupStorageSize", &l.MaxComputeWorkgroupStorageSize},
		{"maxComputeInvocationsPerWorkgroup", &l.MaxComputeInvocationsPerWorkgroup},
		{"maxComputeWorkgroupSizeX", &l.MaxComputeWorkgroupSizeX},
		{"maxComputeWorkgroupSizeY", &l.MaxComputeWorkgroupSizeY},
		{"maxComputeWorkgroupSizeZ", &l.MaxComputeWorkgroupSizeZ},
		{"maxStorageBuffersPerShaderStage", &l.MaxStorageBuffersPerShaderStage},
		{"maxDynamicUniformBuffersPerPipelineLayout", &l.MaxDynamicUniformBuffersPerPipelineLayout},
		{"minStorageBufferOffsetAlignment", &l.MinStorageBufferOffsetAlignment},
		{"minUniformBufferOffsetAlignment", &l.MinUniformBufferOffsetAlignment},
	}
}

func readLimits(v js.Value) Limits {
	var l Limits
	for _, f := range l.fields() {
		if x := jget(v, f.name); x.Type() == js.TypeNumber {
			*f.p = uint64(x.Float())
		}
	}
	return l
}

// AdapterInfo describes the physical adapter (GPUAdapterInfo).
type AdapterInfo struct {
	Vendor, Architecture, Device, Description string
}

func (i AdapterInfo) String() string {
	s := fmt.Sprintf("vendor=%q architecture=%q", i.Vendor, i.Architecture)
	if i.Device != "" {
		s += fmt.Sprintf(" device=%q", i.Device)
	}
	if i.Description != "" {
		s += fmt.Sprintf(" description=%q", i.Description)
	}
	return s
}

// Adapter is a GPUAdapter.
type Adapter struct {
	v        js.Value
	Info     AdapterInfo
	Limits   Limits // the adapter's supported maxima
	Features []string
}

// ErrNoWebGPU reports a browser without navigator.gpu.
var ErrNoWebGPU = errors.New("webgpu: navigator.gpu is not available (browser without WebGPU, or not a secure context)")

// RequestAdapter asks navigator.gpu for an adapter. powerPreference is
// "", "low-power" or "high-performance".
func RequestAdapter(powerPreference string) (*Adapter, error) {
	nav := jget(js.Global(), "navigator")
	if nav.IsUndefined() {
		return nil, ErrNoWebGPU
	}
	g := jget(nav, "gpu")
	if g.IsUndefined() || g.IsNull() {
		return nil, ErrNoWebGPU
	}
	opts := object()
	if powerPreference != "" {
		jset(opts, "powerPreference", powerPreference)
	}
	v, err := await(jcall(g, "requestAdapter", opts))
	if err != nil {
		return nil, fmt.Errorf("webgpu: requestAdapter: %w", err)
	}
	if v.IsNull() || v.IsUndefined() {
		return nil, errors.New("webgpu: requestAdapter returned no adapter")
	}
	a := &Adapter{v: v, Limits: readLimits(jget(v, "limits"))}
	if info := jget(v, "info"); info.Type() == js.TypeObject {
		str := func(k string) string {
			if x := jget(info, k); x.Type() == js.TypeString {
				return x.String()
			}
			return ""
		}
		a.Info = AdapterInfo{str("vendor"), str("architecture"), str("device"), str("description")}
	}
	forEach := js.FuncOf(func(this js.Value, args []js.Value) any {
		a.Features = append(a.Features, args[0].String())
		return nil
	})
	jcall(jget(v, "features"), "forEach", forEach)
	forEach.Release()
	return a, nil
}

// HasFeature reports whether the adapter offers the named feature.
func (a *Adapter) HasFeature(name string) bool {
	for _, f := range a.Features {
		if f == name {
			return true
		}
	}
	return false
}

// DeviceDescriptor configures RequestDevice.
type DeviceDescriptor struct {
	Label            string
	RequiredFeatures []string
	RequiredLimits   Limits // zero fields are left at their defaults
}

// Device is a GPUDevice with its queue.
type Device struct {
	v      js.Value
	Queue  *Queue
	Limits Limits // the limits the device was created with

	lost     chan struct{}
	lostMsg  string
	funcs    []js.Func
	scratch  js.Value // reusable Uint8Array for Queue.WriteBuffer
	scratchN int
}

// RequestDevice creates a device with the requested features and limits.
func (a *Adapter) RequestDevice(d DeviceDescriptor) (*Device, error) {
	desc := object()
	if d.Label != "" {
		jset(desc, "label", d.Label)
	}
	if len(d.RequiredFeatures) > 0 {
		fs := make([]any, len(d.RequiredFeatures))
		for i, f := range d.RequiredFeatures {
			fs[i] = f
		}
		jset(desc, "requiredFeatures", array(fs...))
	}
	lim := object()
	for _, f := range d.RequiredLimits.fields() {
		if *f.p != 0 {
			jset(lim, f.name, float64(*f.p))
		}
	}
	jset(desc, "requiredLimits", lim)
	v, err := await(jcall(a.v, "requestDevice", desc))
	if err != nil {
		return nil, fmt.Errorf("webgpu: requestDevice: %w", err)
	}
	dev := &Device{v: v, Limits: readLimits(jget(v, "limits")), lost: make(chan struct{})}
	dev.Queue = &Queue{v: jget(v, "queue"), dev: dev}
	onLost := js.FuncOf(func(this js.Value, args []js.Value) any {
		info := args[0]
		dev.lostMsg = fmt.Sprintf("webgpu: device lost (%s): %s", info.Get("reason").String(), info.Get("message").String())
		close(dev.lost)
		return nil
	})
	dev.funcs = append(dev.funcs, onLost)
	jcall(jget(v, "lost"), "then", onLost)
	return dev, nil
}

// Lost returns a channel closed when the device is lost, and LostError
// then describes why.
func (d *Device) Lost() <-chan struct{} { return d.lost }

// LostError returns the device-lost error, or nil while the device lives.
func (d *Device) LostError() error {
	select {
	case <-d.lost:
		return errors.New(d.lostMsg)
	default:
		return nil
	}
}

// OnUncapturedError calls f for every validation, out-of-memory or
// internal error no error scope caught. f runs inside a JS event handler:
// it must not block.
func (d *Device) OnUncapturedError(f func(error)) {
	h := js.FuncOf(func(this js.Value, args []js.Value) any {
		e := args[0].Get("error")
		f(fmt.Errorf("webgpu: %s: %s", e.Get("constructor").Get("name").String(), e.Get("message").String()))
		return nil
	})
	d.funcs = append(d.funcs, h)
	jcall(d.v, "addEventListener", "uncapturederror", h)
}

// PushErrorScope starts catching errors of the filter "validation",
// "out-of-memory" or "internal".
func (d *Device) PushErrorScope(filter string) { jcall(d.v, "pushErrorScope", filter) }

// PopErrorScope ends the innermost error scope and returns the error it
// caught, if any.
func (d *Device) PopErrorScope() error {
	v, err := await(jcall(d.v, "popErrorScope"))
	if err != nil {
		return err
	}
	if v.IsNull() || v.IsUndefined() {
		return nil
	}
	return fmt.Errorf("webgpu: %s", jget(v, "message").String())
}

// Destroy destroys the device; its resources become invalid.
func (d *Device) Destroy() {
	jcall(d.v, "destroy")
}

// ShaderModule is a compiled GPUShaderModule.
type ShaderModule struct{ v js.Value }

// CompileError lists the error messages of a shader compilation.
type CompileError struct {
	Label    string
	Messages []string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("webgpu: shader %q does not compile:\n%s", e.Label, strings.Join(e.Messages, "\n"))
}

// CreateShaderModule compiles WGSL source. Compilation errors (from
// getCompilationInfo) are returned as a *CompileError with line:column
// positions; warnings are ignored. The module is created inside a
// validation error scope, so a broken shader is reported here and not
// also as an uncaptured device error.
func (d *Device) CreateShaderModule(label, code string) (*ShaderModule, error) {
	d.PushErrorScope("validation")
	m := jcall(d.v, "createShaderModule", object("label", label, "code", code))
	scopeErr := d.PopErrorScope()
	info, err := await(jcall(m, "getCompilationInfo"))
	if err != nil {
		return nil, fmt.Errorf("webgpu: getCompilationInfo(%s): %w", label, err)
	}
	msgs := jget(info, "messages")
	n := jget(msgs, "length").Int()
	var errs []string
	for i := 0; i < n; i++ {
		crossings++
		msg := msgs.Index(i)
		if jget(msg, "type").String() != "error" {
			continue
		}
		errs = append(errs, fmt.Sprintf("%s:%d:%d: %s", label, jget(msg, "lineNum").Int(), jget(msg, "linePos").Int(), jget(msg, "message").String()))
	}
	if len(errs) > 0 {
		return nil, &CompileError{Label: label, Messages: errs}
	}
	if scopeErr != nil {
		return nil, fmt.Errorf("webgpu: shader %q: %w", label, scopeErr)
	}
	return &ShaderModule{v: m}, nil
}
