// Package cpu is the reference compute backend: plain Go loops over float32
// storage, with float64 accumulation in every reduction (matmul and
// convolution dot products, the mean and variance of the norms, softmax
// sums, attention) and rows spread over runtime.GOMAXPROCS goroutines.
// On amd64 with AVX2 and FMA, MatMul and Conv2D run a blocked GEMM with an
// assembly micro-kernel (gemm.go, gemm_amd64.s) that sums the products in
// float32 fused multiply-adds over K blocks of 256 and those block sums
// (and the bias) in float64; elsewhere, or built with the purego tag, every
// dot product is summed in float64.
//
// Every tensor is held as float32, including weights uploaded as F16 or
// BF16 (they are widened exactly on upload and keep reporting their stored
// DType). Memory accounting counts the 4 bytes per element actually held.
package cpu

import (
	"fmt"
	"sync"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// storage is the float32 buffer one or more tensor handles (a tensor and
// its reshaped views) refer to.
type storage struct {
	data    []float32
	freed   bool
	handles int // live handles sharing this storage: the tensor and its views
}

// Tensor is a tensor held in host memory by the CPU backend.
type Tensor struct {
	shape tensor.Shape
	dtype tensor.DType
	st    *storage
	freed bool // this handle was passed to Free
}

// Shape returns the tensor's dimensions.
func (t *Tensor) Shape() tensor.Shape { return t.shape }

// DType returns the encoding the tensor was uploaded in (F32 for every op
// result).
func (t *Tensor) DType() tensor.DType { return t.dtype }

// Backend is the CPU backend. The zero value is ready to use, as is New's
// result. It is safe for concurrent use by several goroutines.
type Backend struct {
	mu   sync.Mutex
	live int64
	peak int64
}

var _ backend.Backend = (*Backend)(nil)
var _ backend.PeakResetter = (*Backend)(nil)

// New returns a CPU backend with empty memory counters.
func New() *Backend { return &Backend{} }

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// Err always returns nil: host memory has no asynchronous device errors.
func (b *Backend) Err() error { return nil }

// Memory reports the bytes held by tensors that are not freed, and the
// largest such amount since New or ResetPeak.
func (b *Backend) Memory() backend.MemStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return backend.MemStats{Live: b.live, Peak: b.peak}
}

// ResetPeak sets the peak counter to the current live bytes.
func (b *Backend) ResetPeak() {
	b.mu.Lock()
	b.peak = b.live
	b.mu.Unlock()
}

// alloc returns a new zero-filled F32 tensor of the given shape and counts
// its bytes.
func (b *Backend) alloc(shape tensor.Shape) *Tensor {
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("cpu: negative dimension in shape %v", shape))
		}
	}
	n := shape.Numel()
	t := &Tensor{shape: shape.Clone(), dtype: tensor.F32, st: &storage{data: make([]float32, n), handles: 1}}
	b.mu.Lock()
	b.live += int64(4 * n)
	if b.live > b.peak {
		b.peak = b.live
	}
	b.mu.Unlock()
	return t
}

// get unwraps a tensor argument of op, panicking with op's name if it is
// not a live CPU tensor.
func get(op string, t backend.Tensor) *Tensor {
	c, ok := t.(*Tensor)
	if !ok || c == nil {
		panic(fmt.Sprintf("cpu: %s: argument %T is not a cpu tensor", op, t))
	}
	if c.freed || c.st.freed {
		panic(fmt.Sprintf("cpu: %s: use of freed tensor %v", op, c.shape))
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

// data returns the tensor's values.
func (t *Tensor) data() []float32 { return t.st.data }

// Upload copies h into a new F32 tensor.
func (b *Backend) Upload(h *tensor.Host) backend.Tensor {
	if h.Shape.Numel() != len(h.Data) {
		panic(fmt.Sprintf("cpu: Upload: %d values for shape %v", len(h.Data), h.Shape))
	}
	t := b.alloc(h.Shape)
	copy(t.data(), h.Data)
	return t
}

// UploadRaw decodes r into a new tensor that reports r's DType. F16 and
// BF16 values are widened exactly to float32.
func (b *Backend) UploadRaw(r *tensor.Raw) backend.Tensor {
	if !r.DType.IsFloat() {
		panic(fmt.Sprintf("cpu: UploadRaw: dtype %v %v is not a float type", r.DType, r.Shape))
	}
	n := r.Shape.Numel()
	if len(r.Bytes) != n*r.DType.Size() {
		panic(fmt.Sprintf("cpu: UploadRaw: %d bytes for %v %v (want %d)", len(r.Bytes), r.DType, r.Shape, n*r.DType.Size()))
	}
	t := b.alloc(r.Shape)
	tensor.DecodeFloat32(t.data(), r.Bytes, r.DType)
	t.dtype = r.DType
	return t
}

// ReadBack returns a copy of t's values as float32.
func (b *Backend) ReadBack(t backend.Tensor) (*tensor.Host, error) {
	c, ok := t.(*Tensor)
	if !ok || c == nil {
		return nil, fmt.Errorf("cpu: ReadBack: argument %T is not a cpu tensor", t)
	}
	if c.freed || c.st.freed {
		return nil, fmt.Errorf("cpu: ReadBack: tensor %v was freed", c.shape)
	}
	out := tensor.New(c.shape...)
	copy(out.Data, c.data())
	return out, nil
}

// Free retires the handle t. A tensor and its Reshape views share one
// storage, released with the last of their handles, in any order. Freeing
// a handle twice panics.
func (b *Backend) Free(t backend.Tensor) {
	c := get("Free", t)
	b.mu.Lock()
	defer b.mu.Unlock()
	c.freed = true
	c.st.handles--
	if c.st.handles > 0 {
		return // a view or the original still holds the storage
	}
	c.st.freed = true
	b.live -= int64(4 * len(c.st.data))
	c.st.data = nil
}

// Reshape returns a view of t sharing its memory. One dimension may be -1
// and is inferred from the element count.
func (b *Backend) Reshape(t backend.Tensor, shape ...int) backend.Tensor {
	c := get("Reshape", t)
	s, err := backend.ReshapeShape(c.shape, shape)
	if err != nil {
		panic("cpu: " + err.Error())
	}
	b.mu.Lock()
	c.st.handles++
	b.mu.Unlock()
	return &Tensor{shape: s, dtype: c.dtype, st: c.st}
}

// shapeOf returns t's shape, or nil for a nil tensor (an absent bias).
func shapeOf(t *Tensor) tensor.Shape {
	if t == nil {
		return nil
	}
	return t.shape
}
