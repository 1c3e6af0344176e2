package meter

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
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
	s := tensor.Shape(shape).Clone()
	infer, known := -1, 1
	for i, d := range s {
		if d == -1 {
			infer = i
		} else {
			known *= d
		}
	}
	if infer >= 0 && known > 0 {
		s[infer] = t.shape.Numel() / known
	}
	if s.Numel() != t.shape.Numel() {
		panic(fmt.Sprintf("meter: Reshape %v to %v", t.shape, tensor.Shape(shape)))
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
	as, bs := m.arg(a).shape, m.arg(b).shape
	m.opt(bias)
	M, K := as.Dim(-2), as.Dim(-1)
	if opt.TransA {
		M, K = K, M
	}
	N, KB := bs.Dim(-1), bs.Dim(-2)
	if opt.TransB {
		N, KB = KB, N
	}
	if K != KB {
		panic(fmt.Sprintf("meter: MatMul %v × %v (transA %v, transB %v)", as, bs, opt.TransA, opt.TransB))
	}
	batch := as[:len(as)-2]
	if len(bs) > len(as) {
		batch = bs[:len(bs)-2]
	}
	out := append(tensor.Shape{}, batch...)
	out = append(out, M, N)
	m.count(OpMatMul, int64(batch.Numel())*int64(M)*int64(N)*int64(K))
	return m.act(out...)
}

// Conv2D counts out elements × Cin·kh·kw MACs.
func (m *Backend) Conv2D(x, w, bias backend.Tensor, opt backend.Conv2DOpts) backend.Tensor {
	xs, ws := m.arg(x).shape, m.arg(w).shape
	m.opt(bias)
	if len(xs) != 4 || len(ws) != 4 || xs[1] != ws[1] {
		panic(fmt.Sprintf("meter: Conv2D %v with filter %v", xs, ws))
	}
	s := opt.Stride
	if s == 0 {
		s = 1
	}
	oh := (xs[2]+2*opt.Padding-ws[2])/s + 1
	ow := (xs[3]+2*opt.Padding-ws[3])/s + 1
	m.count(OpConv, int64(xs[0])*int64(ws[0])*int64(oh)*int64(ow)*int64(ws[1])*int64(ws[2])*int64(ws[3]))
	return m.act(xs[0], ws[0], oh, ow)
}

// Attention counts the two products q·kᵀ and p·v.
func (m *Backend) Attention(q, k, v, bias backend.Tensor, opt backend.AttentionOpts) backend.Tensor {
	qs, ks, vs := m.arg(q).shape, m.arg(k).shape, m.arg(v).shape
	m.opt(bias)
	B, Nq, Nk := qs[0], qs[1], ks[1]
	m.count(OpAttention, int64(B)*int64(Nq)*int64(Nk)*int64(qs[2]+vs[2]))
	return m.act(B, Nq, vs[2])
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
	as, bs := m.arg(a).shape, m.arg(b).shape
	n := max(len(as), len(bs))
	out := make([]int, n)
	for i := 1; i <= n; i++ {
		da, db := 1, 1
		if i <= len(as) {
			da = as[len(as)-i]
		}
		if i <= len(bs) {
			db = bs[len(bs)-i]
		}
		switch {
		case da == db, db == 1:
			out[n-i] = da
		case da == 1:
			out[n-i] = db
		default:
			panic(fmt.Sprintf("meter: Binary %v with %v", as, bs))
		}
	}
	return m.act(out...)
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
