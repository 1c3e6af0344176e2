//go:build js && wasm

package gpu

import (
	"fmt"
	"syscall/js"
)

// CommandEncoder is a GPUCommandEncoder.
type CommandEncoder struct{ v js.Value }

// CreateCommandEncoder starts recording commands.
func (d *Device) CreateCommandEncoder() *CommandEncoder {
	return &CommandEncoder{v: jcall(d.v, "createCommandEncoder")}
}

// ComputePass is a GPUComputePassEncoder.
type ComputePass struct{ v js.Value }

// BeginComputePass starts a compute pass.
func (e *CommandEncoder) BeginComputePass() *ComputePass {
	return &ComputePass{v: jcall(e.v, "beginComputePass")}
}

// CopyBufferToBuffer records a copy of size bytes.
func (e *CommandEncoder) CopyBufferToBuffer(src *Buffer, srcOff uint64, dst *Buffer, dstOff, size uint64) {
	jcall(e.v, "copyBufferToBuffer", src.v, float64(srcOff), dst.v, float64(dstOff), float64(size))
}

// CommandBuffer is a finished GPUCommandBuffer.
type CommandBuffer struct{ v js.Value }

// Finish ends recording.
func (e *CommandEncoder) Finish() *CommandBuffer {
	return &CommandBuffer{v: jcall(e.v, "finish")}
}

// SetPipeline selects the pipeline for the following dispatches.
func (p *ComputePass) SetPipeline(pl *ComputePipeline) { jcall(p.v, "setPipeline", pl.v) }

// SetBindGroup binds bg at index with the dynamic offsets
// offsets[start:start+n] (n may be 0).
func (p *ComputePass) SetBindGroup(index int, bg *BindGroup, offsets Uint32Array, start, n int) {
	if n == 0 {
		jcall(p.v, "setBindGroup", index, bg.v)
		return
	}
	jcall(p.v, "setBindGroup", index, bg.v, offsets.v, start, n)
}

// DispatchWorkgroups runs x·y·z workgroups.
func (p *ComputePass) DispatchWorkgroups(x, y, z int) { jcall(p.v, "dispatchWorkgroups", x, y, z) }

// End closes the pass.
func (p *ComputePass) End() { jcall(p.v, "end") }

// Queue is a GPUQueue.
type Queue struct {
	v   js.Value
	dev *Device
}

// Submit runs the command buffers in order.
func (q *Queue) Submit(cbs ...*CommandBuffer) {
	vs := make([]any, len(cbs))
	for i, c := range cbs {
		vs[i] = c.v
	}
	jcall(q.v, "submit", array(vs...))
}

// WriteBuffer copies data (whose length must be a multiple of 4) from Go
// memory into buf at offset, through a reused JS staging array.
func (q *Queue) WriteBuffer(buf *Buffer, offset uint64, data []byte) {
	d := q.dev
	if d.scratchN < len(data) {
		n := max(len(data), 2*d.scratchN, 1<<16)
		d.scratch = jnew(uint8ArrayCtor, n)
		d.scratchN = n
	}
	crossings++
	js.CopyBytesToJS(d.scratch, data)
	jcall(q.v, "writeBuffer", buf.v, float64(offset), d.scratch, 0, len(data))
}

// WriteBufferJS copies size bytes of a JS ArrayBuffer, TypedArray or
// DataView, starting at byte srcOff, into buf at offset, without passing
// them through Go memory. size must be a multiple of 4.
func (q *Queue) WriteBufferJS(buf *Buffer, offset uint64, src js.Value, srcOff, size uint64) error {
	u8 := AsUint8Array(src)
	return catch(func() {
		jcall(q.v, "writeBuffer", buf.v, float64(offset), u8, float64(srcOff), float64(size))
	})
}

// AsUint8Array views a JS ArrayBuffer, TypedArray or DataView as a
// Uint8Array over the same bytes.
func AsUint8Array(src js.Value) js.Value {
	crossings++
	if src.InstanceOf(uint8ArrayCtor) {
		return src
	}
	if ab := jget(src, "buffer"); ab.Type() == js.TypeObject {
		return jnew(uint8ArrayCtor, ab, jget(src, "byteOffset"), jget(src, "byteLength"))
	}
	return jnew(uint8ArrayCtor, src)
}

// ByteLength returns the byteLength of a JS ArrayBuffer or view.
func ByteLength(src js.Value) (uint64, error) {
	n := jget(src, "byteLength")
	if n.Type() != js.TypeNumber {
		return 0, fmt.Errorf("webgpu: %s is not an ArrayBuffer or typed array", src.Type())
	}
	return uint64(n.Float()), nil
}

// Subarray returns the bytes [start, end) of a Uint8Array as a view.
func Subarray(u8 js.Value, start, end uint64) js.Value {
	return jcall(u8, "subarray", float64(start), float64(end))
}

// NewUint8Array makes a zeroed JS Uint8Array of n bytes.
func NewUint8Array(n int) js.Value { return jnew(uint8ArrayCtor, n) }

// CopyWithin copies the Uint8Array src into dst at offset (TypedArray.set).
func CopyWithin(dst, src js.Value, offset int) { jcall(dst, "set", src, offset) }

// OnSubmittedWorkDone waits until the queue has finished all submitted
// work.
func (q *Queue) OnSubmittedWorkDone() error {
	_, err := await(jcall(q.v, "onSubmittedWorkDone"))
	return err
}
