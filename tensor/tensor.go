// Package tensor holds the host-side tensor types shared by every package:
// element types, shapes, and row-major tensors in host memory, plus exact
// conversions between float32 and the 16-bit float formats checkpoints use.
package tensor

import (
	"fmt"
	"strings"
)

// DType is an element type of a tensor.
type DType int

const (
	F32  DType = iota // IEEE binary32
	F16               // IEEE binary16
	BF16              // bfloat16: the top 16 bits of a binary32
	I64               // little-endian int64 (token ids, timesteps); read only
	I32               // little-endian int32
	// I8 is a signed byte: the on-device encoding of weights quantised to
	// 8 bits (backend.Quantizer), never read from a checkpoint.
	I8
)

// Size returns the number of bytes one element occupies.
func (d DType) Size() int {
	switch d {
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case I64:
		return 8
	case I8:
		return 1
	}
	panic(fmt.Sprintf("tensor: unknown dtype %d", int(d)))
}

// String returns the safetensors spelling of the dtype ("F32", "BF16", ...).
func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case BF16:
		return "BF16"
	case I64:
		return "I64"
	case I32:
		return "I32"
	case I8:
		return "I8"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// IsFloat reports whether d is one of the floating-point types.
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 }

// ParseDType maps a safetensors dtype string to a DType.
func ParseDType(s string) (DType, error) {
	switch s {
	case "F32":
		return F32, nil
	case "F16":
		return F16, nil
	case "BF16":
		return BF16, nil
	case "I64":
		return I64, nil
	case "I32":
		return I32, nil
	}
	return 0, fmt.Errorf("unsupported dtype %q (supported: F32, F16, BF16, I64, I32)", s)
}

// Shape is the list of dimension sizes of a row-major tensor. The empty
// shape is a scalar.
type Shape []int

// Numel returns the number of elements (1 for a scalar).
func (s Shape) Numel() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// Rank returns the number of dimensions.
func (s Shape) Rank() int { return len(s) }

// Equal reports whether s and o have the same dimensions.
func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

// Clone returns a copy of s that does not share memory with it.
func (s Shape) Clone() Shape { return append(Shape(nil), s...) }

// Dim returns dimension i; a negative i counts from the end.
func (s Shape) Dim(i int) int {
	if i < 0 {
		i += len(s)
	}
	return s[i]
}

// String formats the shape as [d0,d1,...].
func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Host is a float32 tensor in host memory, row-major.
type Host struct {
	Shape Shape
	Data  []float32
}

// New returns a zero-filled host tensor of the given shape.
func New(shape ...int) *Host {
	s := Shape(shape)
	return &Host{Shape: s.Clone(), Data: make([]float32, s.Numel())}
}

// FromData wraps data as a host tensor of the given shape. It panics if the
// element count disagrees with the shape.
func FromData(data []float32, shape ...int) *Host {
	s := Shape(shape)
	if s.Numel() != len(data) {
		panic(fmt.Sprintf("tensor: %d values for shape %v", len(data), s))
	}
	return &Host{Shape: s.Clone(), Data: data}
}

// Raw is a tensor in host memory kept in its stored encoding: the bytes of a
// checkpoint tensor, little-endian, row-major. Backends upload Raw tensors
// without widening them, so F16 and BF16 weights stay 2 bytes per element.
type Raw struct {
	DType DType
	Shape Shape
	Bytes []byte
}

// Float32 decodes r into a float32 host tensor. Integer dtypes are
// converted by value.
func (r *Raw) Float32() (*Host, error) {
	n := r.Shape.Numel()
	if len(r.Bytes) != n*r.DType.Size() {
		return nil, fmt.Errorf("tensor: %d bytes for %v %v (want %d)", len(r.Bytes), r.DType, r.Shape, n*r.DType.Size())
	}
	out := New(r.Shape...)
	DecodeFloat32(out.Data, r.Bytes, r.DType)
	return out, nil
}
