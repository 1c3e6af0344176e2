package sched

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/rng"
)

// TestDDIMVPredictionSD21 steps DDIMScheduler built from the SD 1.5 file
// with prediction_type v_prediction (what the SD 2.1 file amounts to:
// leading spacing, steps_offset 1, set_alpha_to_one false), η = 0, against
// the DDIM update in float64 with ᾱ from an independent float64 schedule:
// x0 = √ᾱ_t·x − √(1−ᾱ_t)·v, ε = √ᾱ_t·v + √(1−ᾱ_t)·x,
// x_prev = √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε with prev = t − 100, and the last
// step (t = 1) going to ᾱ_0 = 0.99915, not to 1.
func TestDDIMVPredictionSD21(t *testing.T) {
	cfg := sd15Config(t)
	if err := cfg.Set("prediction_type", "v_prediction"); err != nil {
		t.Fatal(err)
	}
	s := timestepsFor(t, DDIM, cfg, Options{}, 10)
	sameF64(t, "timesteps", s.Timesteps(), []float64{901, 801, 701, 601, 501, 401, 301, 201, 101, 1}, 0)
	ac := sdAlphasCumprod64()
	m := &fakeModel{rng.NewTorch(51)}
	x := rng.NewTorch(52).Randn(fN)
	for i, tt := range s.Timesteps() {
		out := m.out(x)
		r, err := s.Step(out, x, i)
		if err != nil {
			t.Fatal(err)
		}
		ti := int(tt)
		at, ap := ac[ti], ac[0]
		if ti-100 >= 0 {
			ap = ac[ti-100]
		}
		want := make([]float64, fN)
		for k := range want {
			xv, v := float64(x[k]), float64(out[k])
			x0 := math.Sqrt(at)*xv - math.Sqrt(1-at)*v
			eps := math.Sqrt(at)*v + math.Sqrt(1-at)*xv
			want[k] = math.Sqrt(ap)*x0 + math.Sqrt(1-ap)*eps
		}
		relClose(t, "ddim v_prediction prev", r.Prev, want, 2e-5)
		x = r.Prev
	}
}

// TestDPMSolverSDConfig steps DPMSolverMultistepScheduler built from the SD
// 1.5 file (linspace spacing: round(linspace(0, 999, N+1))[::-1][:-1];
// dpmsolver++ 2M midpoint; lower_order_final; final σ 0) for 10 and 20
// steps against the float64 transcription dpmRef fed with σ_t from an
// independent float64 schedule. With 10 steps (< 15) and with 20 steps
// (final σ = 0) the first and the last step are first order.
func TestDPMSolverSDConfig(t *testing.T) {
	cfg := sd15Config(t)
	for _, n := range []int{10, 20} {
		s := timestepsFor(t, DPMSolver, cfg, Options{}, n)
		lin := make([]float64, n+1)
		for i := range lin {
			lin[i] = math.RoundToEven(float64(i) * (999 / float64(n)))
		}
		wantT := make([]float64, n)
		for i := range wantT {
			wantT[i] = lin[n-i]
		}
		sameF64(t, "dpm timesteps", s.Timesteps(), wantT, 0)
		sig := make([]float64, n+1)
		for i, tt := range wantT {
			sig[i] = sdSigma64(int(tt))
		}
		got := s.Sigmas()
		for i := range sig {
			if !(math.Abs(float64(got[i])-sig[i]) <= 1e-6*math.Max(sig[i], 1)) {
				t.Errorf("N=%d sigma[%d] = %.9g, float64 schedule %.9g", n, i, got[i], sig[i])
			}
		}
		ref := &dpmRef{sig: sig, order: 2, lowFin: true, zeroFin: true}
		m := &fakeModel{rng.NewTorch(61)}
		x := rng.NewTorch(62).Randn(fN)
		for i := range s.Timesteps() {
			out := m.out(x)
			r, err := s.Step(out, x, i)
			if err != nil {
				t.Fatal(err)
			}
			relClose(t, "dpm sd", r.Prev, ref.step(out, x, i, "epsilon"), 2e-5)
			x = r.Prev
		}
	}
}
