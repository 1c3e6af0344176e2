//go:build js && wasm

package gpu

import (
	"fmt"
	"syscall/js"
)

// Buffer usage flags (GPUBufferUsage).
const (
	UsageMapRead  = 0x0001
	UsageMapWrite = 0x0002
	UsageCopySrc  = 0x0004
	UsageCopyDst  = 0x0008
	UsageUniform  = 0x0040
	UsageStorage  = 0x0080
)

// Map modes (GPUMapMode).
const (
	MapRead  = 0x0001
	MapWrite = 0x0002
)

// Buffer is a GPUBuffer.
type Buffer struct {
	v    js.Value
	Size uint64
}

// CreateBuffer allocates a buffer of size bytes with the usage flags.
// Allocation failures surface through error scopes or the uncaptured-error
// handler, as WebGPU reports them.
func (d *Device) CreateBuffer(label string, size uint64, usage int) *Buffer {
	desc := object("size", float64(size), "usage", usage)
	if label != "" {
		jset(desc, "label", label)
	}
	return &Buffer{v: jcall(d.v, "createBuffer", desc), Size: size}
}

// MapAsync maps the range [offset, offset+size) of the buffer for reading
// or writing and waits until it is mapped.
func (b *Buffer) MapAsync(mode int, offset, size uint64) error {
	_, err := await(jcall(b.v, "mapAsync", mode, float64(offset), float64(size)))
	if err != nil {
		return fmt.Errorf("webgpu: mapAsync: %w", err)
	}
	return nil
}

// ReadMapped copies len(dst) bytes of a mapped buffer, starting at offset
// (which must lie in the mapped range), into dst.
func (b *Buffer) ReadMapped(dst []byte, offset uint64) {
	ab := jcall(b.v, "getMappedRange", float64(offset), len(dst))
	u8 := jnew(uint8ArrayCtor, ab)
	crossings++
	js.CopyBytesToGo(dst, u8)
}

// Unmap releases a mapping.
func (b *Buffer) Unmap() { jcall(b.v, "unmap") }

// Destroy frees the buffer's memory.
func (b *Buffer) Destroy() { jcall(b.v, "destroy") }

// BindGroupLayoutEntry kinds.
const (
	BindUniformDynamic = iota // uniform buffer with a dynamic offset
	BindStorageRead           // read-only-storage
	BindStorage               // storage (read-write)
)

// BindGroupLayout is a GPUBindGroupLayout.
type BindGroupLayout struct{ v js.Value }

// CreateBindGroupLayout makes a compute-stage layout whose binding i has
// kind kinds[i].
func (d *Device) CreateBindGroupLayout(label string, kinds []int) *BindGroupLayout {
	entries := make([]any, len(kinds))
	for i, k := range kinds {
		buf := object()
		switch k {
		case BindUniformDynamic:
			jset(buf, "type", "uniform")
			jset(buf, "hasDynamicOffset", true)
		case BindStorageRead:
			jset(buf, "type", "read-only-storage")
		case BindStorage:
			jset(buf, "type", "storage")
		}
		entries[i] = object("binding", i, "visibility", 4 /* GPUShaderStage.COMPUTE */, "buffer", buf)
	}
	return &BindGroupLayout{v: jcall(d.v, "createBindGroupLayout", object("label", label, "entries", array(entries...)))}
}

// ComputePipeline is a GPUComputePipeline.
type ComputePipeline struct{ v js.Value }

// ComputePipelineDescriptor describes a compute pipeline with an explicit
// layout of one bind group.
type ComputePipelineDescriptor struct {
	Label      string
	Layout     *BindGroupLayout
	Module     *ShaderModule
	EntryPoint string
	Constants  map[string]float64 // values of the module's override constants
}

// CreateComputePipeline builds the pipeline and waits for it
// (createComputePipelineAsync), so a pipeline error (an unknown entry point,
// a bad override value, a layout mismatch) comes back as an error.
func (d *Device) CreateComputePipeline(p ComputePipelineDescriptor) (*ComputePipeline, error) {
	layout := jcall(d.v, "createPipelineLayout", object("bindGroupLayouts", array(p.Layout.v)))
	compute := object("module", p.Module.v, "entryPoint", p.EntryPoint)
	if len(p.Constants) > 0 {
		c := object()
		for k, v := range p.Constants {
			jset(c, k, v)
		}
		jset(compute, "constants", c)
	}
	v, err := await(jcall(d.v, "createComputePipelineAsync", object("label", p.Label, "layout", layout, "compute", compute)))
	if err != nil {
		return nil, fmt.Errorf("webgpu: pipeline %s: %w", p.Label, err)
	}
	return &ComputePipeline{v: v}, nil
}

// BindGroup is a GPUBindGroup.
type BindGroup struct{ v js.Value }

// BufferBinding binds the range [Offset, Offset+Size) of a buffer.
type BufferBinding struct {
	Buffer       *Buffer
	Offset, Size uint64
}

// CreateBindGroup binds entries[i] at binding i.
func (d *Device) CreateBindGroup(layout *BindGroupLayout, entries []BufferBinding) *BindGroup {
	es := make([]any, len(entries))
	for i, e := range entries {
		es[i] = object("binding", i, "resource", object("buffer", e.Buffer.v, "offset", float64(e.Offset), "size", float64(e.Size)))
	}
	return &BindGroup{v: jcall(d.v, "createBindGroup", object("layout", layout.v, "entries", array(es...)))}
}

// Uint32Array is a JS Uint32Array kept for dynamic offsets.
type Uint32Array struct{ v js.Value }

// NewUint32Array makes a JS Uint32Array holding vals.
func NewUint32Array(vals []uint32) Uint32Array {
	b := make([]byte, 4*len(vals))
	for i, x := range vals {
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
	}
	u8 := jnew(uint8ArrayCtor, len(b))
	crossings++
	js.CopyBytesToJS(u8, b)
	return Uint32Array{jnew(js.Global().Get("Uint32Array"), jget(u8, "buffer"))}
}
