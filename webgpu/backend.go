//go:build js && wasm

// Package webgpu is the GPU backend: it implements backend.Backend with the
// WGSL kernels of package shaders, run through the browser's WebGPU API
// (package webgpu/gpu).
//
// Tensors live in pooled storage buffers; weights keep their checkpoint
// dtype (F16 and BF16 stay 2 bytes per element and are decoded in the
// shaders). Ops are recorded into one command encoder and one compute pass,
// submitted only when a result is read back, an upload needs it, or the
// uniform ring fills up, so a whole forward pass is one submission. Each
// dispatch costs about three Go→JS calls once its pipeline and bind group
// are cached (Stats reports the counts).
package webgpu

import (
	"errors"
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
	"github.com/tgate-web/tgate/webgpu/gpu"
)

// Options configure New.
type Options struct {
	// PowerPreference is passed to requestAdapter: "", "low-power" or
	// "high-performance".
	PowerPreference string
	// MaxWorkgroupsPerDim, when positive and below the device limit, caps
	// the workgroups of one dispatch per dimension, so that tests can force
	// the split-dispatch paths at small sizes.
	MaxWorkgroupsPerDim int
	// UniformSlots is the number of dispatches recorded before a submission
	// is forced (default 4096).
	UniformSlots int
	// MaxStorageBindingSize, when positive and below the device's
	// maxStorageBufferBindingSize, lowers the largest storage binding the
	// backend makes, so that tests can force the windowed paths (and the
	// limit errors) at small sizes.
	MaxStorageBindingSize uint64
}

// Stats are counters of the backend's work, for benchmarks and tests.
type Stats struct {
	Crossings      uint64 // Go→JS calls made through package gpu so far
	Dispatches     uint64 // compute dispatches recorded
	Submits        uint64 // queue submissions
	Pipelines      int    // compute pipelines created
	BindGroupHits  uint64 // bind groups found in the cache
	BindGroupMiss  uint64 // bind groups created
	PoolBytes      int64  // bytes of buffers held by the pool, used or not
	PoolAllocs     uint64 // buffers created for the pool
	UploadsFlushed uint64 // submissions forced by an upload
}

// KernelStats count the use of one kernel entry point.
type KernelStats struct {
	Calls      int // dispatch groups recorded (one per op, or per window)
	Split      int // of those, the ones whose grid was split into several dispatches
	MaxGroups  int // the largest grid, in workgroups
	Windowed   int // ops that bound their tensors in several windows
	MaxWindows int // the most windows one op used
}

// kstat returns the counters of kernel k.
func (b *Backend) kstat(k kernel) *KernelStats {
	ks := b.kstats[k.entry]
	if ks == nil {
		ks = &KernelStats{}
		b.kstats[k.entry] = ks
	}
	return ks
}

// KernelStats returns the per-kernel counters, by entry point name.
func (b *Backend) KernelStats() map[string]KernelStats {
	out := map[string]KernelStats{}
	for k, v := range b.kstats {
		out[k] = *v
	}
	return out
}

// Backend is the WebGPU backend. It is not safe for concurrent use.
type Backend struct {
	adapter *gpu.Adapter
	dev     *gpu.Device
	opt     Options
	maxDim  int // workgroups per dispatch dimension
	// maxBinding is the largest storage binding in bytes; ops over larger
	// tensors run in windows bound at offsets that are multiples of align
	// (minStorageBufferOffsetAlignment), or fail with a LimitError.
	maxBinding uint64
	align      uint64
	maxBuffer  uint64 // maxBufferSize: larger tensors fail with a LimitError

	err        error // the first device error
	live, peak int64
	stats      Stats

	pool
	rec recorder

	kstats map[string]*KernelStats

	modules   map[string]*gpu.ShaderModule
	pipelines map[pipeKey]*gpu.ComputePipeline
	layouts   map[int]*gpu.BindGroupLayout
}

var _ backend.Backend = (*Backend)(nil)
var _ backend.PeakResetter = (*Backend)(nil)

// New requests an adapter and a device with the adapter's largest buffer,
// binding and workgroup-storage limits, and returns a backend on it.
func New(opt Options) (*Backend, error) {
	ad, err := gpu.RequestAdapter(opt.PowerPreference)
	if err != nil {
		return nil, err
	}
	al := ad.Limits
	dev, err := ad.RequestDevice(gpu.DeviceDescriptor{
		Label: "tgate",
		RequiredLimits: gpu.Limits{
			MaxBufferSize:                  al.MaxBufferSize,
			MaxStorageBufferBindingSize:    al.MaxStorageBufferBindingSize,
			MaxComputeWorkgroupStorageSize: al.MaxComputeWorkgroupStorageSize,
		},
	})
	if err != nil {
		return nil, err
	}
	b := &Backend{
		adapter:   ad,
		dev:       dev,
		opt:       opt,
		modules:   map[string]*gpu.ShaderModule{},
		kstats:    map[string]*KernelStats{},
		pipelines: map[pipeKey]*gpu.ComputePipeline{},
		layouts:   map[int]*gpu.BindGroupLayout{},
	}
	b.maxDim = int(dev.Limits.MaxComputeWorkgroupsPerDimension)
	if opt.MaxWorkgroupsPerDim > 0 && opt.MaxWorkgroupsPerDim < b.maxDim {
		b.maxDim = opt.MaxWorkgroupsPerDim
	}
	b.maxBinding = dev.Limits.MaxStorageBufferBindingSize
	if opt.MaxStorageBindingSize > 0 && opt.MaxStorageBindingSize < b.maxBinding {
		b.maxBinding = opt.MaxStorageBindingSize
	}
	b.align = max(4, dev.Limits.MinStorageBufferOffsetAlignment)
	b.maxBuffer = dev.Limits.MaxBufferSize
	b.pool.init(dev)
	dev.OnUncapturedError(func(e error) { b.setErr(e) })
	go func() {
		<-dev.Lost()
		b.setErr(dev.LostError())
	}()
	b.rec.init(b, opt.UniformSlots)
	return b, nil
}

// AdapterInfo describes the adapter the backend runs on.
func (b *Backend) AdapterInfo() gpu.AdapterInfo { return b.adapter.Info }

// Limits returns the device's limits.
func (b *Backend) Limits() gpu.Limits { return b.dev.Limits }

// Stats returns the work counters.
func (b *Backend) Stats() Stats {
	s := b.stats
	s.Crossings = gpu.Crossings()
	s.Pipelines = len(b.pipelines)
	s.PoolBytes = b.pool.total
	return s
}

// Name returns "webgpu".
func (b *Backend) Name() string { return "webgpu" }

func (b *Backend) setErr(err error) {
	if b.err == nil && err != nil {
		b.err = err
	}
}

// Err returns the first device error (validation, out of memory, device
// lost, or a *LimitError: a tensor above maxStorageBufferBindingSize that
// its op cannot window, or above maxBufferSize), or nil. Once it is set,
// ops record no more GPU work and ReadBack returns it.
func (b *Backend) Err() error { return b.err }

// Memory reports the bytes of the buffers held by live tensors (their
// pooled size classes) and the peak of that since New or ResetPeak.
func (b *Backend) Memory() backend.MemStats { return backend.MemStats{Live: b.live, Peak: b.peak} }

// ResetPeak sets the peak counter to the live bytes.
func (b *Backend) ResetPeak() { b.peak = b.live }

// Sync submits pending work and waits until the GPU has finished it.
func (b *Backend) Sync() error {
	b.rec.flush()
	if err := b.dev.Queue.OnSubmittedWorkDone(); err != nil {
		b.setErr(err)
	}
	return b.Err()
}

// Close submits pending work, waits for the queue, destroys the device
// and waits until the browser reports it gone. It returns the backend's
// error, if any, and the queue's.
func (b *Backend) Close() error {
	b.rec.flush()
	err := errors.Join(b.err, b.dev.Queue.OnSubmittedWorkDone())
	b.dev.Destroy()
	<-b.dev.Lost()
	return err
}

// storage is a buffer shared by a tensor and its reshaped views; it goes
// back to the pool when the last of its handles is freed.
type storage struct {
	buf   *buffer // nil for a tensor above maxBufferSize (never bound)
	refs  int     // live handles
	freed bool
	// scale holds the per-row scales of an I8 weight (QuantizeRows); it
	// is freed with the storage.
	scale *Tensor
}

// Tensor is a tensor in a GPU buffer, starting at offset 0.
type Tensor struct {
	shape tensor.Shape
	dtype tensor.DType
	st    *storage
	freed bool
}

// Shape returns the tensor's dimensions.
func (t *Tensor) Shape() tensor.Shape { return t.shape }

// DType returns the tensor's stored encoding (F32 for every op result).
func (t *Tensor) DType() tensor.DType { return t.dtype }

// bytes is the tensor's data size in bytes.
func (t *Tensor) bytes() uint64 { return uint64(t.shape.Numel() * t.dtype.Size()) }

// get unwraps an op's tensor argument, panicking with the op's name if it
// is not a live WebGPU tensor.
func get(op string, t backend.Tensor) *Tensor {
	c, ok := t.(*Tensor)
	if !ok || c == nil {
		panic(fmt.Sprintf("webgpu: %s: argument %T is not a webgpu tensor", op, t))
	}
	if c.freed {
		panic(fmt.Sprintf("webgpu: %s: use of freed tensor %v", op, c.shape))
	}
	return c
}

// getOpt is get for an optional argument: nil stays nil.
func getOpt(op string, t backend.Tensor) *Tensor {
	if t == nil {
		return nil
	}
	if c, ok := t.(*Tensor); ok && c == nil {
		return nil
	}
	return get(op, t)
}

// alloc makes a tensor of the given shape and dtype in a pooled buffer.
// forWrite says the buffer will be filled by queue.writeBuffer, so it must
// not be one that unsubmitted commands still use. A tensor above the
// device's maxBufferSize gets no buffer: it records a LimitError for op
// and is a placeholder that only Free, Reshape and Shape accept.
func (b *Backend) alloc(op string, shape tensor.Shape, dt tensor.DType, forWrite bool) *Tensor {
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("webgpu: %s: negative dimension in shape %v", op, shape))
		}
	}
	n := uint64(shape.Numel() * dt.Size())
	if n > b.maxBuffer {
		b.setErr(&LimitError{Op: op, DType: dt, Shape: shape.Clone(), Bytes: n, Limit: "maxBufferSize", Max: b.maxBuffer})
		return &Tensor{shape: shape.Clone(), dtype: dt, st: &storage{refs: 1}}
	}
	buf := b.pool.get(n, b.maxBuffer, forWrite, b.rec.epoch)
	b.live += int64(buf.size)
	b.peak = max(b.peak, b.live)
	return &Tensor{shape: shape.Clone(), dtype: dt, st: &storage{buf: buf, refs: 1}}
}

// Free retires the handle t. A tensor and its Reshape views share one
// buffer, which goes back to the pool when the last of them is freed.
// Freeing a handle twice panics.
func (b *Backend) Free(t backend.Tensor) {
	c := get("Free", t)
	c.freed = true
	c.st.refs--
	if c.st.refs > 0 {
		return
	}
	c.st.freed = true
	if c.st.buf != nil {
		b.live -= int64(c.st.buf.size)
		b.pool.put(c.st.buf)
		c.st.buf = nil
	}
	if c.st.scale != nil {
		b.Free(c.st.scale)
		c.st.scale = nil
	}
}

// Reshape returns a view of t sharing its buffer. One dimension may be -1.
func (b *Backend) Reshape(t backend.Tensor, shape ...int) backend.Tensor {
	c := get("Reshape", t)
	s, err := backend.ReshapeShape(c.shape, shape)
	if err != nil {
		panic("webgpu: " + err.Error())
	}
	c.st.refs++
	return &Tensor{shape: s, dtype: c.dtype, st: c.st}
}

// dtCode is the shaders' dtype code of a tensor.
func dtCode(dt tensor.DType) float64 {
	switch dt {
	case tensor.F32:
		return 0
	case tensor.F16:
		return 1
	case tensor.BF16:
		return 2
	}
	panic(fmt.Sprintf("webgpu: dtype %v cannot be read by the kernels", dt))
}

// shapeOf returns t's shape, or nil for a nil tensor (an absent bias).
func shapeOf(t *Tensor) tensor.Shape {
	if t == nil {
		return nil
	}
	return t.shape
}

// DeviceLost returns the device-lost error once the browser has lost the
// device (out of memory, a driver reset), else nil. A lost device never
// comes back: make a new Backend.
func (b *Backend) DeviceLost() error { return b.dev.LostError() }

// HasFeature reports whether the adapter offers the named WebGPU feature
// ("shader-f16", "subgroups", ...).
func (b *Backend) HasFeature(name string) bool { return b.adapter.HasFeature(name) }
