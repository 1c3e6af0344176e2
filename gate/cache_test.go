package gate

import (
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// fakeModule stands in for an attention module: its output at step s for
// batch row r is the constant 100·s + r + offset, so cached values can be
// traced back to the step that produced them.
type fakeModule struct {
	key    string
	kind   nn.AttnKind
	offset float32
	calls  int
}

func (m *fakeModule) run(t *testing.T, b backend.Backend, g *Gate, step, batch int) []float32 {
	t.Helper()
	out, owned := g.Attention(m.key, m.kind, func() backend.Tensor {
		m.calls++
		h := tensor.New(batch, 3, 2)
		for r := 0; r < batch; r++ {
			for j := 0; j < 6; j++ {
				h.Data[r*6+j] = float32(100*step+r) + m.offset
			}
		}
		return b.Upload(h)
	})
	host, err := b.ReadBack(out)
	if err != nil {
		t.Fatal(err)
	}
	if owned {
		b.Free(out)
	}
	return host.Data
}

func TestGateCachesAndReuses(t *testing.T) {
	b := cpu.New()
	cfg := Config{Mode: V2, GateStep: 4, SPInterval: 3, FIInterval: 2, WarmUp: 1}
	g, err := New(b, cfg, Loop{Timesteps: 8, Steps: 8, Order: 1, CFG: true})
	if err != nil {
		t.Fatal(err)
	}
	sa := &fakeModule{key: "down.attn1", kind: nn.SelfAttn}
	ca := &fakeModule{key: "down.attn2", kind: nn.CrossAttn, offset: 0.5}
	// Schedule (worked out from tgate_scheduler): cur 0 compute; 1 sa
	// cache; 2 sa reuse; 3 gate: both cache the mean; 4.. cross reuse, sa
	// cache at even steps, reuse at odd.
	type expect struct {
		batch      int
		sa, ca     float32 // the value row 0 of each output must have
		saCalls    int     // cumulative compute calls
		caCalls    int
		crossReady bool
	}
	want := []expect{
		{2, 0, 0.5, 1, 1, false},
		{2, 100, 100.5, 2, 2, false},
		{2, 100, 200.5, 2, 3, false}, // self-attention reused from step 1
		{2, 300, 300.5, 3, 4, true},  // the full output is returned at the gate step
		{1, 400, 300.5 + 0.5, 4, 4, true},
		{1, 400, 300.5 + 0.5, 4, 4, true}, // self reused from step 4
		{1, 600, 300.5 + 0.5, 5, 4, true},
		{1, 600, 300.5 + 0.5, 5, 4, true},
	}
	for i, w := range want {
		p := g.Begin(i)
		batch := 1
		if p.CFG {
			batch = 2
		}
		if batch != w.batch {
			t.Fatalf("step %d: batch %d, want %d", i, batch, w.batch)
		}
		s := sa.run(t, b, g, i, batch)
		c := ca.run(t, b, g, i, batch)
		// After the gate the cached mean of rows 0 and 1 (r = 0, 1) is
		// 100·3 + 0.5 + 0.5; for self-attention at step 4 the module is
		// computed at batch 1.
		if s[0] != w.sa || c[0] != w.ca || sa.calls != w.saCalls || ca.calls != w.caCalls {
			t.Errorf("step %d: self %v (calls %d), cross %v (calls %d); want %v (%d), %v (%d)",
				i, s[0], sa.calls, c[0], ca.calls, w.sa, w.saCalls, w.ca, w.caCalls)
		}
		if i == 3 && (len(s) != 12 || s[6] != 301) {
			t.Errorf("gate step: self output %v, want the full batch of 2", s)
		}
		if i >= 3 {
			if got := g.Cached(ca.key).Shape(); got[0] != 1 {
				t.Errorf("step %d: cross cache shape %v, want batch 1", i, got)
			}
			if got := g.Cached(sa.key).Shape(); got[0] != 1 {
				t.Errorf("step %d: self cache shape %v, want batch 1", i, got)
			}
		}
		if i >= 3 && g.CacheBytes() != 2*6*4 {
			t.Errorf("step %d: cache holds %d bytes, want two batch-1 tensors of 6 floats", i, g.CacheBytes())
		}
		if g.CrossCached() != w.crossReady {
			t.Errorf("step %d: CrossCached %v", i, g.CrossCached())
		}
	}
	if err := g.Err(); err != nil {
		t.Fatal(err)
	}
	st := g.Stats()
	if st.CrossComputed != 4 || st.CrossReused != 4 || st.SelfComputed != 5 || st.SelfReused != 3 {
		t.Errorf("stats %+v", st)
	}
	if cross, self := g.CachedKeys(); cross != 1 || self != 1 {
		t.Errorf("cached keys cross %d self %d", cross, self)
	}
	g.Release()
	if live := b.Memory().Live; live != 0 {
		t.Errorf("%d bytes still live after Release", live)
	}
}

func TestGateMeanIsExact(t *testing.T) {
	b := cpu.New()
	g, err := New(b, Config{Mode: V1, GateStep: 1}, Loop{Timesteps: 2, Steps: 2, Order: 1, CFG: true})
	if err != nil {
		t.Fatal(err)
	}
	if p := g.Begin(0); p.Cross != CacheMean {
		t.Fatalf("plan %+v", p)
	}
	in := tensor.FromData([]float32{1, 2, 3.25, -7, 0.1, 1e-3, 5, 2.5}, 2, 2, 2)
	out, owned := g.Attention("x.attn2", nn.CrossAttn, func() backend.Tensor { return b.Upload(in) })
	if !owned {
		t.Fatal("the gate step's full output must be owned by the caller")
	}
	b.Free(out)
	h, err := b.ReadBack(g.Cached("x.attn2"))
	if err != nil {
		t.Fatal(err)
	}
	for j := 0; j < 4; j++ {
		want := (in.Data[j] + in.Data[4+j]) / 2
		if h.Data[j] != want {
			t.Errorf("mean[%d] = %v, want %v", j, h.Data[j], want)
		}
	}
	g.Begin(1)
	calls := 0
	out, owned = g.Attention("x.attn2", nn.CrossAttn, func() backend.Tensor { calls++; return nil })
	if owned || calls != 0 || out != g.Cached("x.attn2") {
		t.Errorf("reuse: owned %v, calls %d", owned, calls)
	}
	// A mean over an odd batch is reported, not silently wrong.
	g2, _ := New(b, Config{Mode: V1, GateStep: 1}, Loop{Timesteps: 2, Steps: 2, Order: 1, CFG: true})
	g2.Begin(0)
	out, owned = g2.Attention("y.attn2", nn.CrossAttn, func() backend.Tensor { return b.Upload(tensor.New(3, 1)) })
	if owned {
		b.Free(out)
	}
	if g2.Err() == nil {
		t.Error("no error for a guidance mean over batch 3")
	}
	g.Release()
}
