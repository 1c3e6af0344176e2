package meter

import (
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

func TestLinearMACs(t *testing.T) {
	m := New()
	s := nn.NewDeclaredScope(m, tensor.F16)
	lin := nn.NewLinear(s, "proj", 7, 3, true)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	x := m.Upload(tensor.New(2, 5, 7))
	y := lin.Forward(m, x)
	// Each of the 2·5 rows takes 3 dot products of length 7.
	if got, want := m.MACs(OpMatMul), int64(2*5*3*7); got != want {
		t.Errorf("linear MACs %d, want %d", got, want)
	}
	if !y.Shape().Equal(tensor.Shape{2, 5, 3}) {
		t.Errorf("linear output %v, want [2 5 3]", y.Shape())
	}
	if m.TotalMACs() != 210 {
		t.Errorf("total MACs %d, want 210", m.TotalMACs())
	}
}

func TestConvMACs(t *testing.T) {
	m := New()
	s := nn.NewDeclaredScope(m, tensor.F32)
	// 3→4 channels, 3×3 kernel, stride 2, padding 1 on 9×9: the output is
	// (9+2−3)/2+1 = 5 per side; every output element is a dot product of
	// 3·3·3 = 27 inputs.
	conv := nn.NewConv2d(s, "conv", 3, 4, 3, 2, 1, true)
	x := m.Upload(tensor.New(2, 3, 9, 9))
	y := conv.Forward(m, x)
	if !y.Shape().Equal(tensor.Shape{2, 4, 5, 5}) {
		t.Fatalf("conv output %v, want [2 4 5 5]", y.Shape())
	}
	if got, want := m.MACs(OpConv), int64(2*4*5*5*27); got != want {
		t.Errorf("conv MACs %d, want %d", got, want)
	}
	// A 1×1 convolution without padding on 4×4: 2·4·16 outputs of 3 inputs.
	m.ResetMACs()
	w := m.Declare(tensor.F32, tensor.Shape{4, 3, 1, 1})
	m.Conv2D(m.Upload(tensor.New(2, 3, 4, 4)), w, nil, backend.Conv2DOpts{})
	if got := m.MACsByOp(); len(got) != 1 || got[OpConv] != 2*4*16*3 {
		t.Errorf("1×1 conv MACs %v, want conv2d: %d only", got, 2*4*16*3)
	}
}

func TestAttentionMACs(t *testing.T) {
	m := New()
	// Two heads of size 4 (q, k) and 6 (v): per batch and head, q·kᵀ is
	// 6·4 dot products of length 4 and p·v is 6·6 outputs summing 4 terms.
	q := m.Upload(tensor.New(2, 6, 8))
	k := m.Upload(tensor.New(2, 4, 8))
	v := m.Upload(tensor.New(2, 4, 12))
	o := m.Attention(q, k, v, nil, backend.AttentionOpts{Heads: 2})
	perHead := int64(6*4*4 + 6*6*4)
	if got, want := m.MACs(OpAttention), 2*2*perHead; got != want {
		t.Errorf("attention MACs %d, want %d", got, want)
	}
	if !o.Shape().Equal(tensor.Shape{2, 6, 12}) {
		t.Errorf("attention output %v, want [2 6 12]", o.Shape())
	}
	if m.MACs(OpMatMul) != 0 || m.MACs(OpConv) != 0 {
		t.Errorf("attention counted under matmul or conv: %v", m.MACsByOp())
	}
}

func TestBatchedMatMulBroadcast(t *testing.T) {
	m := New()
	a := m.Upload(tensor.New(3, 2, 4, 5)) // [..., M=4, K=5]
	b := m.Upload(tensor.New(5, 6))       // [K, N], broadcast over the batch
	y := m.MatMul(a, b, nil, backend.MatMulOpts{})
	if !y.Shape().Equal(tensor.Shape{3, 2, 4, 6}) {
		t.Fatalf("output %v, want [3 2 4 6]", y.Shape())
	}
	if got, want := m.MACs(OpMatMul), int64(3*2*4*6*5); got != want {
		t.Errorf("MACs %d, want %d", got, want)
	}
	// TransA: a stored [K, M].
	m.ResetMACs()
	at := m.Upload(tensor.New(5, 4))
	y2 := m.MatMul(at, b, nil, backend.MatMulOpts{TransA: true})
	if !y2.Shape().Equal(tensor.Shape{4, 6}) || m.MACs(OpMatMul) != 4*6*5 {
		t.Errorf("TransA: %v with %d MACs, want [4 6] with 120", y2.Shape(), m.MACs(OpMatMul))
	}
}

func TestMemoryLifetimes(t *testing.T) {
	m := New()
	w := m.Declare(tensor.F16, tensor.Shape{10, 10}) // 200 bytes
	x := m.Upload(tensor.New(4, 4))                  // 64 bytes F32
	if m.Live(Weight) != 200 || m.Live(Activation) != 64 {
		t.Fatalf("live weights %d, activations %d; want 200, 64", m.Live(Weight), m.Live(Activation))
	}
	// A view shares the storage: freeing the original keeps the bytes
	// until the view goes too.
	v := m.Reshape(x, 16)
	if m.Live(Activation) != 64 {
		t.Errorf("a view added bytes: %d", m.Live(Activation))
	}
	m.Free(x)
	if m.Live(Activation) != 64 {
		t.Errorf("storage released while a view is live: %d", m.Live(Activation))
	}
	y := m.Affine(v, 2, 0) // another 64
	if m.Memory().Peak != 200+128 || m.PeakOf(Activation) != 128 {
		t.Errorf("peak %d (activations %d), want 328 (128)", m.Memory().Peak, m.PeakOf(Activation))
	}
	m.Free(v)
	if m.Live(Activation) != 64 {
		t.Errorf("after freeing the view: %d live, want 64", m.Live(Activation))
	}
	// A kept result becomes a cache.
	m.Retag(y, Cache)
	if m.Live(Activation) != 0 || m.Live(Cache) != 64 || m.PeakOf(Cache) != 64 {
		t.Errorf("after Retag: activations %d, caches %d (peak %d); want 0, 64, 64", m.Live(Activation), m.Live(Cache), m.PeakOf(Cache))
	}
	m.Free(y)
	if m.Live(Cache) != 0 {
		t.Errorf("freed cache still live: %d", m.Live(Cache))
	}
	m.ResetPeak()
	if m.Memory().Peak != 200 || m.PeakOf(Activation) != 0 {
		t.Errorf("after ResetPeak: peak %d, activation peak %d; want 200, 0", m.Memory().Peak, m.PeakOf(Activation))
	}
	if m.Largest(Weight) != 200 || m.Largest(Activation) != 64 || m.Largest(Cache) != 64 {
		t.Errorf("largest storage: weights %d, activations %d, caches %d; want 200, 64, 64",
			m.Largest(Weight), m.Largest(Activation), m.Largest(Cache))
	}
	m.Free(w)
	if m.Memory().Live != 0 {
		t.Errorf("everything freed but %d bytes live", m.Memory().Live)
	}
}

func TestUsedWeights(t *testing.T) {
	m := New()
	s := nn.NewDeclaredScope(m, tensor.F16)
	a := nn.NewLinear(s, "a", 4, 3, true)  // 12 + 3 elements
	b := nn.NewLinear(s, "b", 3, 2, false) // 6 elements, never run
	gn := nn.NewGroupNorm(s, "norm", 1, 3, 1e-5)
	x := m.Upload(tensor.New(5, 4))
	h := a.Forward(m, x)
	h4 := m.Reshape(h, 1, 3, 5)
	gn.Forward(m, h4, false) // gamma and beta: 3 + 3
	elems, bytes := m.UsedWeights()
	if elems != 12+3+3+3 || bytes != 2*elems {
		t.Errorf("used %d elements (%d bytes), want 21 (42)", elems, bytes)
	}
	m.ResetUsed()
	b.Forward(m, m.Upload(tensor.New(1, 3)))
	if elems, _ := m.UsedWeights(); elems != 6 {
		t.Errorf("after ResetUsed: %d used, want 6", elems)
	}
	// A view of a weight read twice counts once.
	m.ResetUsed()
	wv := m.Reshape(a.W, 3, 4)
	m.MatMul(x, wv, nil, backend.MatMulOpts{TransB: true})
	m.MatMul(x, a.W, nil, backend.MatMulOpts{TransB: true})
	if elems, _ := m.UsedWeights(); elems != 12 {
		t.Errorf("a weight and its view: %d used, want 12", elems)
	}
}

func TestMisuse(t *testing.T) {
	m := New()
	x := m.Upload(tensor.New(2, 3))
	m.Free(x)
	expectPanic(t, "freed", func() { m.Affine(x, 1, 0) })
	w := m.Declare(tensor.F32, tensor.Shape{4, 2, 3, 3})
	expectPanic(t, "Conv2D", func() { m.Conv2D(m.Upload(tensor.New(1, 3, 5, 5)), w, nil, backend.Conv2DOpts{}) })
	expectPanic(t, "MatMul", func() {
		m.MatMul(m.Upload(tensor.New(2, 3)), m.Upload(tensor.New(4, 5)), nil, backend.MatMulOpts{})
	})
}

func expectPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Errorf("no panic; want one mentioning %q", want)
			return
		}
		if msg, _ := r.(string); !strings.Contains(msg, want) {
			t.Errorf("panic %v; want one mentioning %q", r, want)
		}
	}()
	f()
}
