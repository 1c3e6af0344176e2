package sched

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/rng"
)

// These tests step each scheduler on pseudo-random data and compare with a
// float64 transcription of the diffusers step written out here in the
// reference's own form (pred_original_sample, derivative, D0/D1/D2, the
// ets list...), independent of this package's folded coefficients.

const fN = 64

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// fakeModel returns a model output that depends on the sample and the
// step: 0.4·x + 0.6·z with z a fresh pseudo-random draw.
type fakeModel struct{ g *rng.Torch }

func (m *fakeModel) out(x []float32) []float32 {
	z := m.g.Randn(len(x))
	o := make([]float32, len(x))
	for i := range o {
		o[i] = 0.4*x[i] + 0.6*z[i]
	}
	return o
}

func relClose(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	m := 0.0
	for _, w := range want {
		m = math.Max(m, math.Abs(w))
	}
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol*math.Max(m, 1e-30)) { // NaN fails too
			t.Fatalf("%s[%d] = %.9g, float64 reference %.9g (|diff| %.3g, max %.3g)", what, i, got[i], want[i], d, m)
		}
	}
}

// acTable is ᾱ of the scheduler, as float64.
func acTable(s Scheduler) []float64 {
	type acs interface{ AlphasCumprod() []float32 }
	return f64s(s.(acs).AlphasCumprod())
}

func TestDDIMEtaMatchesFormula(t *testing.T) {
	for _, pred := range []string{"epsilon", "v_prediction", "sample"} {
		cfg := cfgOf(t, map[string]any{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
			"prediction_type": pred, "clip_sample": pred == "sample", "set_alpha_to_one": false, "steps_offset": 1})
		s, err := New(DDIM, cfg, Options{Eta: 0.7, Noise: rng.NewTorch(5)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(7); err != nil {
			t.Fatal(err)
		}
		ac := acTable(s)
		noise := rng.NewTorch(5)
		m := &fakeModel{rng.NewTorch(6)}
		x := rng.NewTorch(7).Randn(fN)
		for i, tt := range s.Timesteps() {
			out := m.out(x)
			r, err := s.Step(out, x, i)
			if err != nil {
				t.Fatal(err)
			}
			ti := int(tt)
			prev := ti - 1000/7
			at := ac[ti]
			ap := ac[0]
			if prev >= 0 {
				ap = ac[prev]
			}
			z := noise.Randn(fN)
			want := make([]float64, fN)
			for k := range want {
				xv, mv := float64(x[k]), float64(out[k])
				var x0, eps float64
				switch pred {
				case "epsilon":
					x0, eps = (xv-math.Sqrt(1-at)*mv)/math.Sqrt(at), mv
				case "v_prediction":
					x0, eps = math.Sqrt(at)*xv-math.Sqrt(1-at)*mv, math.Sqrt(at)*mv+math.Sqrt(1-at)*xv
				case "sample":
					x0, eps = mv, (xv-math.Sqrt(at)*mv)/math.Sqrt(1-at)
					x0 = math.Max(-1, math.Min(1, x0))
				}
				variance := (1 - ap) / (1 - at) * (1 - at/ap)
				std := 0.7 * math.Sqrt(variance)
				want[k] = math.Sqrt(ap)*x0 + math.Sqrt(1-ap-std*std)*eps + std*float64(z[k])
			}
			// "sample" divides by √(1−ᾱ_t) ≈ 0.03 at t = 1, which amplifies
			// the float32 rounding of the coefficients (as in diffusers).
			tol := 2e-6
			if pred == "sample" {
				tol = 1e-5
			}
			relClose(t, pred+" ddim eta prev", r.Prev, want, tol)
			x = r.Prev
		}
	}
}

func TestEulerAncestralMatchesFormula(t *testing.T) {
	for _, pred := range []string{"epsilon", "v_prediction"} {
		cfg := cfgOf(t, map[string]any{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "prediction_type": pred})
		s, err := New(EulerAncestral, cfg, Options{Noise: rng.NewTorch(11)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(6); err != nil {
			t.Fatal(err)
		}
		sig := f64s(s.Sigmas())
		noise := rng.NewTorch(11)
		m := &fakeModel{rng.NewTorch(12)}
		x := rng.NewTorch(13).Randn(fN)
		for i := range s.Timesteps() {
			out := m.out(x)
			r, err := s.Step(out, x, i)
			if err != nil {
				t.Fatal(err)
			}
			sf, st := sig[i], sig[i+1]
			up := math.Sqrt(st * st * (sf*sf - st*st) / (sf * sf))
			down := math.Sqrt(st*st - up*up)
			z := noise.Randn(fN) // drawn at every step, also the last
			want := make([]float64, fN)
			for k := range want {
				xv, mv := float64(x[k]), float64(out[k])
				x0 := xv - sf*mv
				if pred == "v_prediction" {
					x0 = mv*(-sf/math.Sqrt(sf*sf+1)) + xv/(sf*sf+1)
				}
				d := (xv - x0) / sf
				want[k] = xv + d*(down-sf) + float64(z[k])*up
			}
			relClose(t, pred+" euler-a prev", r.Prev, want, 2e-6)
			x = r.Prev
		}
		// The stream is shared: the scheduler drew exactly one tensor per
		// step, so the next draws agree.
		if a, b := s.(*euler[[]float32]).ops.(*HostOps).Noise.Randn(4), noise.Randn(4); a[0] != b[0] {
			t.Errorf("%s: noise streams diverged after the loop", pred)
		}
	}
}

func TestLCMMatchesFormula(t *testing.T) {
	cfg := goldenConfig(t, "lcm_tiny_pipeline")
	gen := rng.NewTorch(21)
	s, err := New(LCM, cfg, Options{Noise: gen})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(4); err != nil {
		t.Fatal(err)
	}
	ac := acTable(s)
	noise := rng.NewTorch(21)
	m := &fakeModel{rng.NewTorch(22)}
	x := rng.NewTorch(23).Randn(fN)
	ts := s.Timesteps()
	for i, tt := range ts {
		out := m.out(x)
		r, err := s.Step(out, x, i)
		if err != nil {
			t.Fatal(err)
		}
		ti := int(tt)
		prevT := ti
		if i+1 < len(ts) {
			prevT = int(ts[i+1])
		}
		at, ap := ac[ti], ac[prevT]
		st := tt * 10
		cSkip := 0.25 / (st*st + 0.25)
		cOut := st / math.Sqrt(st*st+0.25)
		var z []float32
		if i != len(ts)-1 {
			z = noise.Randn(fN)
		}
		den := make([]float64, fN)
		want := make([]float64, fN)
		for k := range want {
			x0 := (float64(x[k]) - math.Sqrt(1-at)*float64(out[k])) / math.Sqrt(at)
			den[k] = cOut*x0 + cSkip*float64(x[k])
			want[k] = den[k]
			if z != nil {
				want[k] = math.Sqrt(ap)*den[k] + math.Sqrt(1-ap)*float64(z[k])
			}
		}
		relClose(t, "lcm denoised", r.Denoised, den, 2e-6)
		relClose(t, "lcm prev", r.Prev, want, 2e-6)
		x = r.Prev
	}
	// n−1 draws: the generator is now where three draws leave it.
	if gen.Randn(4)[0] != noise.Randn(4)[0] {
		t.Error("LCM drew noise at the last step")
	}
}

// dpmRef is a float64 transcription of DPMSolverMultistepScheduler.step
// (dpmsolver++) with explicit D0/D1/D2.
type dpmRef struct {
	sig     []float64
	order   int
	heun    bool
	lowFin  bool
	zeroFin bool
	outs    [][]float64
	lower   int
}

func (d *dpmRef) step(out, x []float32, i int, pred string) []float64 {
	as := func(s float64) (float64, float64) { a := 1 / math.Sqrt(s*s+1); return a, s * a }
	lam := func(s float64) float64 { a, st := as(s); return math.Log(a) - math.Log(st) }
	a0, s0 := as(d.sig[i])
	m := make([]float64, len(x))
	for k := range m {
		if pred == "v_prediction" {
			m[k] = a0*float64(x[k]) - s0*float64(out[k])
		} else {
			m[k] = (float64(x[k]) - s0*float64(out[k])) / a0
		}
	}
	d.outs = append(d.outs, m)
	n := len(d.sig) - 1
	lowerFinal := i == n-1 && ((d.lowFin && n < 15) || d.zeroFin)
	lowerSecond := i == n-2 && d.lowFin && n < 15
	at, st := as(d.sig[i+1])
	h := lam(d.sig[i+1]) - lam(d.sig[i])
	res := make([]float64, len(x))
	m0 := d.outs[len(d.outs)-1]
	switch {
	case d.order == 1 || d.lower < 1 || lowerFinal:
		for k := range res {
			res[k] = (st/s0)*float64(x[k]) - at*(math.Exp(-h)-1)*m0[k]
		}
	case d.order == 2 || d.lower < 2 || lowerSecond:
		m1 := d.outs[len(d.outs)-2]
		h0 := lam(d.sig[i]) - lam(d.sig[i-1])
		r0 := h0 / h
		for k := range res {
			D0, D1 := m0[k], (1/r0)*(m0[k]-m1[k])
			if d.heun {
				res[k] = (st/s0)*float64(x[k]) - at*(math.Exp(-h)-1)*D0 + at*((math.Exp(-h)-1)/h+1)*D1
			} else {
				res[k] = (st/s0)*float64(x[k]) - at*(math.Exp(-h)-1)*D0 - 0.5*at*(math.Exp(-h)-1)*D1
			}
		}
	default:
		m1, m2 := d.outs[len(d.outs)-2], d.outs[len(d.outs)-3]
		h0 := lam(d.sig[i]) - lam(d.sig[i-1])
		h1 := lam(d.sig[i-1]) - lam(d.sig[i-2])
		r0, r1 := h0/h, h1/h
		for k := range res {
			D0 := m0[k]
			D10, D11 := (1/r0)*(m0[k]-m1[k]), (1/r1)*(m1[k]-m2[k])
			D1 := D10 + (r0/(r0+r1))*(D10-D11)
			D2 := (1 / (r0 + r1)) * (D10 - D11)
			res[k] = (st/s0)*float64(x[k]) - at*(math.Exp(-h)-1)*D0 + at*((math.Exp(-h)-1)/h+1)*D1 - at*((math.Exp(-h)-1+h)/(h*h)-0.5)*D2
		}
	}
	if d.lower < d.order {
		d.lower++
	}
	return res
}

func TestDPMSolverOrdersMatchFormula(t *testing.T) {
	for _, c := range []struct {
		order  int
		solver string
		final  string
		pred   string
		lowFin bool
		steps  int
	}{
		{2, "midpoint", "zero", "epsilon", true, 10},
		{2, "heun", "zero", "v_prediction", true, 8},
		{3, "midpoint", "zero", "epsilon", true, 9},
		{3, "midpoint", "sigma_min", "epsilon", false, 7},
		{3, "heun", "sigma_min", "v_prediction", true, 20},
		{1, "midpoint", "zero", "epsilon", true, 5},
	} {
		cfg := cfgOf(t, map[string]any{"solver_order": c.order, "solver_type": c.solver, "final_sigmas_type": c.final,
			"prediction_type": c.pred, "lower_order_final": c.lowFin, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012})
		s, err := New(DPMSolver, cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(c.steps); err != nil {
			t.Fatal(err)
		}
		ref := &dpmRef{sig: f64s(s.Sigmas()), order: c.order, heun: c.solver == "heun", lowFin: c.lowFin, zeroFin: c.final == "zero"}
		m := &fakeModel{rng.NewTorch(31)}
		x := rng.NewTorch(32).Randn(fN)
		for i := range s.Timesteps() {
			out := m.out(x)
			r, err := s.Step(out, x, i)
			if err != nil {
				t.Fatal(err)
			}
			want := ref.step(out, x, i, c.pred)
			relClose(t, "dpm", r.Prev, want, 3e-6)
			x = r.Prev
		}
	}
}

// plmsRef is a float64 transcription of PNDMScheduler.step_plms with
// skip_prk_steps (the ets list and counter state machine).
func TestPNDMMatchesFormula(t *testing.T) {
	for _, pred := range []string{"epsilon", "v_prediction"} {
		cfg := sd15Config(t)
		if err := cfg.Set("prediction_type", pred); err != nil {
			t.Fatal(err)
		}
		s, err := New(PNDM, cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		const n = 6
		if err := s.SetTimesteps(n); err != nil {
			t.Fatal(err)
		}
		ac := acTable(s)
		prevSample := func(x []float64, t, p int, e []float64) []float64 {
			at := ac[t]
			ap := ac[0]
			if p >= 0 {
				ap = ac[p]
			}
			out := make([]float64, len(x))
			for k := range x {
				ek := e[k]
				if pred == "v_prediction" {
					ek = math.Sqrt(at)*e[k] + math.Sqrt(1-at)*x[k]
				}
				out[k] = math.Sqrt(ap/at)*x[k] - (ap-at)*ek/(at*math.Sqrt(1-ap)+math.Sqrt(at*(1-at)*ap))
			}
			return out
		}
		var ets [][]float64
		var cur []float64
		counter := 0
		m := &fakeModel{rng.NewTorch(41)}
		x := rng.NewTorch(42).Randn(fN)
		r := 1000 / n
		for i, tt := range s.Timesteps() {
			out := m.out(x)
			res, err := s.Step(out, x, i)
			if err != nil {
				t.Fatal(err)
			}
			ti := int(tt)
			prev := ti - r
			mo := f64s(out)
			xs := f64s(x)
			if counter != 1 {
				if len(ets) > 3 {
					ets = ets[len(ets)-3:]
				}
				ets = append(ets, mo)
			} else {
				prev = ti
				ti += r
			}
			var e []float64
			comb := func(w ...float64) []float64 {
				o := make([]float64, fN)
				for j, wj := range w {
					for k := range o {
						o[k] += wj * ets[len(ets)-1-j][k]
					}
				}
				return o
			}
			switch {
			case len(ets) == 1 && counter == 0:
				e = mo
				cur = xs
			case len(ets) == 1 && counter == 1:
				e = make([]float64, fN)
				for k := range e {
					e[k] = (mo[k] + ets[0][k]) / 2
				}
				xs = cur
			case len(ets) == 2:
				e = comb(1.5, -0.5)
			case len(ets) == 3:
				e = comb(23.0/12, -16.0/12, 5.0/12)
			default:
				e = comb(55.0/24, -59.0/24, 37.0/24, -9.0/24)
			}
			want := prevSample(xs, ti, prev, e)
			relClose(t, pred+" pndm", res.Prev, want, 3e-6)
			counter++
			x = res.Prev
		}
	}
}

// rescale_zero_terminal_snr and the squaredcos_cap_v2 schedule against
// float64 evaluations of their definitions.
func TestBetaScheduleVariants(t *testing.T) {
	p, err := ResolveParams(DDIM, cfgOf(t, map[string]any{"beta_schedule": "squaredcos_cap_v2"}))
	if err != nil {
		t.Fatal(err)
	}
	b := betasFor(&p)
	f := func(x float64) float64 { c := math.Cos((x + 0.008) / 1.008 * math.Pi / 2); return c * c }
	for i := range b {
		want := math.Min(1-f(float64(i+1)/1000)/f(float64(i)/1000), 0.999)
		if float64(b[i]) != float64(float32(want)) {
			t.Fatalf("cosine beta[%d] = %v, want %v", i, b[i], float32(want))
		}
	}
	p, err = ResolveParams(DDIM, cfgOf(t, map[string]any{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "rescale_betas_zero_snr": true}))
	if err != nil {
		t.Fatal(err)
	}
	plain := p
	plain.RescaleBetasZeroSNR = false
	orig := f64s(betasFor(&plain))
	got := betasFor(&p)
	// float64 Algorithm 1 of Lin et al. 2023. The betas near the end are
	// ratios of nearly vanishing ᾱ and badly conditioned in float32, so
	// the check is on ᾱ = Π(1−β), which is well conditioned.
	n := len(orig)
	sq := make([]float64, n)
	acc := 1.0
	for i, bb := range orig {
		acc *= 1 - bb
		sq[i] = math.Sqrt(acc)
	}
	s0, sT := sq[0], sq[n-1]
	gotAC := cumprodF32(oneMinus(got))
	for i := range sq {
		v := (sq[i] - sT) * s0 / (s0 - sT)
		if !(math.Abs(float64(gotAC[i])-v*v) <= 1e-6) {
			t.Fatalf("rescaled alphas_cumprod[%d] = %v, want %v", i, gotAC[i], v*v)
		}
	}
	if got[n-1] != 1 {
		t.Errorf("last rescaled beta = %v, want 1 (zero terminal SNR)", got[n-1])
	}
}

// Euler and DPM-Solver set the last ᾱ to 2⁻²⁴ under rescale_betas_zero_snr
// so that the first σ stays finite (σ = √((1−2⁻²⁴)/2⁻²⁴) ≈ 4096).
func TestZeroSNRFirstSigma(t *testing.T) {
	cfg := cfgOf(t, map[string]any{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "rescale_betas_zero_snr": true, "timestep_spacing": "trailing"})
	for _, n := range []Name{Euler, EulerAncestral, DPMSolver} {
		s := timestepsFor(t, n, cfg, Options{}, 4)
		want := float32(math.Sqrt((1 - 1.0/(1<<24)) * (1 << 24)))
		if got := s.Sigmas()[0]; !(math.Abs(float64(got-want)) <= 1e-3) {
			t.Errorf("%s: first sigma %v, want %v", n, got, want)
		}
	}
	d := timestepsFor(t, DDIM, cfg, Options{}, 4)
	if ac := acTable(d); ac[len(ac)-1] != 0 {
		t.Errorf("DDIM keeps the zero terminal ᾱ, got %v", ac[len(ac)-1])
	}
}
