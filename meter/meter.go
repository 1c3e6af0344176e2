// Package meter is a backend that computes nothing: it follows shapes
// through the real forward code and meters what a real backend would
// spend — multiply-accumulates per op kind, the weights the ops read, and
// live and peak bytes of weights, activations and caches with the same
// lifetimes (every Free is honoured, views share their storage as
// backend.Free specifies). It builds whole models from their configs
// alone, so the MACs and memory of SD 1.5 or SDXL can be counted without
// their weights.
//
// Bytes are the exact tensor sizes (elements × dtype size); a real
// backend may round allocations up (the WebGPU backend pools buffers by
// size class) and keep freed buffers for reuse, which the meter does not
// model.
package meter

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// Kind classifies what a tensor holds, for memory accounting.
type Kind int

const (
	Activation Kind = iota // op results and uploaded inputs
	Weight                 // declared or uploaded weights
	Cache                  // tensors a caller keeps across steps (T-GATE's caches)
	numKinds
)

var kindNames = [...]string{"activations", "weights", "caches"}

func (k Kind) String() string { return kindNames[k] }

// Op names the op families MACs are counted under.
type Op string

const (
	OpMatMul    Op = "matmul"    // MatMul: M·N·K per batch
	OpConv      Op = "conv2d"    // Conv2D: out elements · Cin·kh·kw
	OpAttention Op = "attention" // q·kᵀ and p·v: B·H·Nq·Nk·(D+Dv)
)

// Tensor is a shape-only tensor handle.
type Tensor struct {
	shape tensor.Shape
	dtype tensor.DType
	base  *buffer // shared by views
	freed bool
}

type buffer struct {
	bytes   int64
	elems   int64
	kind    Kind
	handles int // live handles: the tensor and its views
}

// Shape returns the tensor's shape.
func (t *Tensor) Shape() tensor.Shape { return t.shape }

// DType returns the tensor's element type.
func (t *Tensor) DType() tensor.DType { return t.dtype }

// Backend meters a forward pass. The zero value is not ready; use New.
type Backend struct {
	macs  map[Op]int64
	live  [numKinds]int64
	peak  [numKinds]int64 // per-kind peaks (each reached at its own moment)
	large [numKinds]int64 // largest single storage per kind since New
	total int64           // live bytes of all kinds
	peakT int64           // peak of total
	// used holds the weight storage read by an op since New or
	// ResetUsed.
	used map[*buffer]struct{}
	// ActDType is the dtype of activations (F32 unless an F16 path is
	// being modelled).
	ActDType tensor.DType
}

// New returns a meter with F32 activations.
func New() *Backend {
	return &Backend{macs: map[Op]int64{}, used: map[*buffer]struct{}{}, ActDType: tensor.F32}
}

// Name returns "meter".
func (m *Backend) Name() string { return "meter" }

// MACs returns the multiply-accumulates counted for op so far.
func (m *Backend) MACs(op Op) int64 { return m.macs[op] }

// TotalMACs returns the MACs of every op family.
func (m *Backend) TotalMACs() int64 {
	var s int64
	for _, v := range m.macs {
		s += v
	}
	return s
}

// ResetMACs zeroes the MAC counters.
func (m *Backend) ResetMACs() { m.macs = map[Op]int64{} }

// MACsByOp returns a copy of the MAC counters of every op family that
// counted any.
func (m *Backend) MACsByOp() map[Op]int64 {
	out := make(map[Op]int64, len(m.macs))
	for k, v := range m.macs {
		out[k] = v
	}
	return out
}

// UsedWeights returns the elements and bytes of the distinct weight
// tensors (storage of kind Weight, shared views counted once) that an op
// read since New or ResetUsed: the parameters a forward pass actually
// uses. Weights freed since they were read still count.
func (m *Backend) UsedWeights() (elems, bytes int64) {
	for b := range m.used {
		elems += b.elems
		bytes += b.bytes
	}
	return elems, bytes
}

// ResetUsed forgets which weights were read.
func (m *Backend) ResetUsed() { m.used = map[*buffer]struct{}{} }

// Live returns the live bytes of one kind.
func (m *Backend) Live(k Kind) int64 { return m.live[k] }

// PeakOf returns the largest live bytes one kind reached.
func (m *Backend) PeakOf(k Kind) int64 { return m.peak[k] }

// Largest returns the bytes of the largest single storage of kind k made
// since New (a tensor and its views are one storage). A device must be
// able to allocate and bind a buffer that large: WebGPU's default
// maxStorageBufferBindingSize is 128 MiB.
func (m *Backend) Largest(k Kind) int64 { return m.large[k] }

// ResetPeak sets every peak to the current live bytes.
func (m *Backend) ResetPeak() {
	m.peak = m.live
	m.peakT = m.total
}

// Retag moves t's bytes to another kind (a caller that starts keeping an
// activation across steps retags it as a Cache).
func (m *Backend) Retag(t backend.Tensor, k Kind) {
	b := m.t(t).base
	if b.kind == k {
		return
	}
	m.live[b.kind] -= b.bytes
	b.kind = k
	m.live[k] += b.bytes
	if m.live[k] > m.peak[k] {
		m.peak[k] = m.live[k]
	}
	m.large[k] = max(m.large[k], b.bytes)
}

func (m *Backend) alloc(shape tensor.Shape, dt tensor.DType, k Kind) *Tensor {
	n := int64(shape.Numel())
	b := &buffer{bytes: n * int64(dt.Size()), elems: n, kind: k, handles: 1}
	m.live[k] += b.bytes
	m.large[k] = max(m.large[k], b.bytes)
	m.total += b.bytes
	if m.live[k] > m.peak[k] {
		m.peak[k] = m.live[k]
	}
	if m.total > m.peakT {
		m.peakT = m.total
	}
	return &Tensor{shape: shape.Clone(), dtype: dt, base: b}
}

func (m *Backend) act(shape ...int) *Tensor {
	return m.alloc(tensor.Shape(shape), m.ActDType, Activation)
}

func (m *Backend) t(x backend.Tensor) *Tensor {
	t, ok := x.(*Tensor)
	if !ok {
		panic(fmt.Sprintf("meter: tensor of another backend (%T)", x))
	}
	if t.freed {
		panic("meter: use of a freed tensor")
	}
	return t
}

// arg returns the tensor an op reads and records a weight as used.
func (m *Backend) arg(x backend.Tensor) *Tensor {
	t := m.t(x)
	if t.base.kind == Weight {
		m.used[t.base] = struct{}{}
	}
	return t
}

// opt is arg for an optional operand (nil is allowed).
func (m *Backend) opt(x backend.Tensor) { m.optShape(x) }

// optShape is opt returning the operand's shape, nil for none.
func (m *Backend) optShape(x backend.Tensor) tensor.Shape {
	if x == nil {
		return nil
	}
	return m.arg(x).shape
}

// Declare makes a weight of the given dtype and shape (nn.Declarer).
func (m *Backend) Declare(dt tensor.DType, shape tensor.Shape) backend.Tensor {
	return m.alloc(shape, dt, Weight)
}

// Upload records an F32 activation of h's shape.
func (m *Backend) Upload(h *tensor.Host) backend.Tensor { return m.act(h.Shape...) }

// UploadRaw records a weight of r's dtype and shape.
func (m *Backend) UploadRaw(r *tensor.Raw) backend.Tensor { return m.alloc(r.Shape, r.DType, Weight) }

// ReadBack returns zeros of t's shape: the meter holds no values.
func (m *Backend) ReadBack(t backend.Tensor) (*tensor.Host, error) {
	return tensor.New(m.t(t).shape...), nil
}

// Free releases the handle t; the bytes are released with the last handle
// to them.
func (m *Backend) Free(x backend.Tensor) {
	t := m.t(x)
	t.freed = true
	t.base.handles--
	if t.base.handles == 0 {
		m.live[t.base.kind] -= t.base.bytes
		m.total -= t.base.bytes
	}
}

// Err is always nil.
func (m *Backend) Err() error { return nil }

// Memory reports live and peak bytes over all kinds.
func (m *Backend) Memory() backend.MemStats { return backend.MemStats{Live: m.total, Peak: m.peakT} }

var _ backend.Backend = (*Backend)(nil)
