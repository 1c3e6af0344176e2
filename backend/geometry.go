package backend

import (
	"fmt"

	"github.com/tgate-web/tgate/tensor"
)

// The functions here check an op's operand shapes against the rules in the
// Backend interface and derive the sizes a backend needs, so that every
// backend validates the same way and reports the same message. A backend
// panics with its name prefixed to the error ("cpu: MatMul: ...").

// MatMulGeometry is the shape of a MatMul.
type MatMulGeometry struct {
	Batch   tensor.Shape // a's leading dimensions: the result's batch
	BBatch  tensor.Shape // b's leading dimensions (possibly fewer, or 1s)
	M, N, K int
	Out     tensor.Shape // Batch followed by M, N
}

// MatMulShape checks a MatMul of a and b (bias may be nil) and derives its
// geometry: b's batch dimensions are aligned at the right with a's and
// each must equal a's or be 1.
func MatMulShape(a, b, bias tensor.Shape, opt MatMulOpts) (MatMulGeometry, error) {
	fail := func(why string) (MatMulGeometry, error) {
		s := fmt.Sprintf("MatMul: %s: a %v, b %v (TransA %v, TransB %v)", why, a, b, opt.TransA, opt.TransB)
		if bias != nil {
			s += fmt.Sprintf(", bias %v", bias)
		}
		return MatMulGeometry{}, fmt.Errorf("%s", s)
	}
	ra, rb := len(a), len(b)
	if ra < 2 || rb < 2 {
		return fail("operands need at least 2 dimensions")
	}
	g := MatMulGeometry{M: a[ra-2], K: a[ra-1], Batch: a[:ra-2].Clone(), BBatch: b[:rb-2].Clone()}
	if opt.TransA {
		g.M, g.K = g.K, g.M
	}
	kb, n := b[rb-2], b[rb-1]
	if opt.TransB {
		kb, n = n, kb
	}
	g.N = n
	if g.K != kb {
		return fail("inner dimensions differ")
	}
	if len(g.BBatch) > len(g.Batch) {
		return fail("b has more batch dimensions than a")
	}
	off := len(g.Batch) - len(g.BBatch)
	for i, d := range g.BBatch {
		if d != g.Batch[off+i] && d != 1 {
			return fail("batch dimensions do not broadcast")
		}
	}
	if bias != nil && bias.Numel() != g.N {
		return fail("bias size is not N")
	}
	g.Out = append(g.Batch.Clone(), g.M, g.N)
	return g, nil
}

// ConvGeometry is the shape of a Conv2D.
type ConvGeometry struct {
	B, Cin, H, W    int
	Cout, KH, KW    int
	Stride, Padding int
	OutH, OutW      int
}

// Out returns the result's shape [B, Cout, OutH, OutW].
func (g ConvGeometry) Out() tensor.Shape { return tensor.Shape{g.B, g.Cout, g.OutH, g.OutW} }

// Conv2DShape checks a Conv2D of x [B, Cin, H, W] with w [Cout, Cin, kh,
// kw] (bias [Cout] or nil) and derives its geometry.
func Conv2DShape(x, w, bias tensor.Shape, opt Conv2DOpts) (ConvGeometry, error) {
	stride := opt.Stride
	if stride == 0 {
		stride = 1
	}
	fail := func(why string) (ConvGeometry, error) {
		s := fmt.Sprintf("Conv2D: %s: x %v, w %v (stride %d, padding %d)", why, x, w, stride, opt.Padding)
		if bias != nil {
			s += fmt.Sprintf(", bias %v", bias)
		}
		return ConvGeometry{}, fmt.Errorf("%s", s)
	}
	if len(x) != 4 || len(w) != 4 {
		return fail("x and w must be 4-D")
	}
	if stride < 0 || opt.Padding < 0 {
		return fail("negative stride or padding")
	}
	g := ConvGeometry{B: x[0], Cin: x[1], H: x[2], W: x[3], Cout: w[0], KH: w[2], KW: w[3], Stride: stride, Padding: opt.Padding}
	if w[1] != g.Cin {
		return fail("input channels differ")
	}
	if bias != nil && bias.Numel() != g.Cout {
		return fail("bias size is not Cout")
	}
	if g.H+2*g.Padding < g.KH || g.W+2*g.Padding < g.KW || g.KH < 1 || g.KW < 1 {
		return fail("kernel larger than the padded input")
	}
	g.OutH = (g.H+2*g.Padding-g.KH)/stride + 1
	g.OutW = (g.W+2*g.Padding-g.KW)/stride + 1
	return g, nil
}

// AttentionGeometry is the shape of an Attention.
type AttentionGeometry struct {
	B, Nq, Nk, Heads, D, Dv int
	// BiasBatchStride and BiasHeadStride are the bias's element strides
	// for a batch and a head step: 0 where the bias broadcasts.
	BiasBatchStride, BiasHeadStride int
}

// Out returns the result's shape [B, Nq, Heads·Dv].
func (g AttentionGeometry) Out() tensor.Shape { return tensor.Shape{g.B, g.Nq, g.Heads * g.Dv} }

// AttentionShape checks an Attention's q, k, v and bias (nil for none)
// against Backend.Attention's rules and derives its geometry.
func AttentionShape(q, k, v, bias tensor.Shape, heads int) (AttentionGeometry, error) {
	fail := func(why string) (AttentionGeometry, error) {
		s := fmt.Sprintf("Attention: %s: q %v, k %v, v %v, heads %d", why, q, k, v, heads)
		if bias != nil {
			s += fmt.Sprintf(", bias %v", bias)
		}
		return AttentionGeometry{}, fmt.Errorf("%s", s)
	}
	if len(q) != 3 || len(k) != 3 || len(v) != 3 {
		return fail("q, k and v must be 3-D")
	}
	if heads <= 0 {
		return fail("heads must be positive")
	}
	g := AttentionGeometry{B: q[0], Nq: q[1], Nk: k[1], Heads: heads}
	if k[0] != g.B || v[0] != g.B || v[1] != g.Nk {
		return fail("batch or key counts differ")
	}
	if q[2]%heads != 0 || k[2] != q[2] || v[2]%heads != 0 {
		return fail("channels do not split into heads")
	}
	g.D, g.Dv = q[2]/heads, v[2]/heads
	if bias != nil {
		if len(bias) != 4 || bias[2] != g.Nq || bias[3] != g.Nk || (bias[0] != 1 && bias[0] != g.B) || (bias[1] != 1 && bias[1] != heads) {
			return fail(fmt.Sprintf("bias must be [1|%d, 1|%d, %d, %d]", g.B, heads, g.Nq, g.Nk))
		}
		if bias[1] != 1 {
			g.BiasHeadStride = g.Nq * g.Nk
		}
		if bias[0] != 1 {
			g.BiasBatchStride = bias[1] * g.Nq * g.Nk
		}
	}
	return g, nil
}

// BroadcastShape returns the NumPy broadcast of shapes a and b: aligned at
// the last dimension, a dimension of 1 stretching to the other's size.
func BroadcastShape(a, b tensor.Shape) (tensor.Shape, error) {
	r := max(len(a), len(b))
	out := make(tensor.Shape, r)
	for i := 1; i <= r; i++ {
		da, db := 1, 1
		if i <= len(a) {
			da = a[len(a)-i]
		}
		if i <= len(b) {
			db = b[len(b)-i]
		}
		switch {
		case da == db, db == 1:
			out[r-i] = da
		case da == 1:
			out[r-i] = db
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// ReshapeShape resolves a Reshape of a tensor of shape from to the
// dimensions to, one of which may be -1 (inferred).
func ReshapeShape(from tensor.Shape, to []int) (tensor.Shape, error) {
	s := tensor.Shape(to).Clone()
	infer, known := -1, 1
	for i, d := range s {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			return nil, fmt.Errorf("Reshape %v to %v: bad dimension %d", from, s, d)
		default:
			known *= d
		}
	}
	n := from.Numel()
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("Reshape %v to %v: cannot infer the -1 dimension", from, s)
		}
		s[infer] = n / known
	} else if known != n {
		return nil, fmt.Errorf("Reshape %v to %v: element counts differ", from, s)
	}
	return s, nil
}
