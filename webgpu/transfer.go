//go:build js && wasm

package webgpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"syscall/js"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
	"github.com/tgate-web/tgate/webgpu/gpu"
)

// Upload copies a host tensor to a new F32 tensor.
func (b *Backend) Upload(h *tensor.Host) backend.Tensor {
	if h.Shape.Numel() != len(h.Data) {
		panic(fmt.Sprintf("webgpu: Upload: %d values for shape %v", len(h.Data), h.Shape))
	}
	raw := make([]byte, (4*len(h.Data)+3)&^3)
	for i, v := range h.Data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	t := b.alloc("Upload", h.Shape, tensor.F32, true)
	b.write(t, raw)
	return t
}

// UploadRaw copies a tensor in its stored encoding (F32, F16 or BF16) to
// the device without widening it.
func (b *Backend) UploadRaw(r *tensor.Raw) backend.Tensor {
	if !r.DType.IsFloat() {
		panic(fmt.Sprintf("webgpu: UploadRaw: dtype %v %v is not a float type", r.DType, r.Shape))
	}
	n := r.Shape.Numel() * r.DType.Size()
	if len(r.Bytes) != n {
		panic(fmt.Sprintf("webgpu: UploadRaw: %d bytes for %v %v (want %d)", len(r.Bytes), r.DType, r.Shape, n))
	}
	t := b.alloc("UploadRaw", r.Shape, r.DType, true)
	if n%4 != 0 {
		padded := make([]byte, (n+3)&^3)
		copy(padded, r.Bytes)
		b.write(t, padded)
	} else {
		b.write(t, r.Bytes)
	}
	return t
}

// write fills t's buffer from Go bytes (a multiple of 4 long); a
// placeholder tensor (above maxBufferSize) has nothing to fill.
func (b *Backend) write(t *Tensor, raw []byte) {
	if len(raw) > 0 && t.st.buf != nil {
		b.dev.Queue.WriteBuffer(t.st.buf.gb, 0, raw)
	}
}

// UploadJS makes a tensor of the given dtype and shape from the bytes of a
// JS ArrayBuffer, typed array or DataView (for example a chunk of a fetch
// response), written into the GPU buffer without passing through Go
// memory. Its byte length must be shape.Numel()·dt.Size().
func (b *Backend) UploadJS(dt tensor.DType, shape tensor.Shape, src js.Value) (backend.Tensor, error) {
	w, err := b.NewWriter(dt, shape)
	if err != nil {
		return nil, err
	}
	if err := w.Write(src); err != nil {
		w.Abort()
		return nil, err
	}
	return w.Close()
}

// Writer fills a new tensor from a sequence of JS byte chunks of any
// lengths (a streamed download), writing each straight into the GPU
// buffer. Bytes that do not fill a 4-byte word wait in a small JS array
// for the next chunk.
type Writer struct {
	b      *Backend
	t      *Tensor
	want   uint64
	off    uint64   // bytes written to the buffer (a multiple of 4)
	carry  js.Value // Uint8Array(4) holding carryN pending bytes
	carryN uint64
	done   bool
}

// NewWriter starts a tensor of the given dtype and shape to be filled by
// Write calls totalling shape.Numel()·dt.Size() bytes.
func (b *Backend) NewWriter(dt tensor.DType, shape tensor.Shape) (*Writer, error) {
	if !dt.IsFloat() {
		return nil, fmt.Errorf("webgpu: upload of %v %v: only F32, F16 and BF16 tensors live on the GPU", dt, shape)
	}
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("webgpu: upload: negative dimension in shape %v", shape)
		}
	}
	if err := b.Err(); err != nil {
		return nil, err
	}
	t := b.alloc("upload", shape, dt, true)
	if t.st.buf == nil {
		b.Free(t)
		return nil, b.Err()
	}
	return &Writer{b: b, t: t, want: t.bytes(), carry: gpu.NewUint8Array(4)}, nil
}

// Write appends the bytes of chunk (an ArrayBuffer, typed array or
// DataView).
func (w *Writer) Write(chunk js.Value) error {
	if w.done {
		return fmt.Errorf("webgpu: write to a closed tensor writer (%v %v)", w.t.dtype, w.t.shape)
	}
	n, err := gpu.ByteLength(chunk)
	if err != nil {
		return err
	}
	if got := w.off + w.carryN + n; got > w.want {
		return fmt.Errorf("webgpu: upload of %v %v: %d bytes received, want %d", w.t.dtype, w.t.shape, got, w.want)
	}
	u8 := gpu.AsUint8Array(chunk)
	q := w.b.dev.Queue
	gb := w.t.st.buf.gb
	var pos uint64
	if w.carryN > 0 {
		k := min(4-w.carryN, n)
		gpu.CopyWithin(w.carry, gpu.Subarray(u8, 0, k), int(w.carryN))
		w.carryN += k
		pos = k
		if w.carryN < 4 {
			return nil
		}
		if err := q.WriteBufferJS(gb, w.off, w.carry, 0, 4); err != nil {
			return err
		}
		w.off += 4
		w.carryN = 0
	}
	if aligned := (n - pos) &^ 3; aligned > 0 {
		if err := q.WriteBufferJS(gb, w.off, u8, pos, aligned); err != nil {
			return fmt.Errorf("webgpu: upload of %v %v: %w", w.t.dtype, w.t.shape, err)
		}
		w.off += aligned
		pos += aligned
	}
	if rest := n - pos; rest > 0 {
		gpu.CopyWithin(w.carry, gpu.Subarray(u8, pos, n), 0)
		w.carryN = rest
	}
	return nil
}

// Close checks that every byte arrived, writes the last partial word
// (zero padded) and returns the tensor.
func (w *Writer) Close() (backend.Tensor, error) {
	if w.done {
		return nil, fmt.Errorf("webgpu: tensor writer (%v %v) closed twice", w.t.dtype, w.t.shape)
	}
	if got := w.off + w.carryN; got != w.want {
		w.Abort()
		return nil, fmt.Errorf("webgpu: upload of %v %v: %d bytes received, want %d", w.t.dtype, w.t.shape, got, w.want)
	}
	if w.carryN > 0 {
		for i := w.carryN; i < 4; i++ {
			w.carry.SetIndex(int(i), 0)
		}
		if err := w.b.dev.Queue.WriteBufferJS(w.t.st.buf.gb, w.off, w.carry, 0, 4); err != nil {
			w.Abort()
			return nil, err
		}
	}
	w.done = true
	return w.t, nil
}

// Abort frees the tensor of an unfinished writer.
func (w *Writer) Abort() {
	if !w.done {
		w.done = true
		w.b.Free(w.t)
	}
}

// ReadBack submits pending work, copies t into a mappable buffer and
// returns its values as float32.
func (b *Backend) ReadBack(t backend.Tensor) (*tensor.Host, error) {
	c, ok := t.(*Tensor)
	if !ok || c == nil {
		return nil, fmt.Errorf("webgpu: ReadBack: argument %T is not a webgpu tensor", t)
	}
	if c.freed {
		return nil, fmt.Errorf("webgpu: ReadBack: tensor %v was freed", c.shape)
	}
	if err := b.Err(); err != nil {
		return nil, err
	}
	out := tensor.New(c.shape...)
	n := c.bytes()
	if n == 0 {
		return out, nil
	}
	size := bindSize(c)
	staging := b.dev.CreateBuffer("readback", size, gpu.UsageMapRead|gpu.UsageCopyDst)
	defer staging.Destroy()
	b.rec.encoder().CopyBufferToBuffer(c.st.buf.gb, 0, staging, 0, size)
	c.st.buf.lastUse = b.rec.epoch
	b.rec.flush()
	if err := staging.MapAsync(gpu.MapRead, 0, size); err != nil {
		b.setErr(err)
		return nil, b.Err()
	}
	raw := make([]byte, size)
	staging.ReadMapped(raw, 0)
	staging.Unmap()
	if err := b.Err(); err != nil {
		return nil, err
	}
	tensor.DecodeFloat32(out.Data, raw, c.dtype)
	return out, nil
}
