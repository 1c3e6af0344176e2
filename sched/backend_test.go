package sched

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/rng"
	"github.com/tgate-web/tgate/tensor"
)

// The same steps run over device tensors with BackendOps (every update one
// Backend.LinComb) on the CPU backend give the host results bit for bit
// (both accumulate in float64), and every tensor the scheduler made is
// released once the caller frees its results and calls Release.
func TestBackendOpsMatchHost(t *testing.T) {
	shape := tensor.Shape{1, 4, 4, 4}
	for _, c := range []struct {
		name Name
		cfg  string
		pred string
	}{
		{DDIM, "sd15_tiny_pipeline", "epsilon"},
		{PNDM, "sd15_tiny_pipeline", "v_prediction"},
		{Euler, "sdxl_tiny_pipeline", "epsilon"},
		{EulerAncestral, "sd15_tiny_pipeline", "v_prediction"},
		{DPMSolver, "pixart_tiny_pipeline", "epsilon"},
		{LCM, "lcm_tiny_pipeline", "epsilon"},
	} {
		t.Run(string(c.name), func(t *testing.T) {
			cfg := goldenConfig(t, c.cfg)
			if err := cfg.Set("prediction_type", c.pred); err != nil {
				t.Fatal(err)
			}
			b := cpu.New()
			host, err := New(c.name, cfg, Options{Noise: rng.NewTorch(3)})
			if err != nil {
				t.Fatal(err)
			}
			dev, err := NewStepper[backend.Tensor](c.name, cfg, Options{}, &BackendOps{B: b, Noise: rng.NewTorch(3)})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []Scheduler{host, dev} {
				if err := s.SetTimesteps(5); err != nil {
					t.Fatal(err)
				}
			}
			base := b.Memory().Live
			m := &fakeModel{rng.NewTorch(4)}
			x := rng.NewTorch(5).Randn(shape.Numel())
			xd := b.Upload(&tensor.Host{Shape: shape, Data: append([]float32(nil), x...)})
			for i := range host.Timesteps() {
				out := m.out(x)
				od := b.Upload(&tensor.Host{Shape: shape, Data: append([]float32(nil), out...)})
				in := host.ScaleModelInput(x, i)
				ind := dev.ScaleModelInput(xd, i)
				same(t, b, fmt.Sprintf("scaled input %d", i), ind, in)
				b.Free(ind)
				rh, err := host.Step(out, x, i)
				if err != nil {
					t.Fatal(err)
				}
				rd, err := dev.Step(od, xd, i)
				if err != nil {
					t.Fatal(err)
				}
				same(t, b, fmt.Sprintf("step %d prev", i), rd.Prev, rh.Prev)
				if rh.HasDenoised != rd.HasDenoised {
					t.Fatal("HasDenoised differs")
				}
				if rd.HasDenoised {
					same(t, b, fmt.Sprintf("step %d denoised", i), rd.Denoised, rh.Denoised)
					b.Free(rd.Denoised)
				}
				b.Free(od)
				b.Free(xd)
				x, xd = rh.Prev, rd.Prev
			}
			b.Free(xd)
			dev.Release()
			if live := b.Memory().Live; live != base {
				t.Errorf("%d bytes still live after the loop (before: %d)", live, base)
			}
		})
	}
}

func same(t *testing.T, b backend.Backend, what string, got backend.Tensor, want []float32) {
	t.Helper()
	h, err := b.ReadBack(got)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if h.Data[i] != want[i] {
			t.Fatalf("%s[%d]: backend %v, host %v", what, i, h.Data[i], want[i])
		}
	}
}

// BackendOps without a generator reports it instead of panicking.
func TestBackendOpsNoNoise(t *testing.T) {
	b := cpu.New()
	s, err := NewStepper[backend.Tensor](LCM, nil, Options{}, &BackendOps{B: b})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(2); err != nil {
		t.Fatal(err)
	}
	x := b.Upload(tensor.New(1, 4, 2, 2))
	if _, err := s.Step(x, x, 0); err == nil || !strings.Contains(err.Error(), "generator") {
		t.Errorf("error %v", err)
	}
}
