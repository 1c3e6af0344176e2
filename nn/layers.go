package nn

import (
	"github.com/tgate-web/tgate/backend"
)

// Free releases every non-nil tensor in ts.
func Free(b backend.Backend, ts ...backend.Tensor) {
	for _, t := range ts {
		if t != nil {
			b.Free(t)
		}
	}
}

// Linear is torch.nn.Linear: y = x·Wᵀ + b with W stored [out, in].
type Linear struct {
	W, B    backend.Tensor // B may be nil
	In, Out int
}

// NewLinear binds name.weight [out, in] and, if bias, name.bias [out].
func NewLinear(s *Scope, name string, in, out int, bias bool) *Linear {
	sub := s.Sub(name)
	l := &Linear{In: in, Out: out, W: sub.TensorFlat("weight", out, in)}
	if bias {
		l.B = sub.Tensor("bias", out)
	}
	return l
}

// Forward applies the layer to x [..., in], giving [..., out].
func (l *Linear) Forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	return b.MatMul(x, l.W, l.B, backend.MatMulOpts{TransB: true})
}

// Release frees the layer's weights.
func (l *Linear) Release(b backend.Backend) { Free(b, l.W, l.B); l.W, l.B = nil, nil }

// Conv2d is torch.nn.Conv2d with square kernels and symmetric zero padding.
type Conv2d struct {
	W, B            backend.Tensor // W [out, in, k, k]; B [out] or nil
	In, Out, Kernel int
	Stride, Padding int
}

// NewConv2d binds name.weight [out, in, k, k] and, if bias, name.bias.
func NewConv2d(s *Scope, name string, in, out, kernel, stride, padding int, bias bool) *Conv2d {
	sub := s.Sub(name)
	c := &Conv2d{In: in, Out: out, Kernel: kernel, Stride: stride, Padding: padding,
		W: sub.Tensor("weight", out, in, kernel, kernel)}
	if bias {
		c.B = sub.Tensor("bias", out)
	}
	return c
}

// Forward convolves x [B, in, H, W].
func (c *Conv2d) Forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	return b.Conv2D(x, c.W, c.B, backend.Conv2DOpts{Stride: c.Stride, Padding: c.Padding})
}

// GroupNorm is torch.nn.GroupNorm with an affine scale and shift (§2 of
// the spec).
type GroupNorm struct {
	Gamma, Beta backend.Tensor
	Groups      int
	Eps         float32
}

// NewGroupNorm binds name.weight and name.bias, both [channels].
func NewGroupNorm(s *Scope, name string, groups, channels int, eps float32) *GroupNorm {
	sub := s.Sub(name)
	return &GroupNorm{Groups: groups, Eps: eps,
		Gamma: sub.Tensor("weight", channels), Beta: sub.Tensor("bias", channels)}
}

// Forward normalises x [B, C, ...]; with silu it also applies SiLU, which
// the GPU backend fuses into the same kernel.
func (g *GroupNorm) Forward(b backend.Backend, x backend.Tensor, silu bool) backend.Tensor {
	return b.GroupNorm(x, g.Gamma, g.Beta, g.Groups, g.Eps, silu)
}

// LayerNorm is torch.nn.LayerNorm over the last dimension.
type LayerNorm struct {
	Gamma, Beta backend.Tensor // nil without elementwise_affine
	Eps         float32
}

// NewLayerNorm binds name.weight and name.bias [dim].
func NewLayerNorm(s *Scope, name string, dim int, eps float32) *LayerNorm {
	sub := s.Sub(name)
	return &LayerNorm{Eps: eps, Gamma: sub.Tensor("weight", dim), Beta: sub.Tensor("bias", dim)}
}

// Forward normalises x over its last dimension.
func (l *LayerNorm) Forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	return b.LayerNorm(x, l.Gamma, l.Beta, l.Eps)
}

// Embedding is torch.nn.Embedding: rows of a [num, dim] table.
type Embedding struct {
	Table    backend.Tensor
	Num, Dim int
}

// NewEmbedding binds name.weight [num, dim].
func NewEmbedding(s *Scope, name string, num, dim int) *Embedding {
	return &Embedding{Num: num, Dim: dim, Table: s.Sub(name).Tensor("weight", num, dim)}
}

// Forward returns the rows for ids: [len(ids), dim].
func (e *Embedding) Forward(b backend.Backend, ids []int32) backend.Tensor {
	return b.Gather(e.Table, ids)
}
