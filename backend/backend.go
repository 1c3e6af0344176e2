// Package backend defines the interface every compute backend implements:
// opaque tensor handles living on a device and the primitive operations the
// Stable Diffusion family and the PixArt transformer are built from.
//
// Conventions (see ../shared/spec/SD_SEMANTICS.md §0 and §2):
//   - Tensors are row-major; images are NCHW.
//   - Activations are F32. Weight arguments (a MatMul's right operand, a
//     convolution's filter, norm scales and shifts, biases, Gather's table)
//     may be F32, F16 or BF16 and are read in that encoding.
//   - Shape errors in an op are programming errors and panic with a message
//     naming the op and the shapes. Errors from the device (a lost GPU, a
//     failed allocation) are sticky: the first one is kept and returned by
//     Err and by every later ReadBack.
//   - Ops may run asynchronously; ReadBack waits for the work recorded so far.
package backend

import "github.com/tgate-web/tgate/tensor"

// Tensor is a handle to a tensor owned by a backend.
type Tensor interface {
	Shape() tensor.Shape
	DType() tensor.DType
}

// UnaryOp names an elementwise function of one argument.
type UnaryOp int

const (
	SiLU      UnaryOp = iota // x·σ(x)
	GELU                     // 0.5·x·(1+erf(x/√2))
	GELUTanh                 // 0.5·x·(1+tanh(√(2/π)·(x+0.044715·x³)))
	QuickGELU                // x·σ(1.702·x)
	ReLU                     // max(x, 0)
	Tanh                     // tanh(x)
	Sigmoid                  // 1/(1+e^−x)
	Exp                      // e^x
	Neg                      // −x
	Sqrt                     // √x
	Square                   // x²
)

var unaryNames = [...]string{"silu", "gelu", "gelu_tanh", "quick_gelu", "relu", "tanh", "sigmoid", "exp", "neg", "sqrt", "square"}

func (op UnaryOp) String() string {
	if int(op) < len(unaryNames) {
		return unaryNames[op]
	}
	return "unary?"
}

// UnaryOps lists every UnaryOp, for tests that cover them all.
func UnaryOps() []UnaryOp {
	ops := make([]UnaryOp, len(unaryNames))
	for i := range ops {
		ops[i] = UnaryOp(i)
	}
	return ops
}

// BinaryOp names an elementwise function of two arguments.
type BinaryOp int

const (
	Add BinaryOp = iota
	Sub
	Mul
	Div
	Max
	Min
)

var binaryNames = [...]string{"add", "sub", "mul", "div", "max", "min"}

func (op BinaryOp) String() string {
	if int(op) < len(binaryNames) {
		return binaryNames[op]
	}
	return "binary?"
}

// BinaryOps lists every BinaryOp.
func BinaryOps() []BinaryOp {
	ops := make([]BinaryOp, len(binaryNames))
	for i := range ops {
		ops[i] = BinaryOp(i)
	}
	return ops
}

// MatMulOpts modifies a MatMul.
type MatMulOpts struct {
	TransA bool // a is stored [..., K, M]
	TransB bool // b is stored [..., N, K] (a Linear weight [out, in])
}

// Conv2DOpts are a 2-D convolution's stride and zero padding (the same on
// every side).
type Conv2DOpts struct {
	Stride  int // 0 means 1
	Padding int
}

// AttentionOpts configure multi-head attention.
type AttentionOpts struct {
	Heads int
	// Scale multiplies q·kᵀ before the bias is added; 0 means 1/√headDim
	// (diffusers, CLIP). T5 uses 1.
	Scale float32
}

// Backend is a device that stores tensors and runs operations on them.
//
// Every op returns a new tensor; inputs are never modified. Shapes follow
// the rules in each method's comment.
type Backend interface {
	// Name identifies the backend ("cpu", "webgpu").
	Name() string

	// Upload copies a host tensor to the device as F32.
	Upload(h *tensor.Host) Tensor
	// UploadRaw copies a tensor in its stored encoding (F32, F16 or BF16)
	// to the device without widening it.
	UploadRaw(r *tensor.Raw) Tensor
	// ReadBack waits for pending work and returns t as float32 values.
	ReadBack(t Tensor) (*tensor.Host, error)
	// Free releases the handle t; using t afterwards is an error. A view
	// made by Reshape shares its tensor's storage, which is released when
	// every handle to it (the original and each view) has been freed:
	// storage is reference-counted by handle, so code frees every handle
	// it receives, views included, in any order.
	Free(t Tensor)
	// Err returns the first device error, or nil.
	Err() error
	// Memory reports the live and peak bytes of device memory the backend
	// holds for tensors.
	Memory() MemStats

	// Reshape returns a view of t with a new shape of the same element
	// count, sharing t's storage (see Free). One dimension may be -1 and
	// is inferred.
	Reshape(t Tensor, shape ...int) Tensor
	// Permute returns a tensor whose dimension i is t's dimension perm[i],
	// with the data rearranged (a copy, not a view).
	Permute(t Tensor, perm ...int) Tensor

	// MatMul computes a·b (+ bias). a is [..., M, K] and b is [..., K, N]
	// (each transposed in storage when the option says so). b may have
	// fewer leading (batch) dimensions than a: its batch is broadcast. bias,
	// if not nil, is [N] and is added to every row. Accumulates in at least
	// float32.
	MatMul(a, b, bias Tensor, opt MatMulOpts) Tensor
	// Conv2D convolves x [B, Cin, H, W] with w [Cout, Cin, kh, kw] and adds
	// bias [Cout] if not nil: out [B, Cout, (H+2p−kh)/s+1, (W+2p−kw)/s+1].
	Conv2D(x, w, bias Tensor, opt Conv2DOpts) Tensor
	// GroupNorm normalises x [B, C, ...] over groups of C/groups contiguous
	// channels and all trailing positions with biased variance, then scales
	// by gamma [C] and shifts by beta [C] (either may be nil), and applies
	// SiLU after that if silu is true.
	GroupNorm(x, gamma, beta Tensor, groups int, eps float32, silu bool) Tensor
	// LayerNorm normalises x over its last dimension (biased variance), then
	// scales by gamma and shifts by beta (either may be nil).
	LayerNorm(x, gamma, beta Tensor, eps float32) Tensor
	// RMSNorm computes gamma · x / √(mean(x²) + eps) over the last
	// dimension (T5's LayerNorm); gamma may be nil.
	RMSNorm(x, gamma Tensor, eps float32) Tensor
	// Softmax computes a softmax over the last dimension.
	Softmax(x Tensor) Tensor
	// Attention computes softmax(q·kᵀ·scale + bias)·v per head. q is
	// [B, Nq, H·D], k is [B, Nk, H·D], v is [B, Nk, H·Dv]; head h uses the
	// channels [h·D, (h+1)·D). bias, if not nil, is [Bb, Hb, Nq, Nk] with
	// Bb ∈ {1, B} and Hb ∈ {1, H}, broadcast over the others. The result is
	// [B, Nq, H·Dv].
	Attention(q, k, v, bias Tensor, opt AttentionOpts) Tensor

	// Unary applies op elementwise.
	Unary(op UnaryOp, x Tensor) Tensor
	// Affine computes x·scale + shift elementwise.
	Affine(x Tensor, scale, shift float32) Tensor
	// Clamp limits every element to [lo, hi].
	Clamp(x Tensor, lo, hi float32) Tensor
	// Binary applies op elementwise with NumPy broadcasting: shapes are
	// aligned at the last dimension and a dimension of size 1 stretches.
	Binary(op BinaryOp, a, b Tensor) Tensor

	// Concat joins tensors along axis; other dimensions must agree. A
	// negative axis counts from the end (here and in Slice).
	Concat(axis int, ts ...Tensor) Tensor
	// Slice returns the elements with start ≤ index < end along axis (a copy).
	Slice(t Tensor, axis, start, end int) Tensor
	// ResizeNearest resizes x [B, C, H, W] to [B, C, outH, outW] with the
	// nearest rule src = min(floor(dst·(in/out)), in−1), ratios in float32
	// (PyTorch's "nearest", §2 of the spec).
	ResizeNearest(x Tensor, outH, outW int) Tensor
	// Gather returns rows of table [V, D] selected by ids: [len(ids), D].
	Gather(table Tensor, ids []int32) Tensor
	// LinComb returns Σ coeffs[i]·ts[i] over tensors of one shape (a
	// scheduler update), accumulated in at least float32.
	LinComb(coeffs []float32, ts ...Tensor) Tensor
}

// MemStats are a backend's device-memory counters, in bytes.
type MemStats struct {
	Live int64 // bytes held by tensors that are not freed
	Peak int64 // the largest Live since the backend was made or ResetPeak
}

// PeakResetter is implemented by backends whose peak counter can be reset.
type PeakResetter interface {
	ResetPeak()
}

// Split cuts t along axis into pieces of the given sizes, which must sum to
// the dimension's size.
func Split(b Backend, t Tensor, axis int, sizes ...int) []Tensor {
	out := make([]Tensor, len(sizes))
	start := 0
	for i, n := range sizes {
		out[i] = b.Slice(t, axis, start, start+n)
		start += n
	}
	if start != t.Shape().Dim(axis) {
		panic("backend: Split sizes do not sum to the dimension")
	}
	return out
}

// Chunk cuts t along axis into n equal pieces (torch.chunk for divisible sizes).
func Chunk(b Backend, t Tensor, axis, n int) []Tensor {
	d := t.Shape().Dim(axis)
	if d%n != 0 {
		panic("backend: Chunk of a dimension not divisible by n")
	}
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = d / n
	}
	return Split(b, t, axis, sizes...)
}
