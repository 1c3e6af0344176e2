package meter

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
)

func (m *Backend) count(op Op, n int64) { m.macs[op] += n }

func axis(a, rank int) int {
	if a < 0 {
		a += rank
	}
	return a
}

// Reshape returns a view sharing t's bytes.
func (m *Backend) Reshape(x backend.Tensor, shape ...int) backend.Tensor {
	t := m.t(x)
	s, err := backend.ReshapeShape(t.shape, shape)
	if err != nil {
		panic("meter: " + err.Error())
	}
	t.base.handles++
	return &Tensor{shape: s, dtype: t.dtype, base: t.base}
}

// Permute records a copy with permuted dimensions.
func (m *Backend) Permute(x backend.Tensor, perm ...int) backend.Tensor {
	t := m.arg(x)
	s := make([]int, len(perm))
	for i, p := range perm {
		s[i] = t.shape[p]
	}
	return m.act(s...)
}

// MatMul counts batch·M·N·K MACs.
func (m *Backend) MatMul(a, b, bias backend.Tensor, opt backend.MatMulOpts) backend.Tensor {
	g, err := backend.MatMulShape(m.arg(a).shape, m.arg(b).shape, m.optShape(bias), opt)
	if err != nil {
		panic("meter: " + err.Error())
	}
	m.count(OpMatMul, int64(g.Batch.Numel())*int64(g.M)*int64(g.N)*int64(g.K))
	return m.act(g.Out...)
}

// Conv2D counts out elements × Cin·kh·kw MACs.
func (m *Backend) Conv2D(x, w, bias backend.Tensor, opt backend.Conv2DOpts) backend.Tensor {
	g, err := backend.Conv2DShape(m.arg(x).shape, m.arg(w).shape, m.optShape(bias), opt)
	if err != nil {
		panic("meter: " + err.Error())
	}
	out := g.Out()
	m.count(OpConv, int64(out.Numel())*int64(g.Cin)*int64(g.KH)*int64(g.KW))
	return m.act(out...)
}

// Attention counts the two products q·kᵀ and p·v.
func (m *Backend) Attention(q, k, v, bias backend.Tensor, opt backend.AttentionOpts) backend.Tensor {
	g, err := backend.AttentionShape(m.arg(q).shape, m.arg(k).shape, m.arg(v).shape, m.optShape(bias), opt.Heads)
	if err != nil {
		panic("meter: " + err.Error())
	}
	m.count(OpAttention, int64(g.B)*int64(g.Heads)*int64(g.Nq)*int64(g.Nk)*int64(g.D+g.Dv))
	return m.act(g.Out()...)
}

func (m *Backend) same(x backend.Tensor) backend.Tensor { return m.act(m.arg(x).shape...) }

// GroupNorm records an output of x's shape.
func (m *Backend) GroupNorm(x, gamma, beta backend.Tensor, groups int, eps float32, silu bool) backend.Tensor {
	m.opt(gamma)
	m.opt(beta)
	return m.same(x)
}

// LayerNorm records an output of x's shape.
func (m *Backend) LayerNorm(x, gamma, beta backend.Tensor, eps float32) backend.Tensor {
	m.opt(gamma)
	m.opt(beta)
	return m.same(x)
}

// RMSNorm records an output of x's shape.
func (m *Backend) RMSNorm(x, gamma backend.Tensor, eps float32) backend.Tensor {
	m.opt(gamma)
	return m.same(x)
}

// Softmax records an output of x's shape.
func (m *Backend) Softmax(x backend.Tensor) backend.Tensor { return m.same(x) }

// Unary records an output of x's shape.
func (m *Backend) Unary(op backend.UnaryOp, x backend.Tensor) backend.Tensor { return m.same(x) }

// Affine records an output of x's shape.
func (m *Backend) Affine(x backend.Tensor, scale, shift float32) backend.Tensor { return m.same(x) }

// Clamp records an output of x's shape.
func (m *Backend) Clamp(x backend.Tensor, lo, hi float32) backend.Tensor { return m.same(x) }

// Binary records an output of the broadcast shape.
func (m *Backend) Binary(op backend.BinaryOp, a, b backend.Tensor) backend.Tensor {
	s, err := backend.BroadcastShape(m.arg(a).shape, m.arg(b).shape)
	if err != nil {
		panic(fmt.Sprintf("meter: Binary %v: %v", op, err))
	}
	return m.act(s...)
}

// Concat records the joined shape.
func (m *Backend) Concat(ax int, ts ...backend.Tensor) backend.Tensor {
	s := m.arg(ts[0]).shape.Clone()
	ax = axis(ax, len(s))
	for _, x := range ts[1:] {
		s[ax] += m.arg(x).shape[ax]
	}
	return m.act(s...)
}

// Slice records the sliced shape.
func (m *Backend) Slice(x backend.Tensor, ax, start, end int) backend.Tensor {
	s := m.arg(x).shape.Clone()
	s[axis(ax, len(s))] = end - start
	return m.act(s...)
}

// ResizeNearest records [B, C, outH, outW].
func (m *Backend) ResizeNearest(x backend.Tensor, outH, outW int) backend.Tensor {
	s := m.arg(x).shape
	return m.act(s[0], s[1], outH, outW)
}

// Gather records [len(ids), D].
func (m *Backend) Gather(table backend.Tensor, ids []int32) backend.Tensor {
	return m.act(len(ids), m.arg(table).shape[1])
}

// LinComb records an output of the operands' shape.
func (m *Backend) LinComb(coeffs []float32, ts ...backend.Tensor) backend.Tensor {
	for _, x := range ts[1:] {
		m.arg(x)
	}
	return m.same(ts[0])
}
