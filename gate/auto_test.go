package gate

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// TestAutoGateDecision drives a gate with two cross-attention modules
// whose outputs at step s are the constant v_s = 2^(−s) (module a) and
// 3·v_s (module b): the relative change between steps s−1 and s is
// |v_s − v_{s−1}| / v_{s−1} = 1/2 for both, except that module b is not
// called at step 2 (as DeepCache's partial steps skip modules), so it
// has no measurement at steps 2 and 3. Outputs halve each step until step
// 4 and stay constant from then on, so r_4 = 0.5 and r_5 = 0. With
// threshold 0.1 the gate must close before evaluation 6 (gate step 7),
// and the plans from there on must be those of a fixed gate 7.
func TestAutoGateDecision(t *testing.T) {
	b := cpu.New()
	loop := Loop{Timesteps: 10, Steps: 10, Order: 1, CFG: true}
	cfg := Config{Mode: V1, Auto: Auto{Threshold: 0.1}}
	g, err := New(b, cfg, loop)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Release()
	value := func(s int) float32 { return float32(math.Pow(2, -float64(min(s, 4)))) }
	call := func(key string, v float32, batch int) {
		out, owned := g.Attention(key, nn.CrossAttn, func() backend.Tensor {
			h := tensor.New(batch, 2, 3)
			for i := range h.Data {
				h.Data[i] = v
			}
			return b.Upload(h)
		})
		if owned {
			b.Free(out)
		}
	}
	for i := 0; i < 10; i++ {
		plan := g.Begin(i)
		batch := 1
		if plan.CFG {
			batch = 2
		}
		call("a", value(i), batch)
		if i != 2 {
			call("b", 3*value(i), batch)
		}
	}
	if gs := g.Stats().GateStep; gs != 7 {
		t.Fatalf("auto gate closed at %d; want 7", gs)
	}
	// Expected measurements: both modules halve (0.5) at steps 1 and 4,
	// module a alone at steps 2 and 3, nothing changes at step 5; no
	// measurement at 0 and from the decision on.
	want := []float64{math.NaN(), 0.5, 0.5, 0.5, 0.5, 0}
	got := g.Changes()
	if len(got) != len(want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
	for i := range want {
		if !(math.IsNaN(want[i]) && math.IsNaN(got[i])) && math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("r_%d = %g, want %g", i, got[i], want[i])
		}
	}
	fixed, err := Plans(Config{Mode: V1, GateStep: 7}, loop)
	if err != nil {
		t.Fatal(err)
	}
	for i := range fixed {
		if g.Plan(i) != fixed[i] {
			t.Errorf("evaluation %d: plan %+v, fixed gate 7 has %+v", i, g.Plan(i), fixed[i])
		}
	}
}

// TestAutoValidate checks the settings the auto gate refuses, and that a
// gate step is not required with it.
func TestAutoValidate(t *testing.T) {
	for _, a := range []Auto{{Threshold: -1}, {Threshold: math.NaN()}, {Threshold: 0.1, MinStep: -1},
		{Threshold: 0.1, MinStep: 8, MaxStep: 4}} {
		if err := (Config{Mode: V1, Auto: a}).Validate(); err == nil {
			t.Errorf("%+v accepted", a)
		}
	}
	if err := (Config{Mode: V2, SPInterval: 5, FIInterval: 1, Auto: Auto{Threshold: 0.1, MinStep: 3, MaxStep: 10}}).Validate(); err != nil {
		t.Errorf("auto gate without a gate step: %v", err)
	}
	if err := (Config{Mode: V1}).Validate(); err == nil {
		t.Errorf("a fixed gate without a gate step was accepted")
	}
}
