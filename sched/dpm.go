package sched

import (
	"fmt"
	"math"
	"sort"
)

// dpm is DPMSolverMultistepScheduler with algorithm_type="dpmsolver++"
// (scheduling_dpmsolver_multistep.py; Lu et al. 2022, "DPM-Solver++",
// multistep data-prediction solver of order 1–3, midpoint or heun
// second-order variant). SD_SEMANTICS §8.7.
type dpm[V any] struct {
	base
	ops Ops[V]

	history  []V // data predictions, oldest first (at most solver_order)
	lowerNum int // lower_order_nums
}

// SetTimesteps computes the integer timesteps: linspace
// round(linspace(0, last−1, N+1))[::-1][:-1]; leading
// (arange(N+1)·(last//(N+1)))[::-1][:-1] + steps_offset; trailing
// round(arange(last, 0, −T/N)) − 1; where last = T − (number of λ_t below
// lambda_min_clipped). σ_i is interpolated from the table (or Karras σs
// with rounded timesteps) and the final σ is 0 or σ_table[0].
func (d *dpm[V]) SetTimesteps(n int) error {
	if err := d.checkN(n); err != nil {
		return err
	}
	T := d.p.NumTrainTimesteps
	last := T - d.clippedCount()
	var ts []float64
	switch d.p.TimestepSpacing {
	case "linspace":
		lin := numpyLinspace(0, float64(last-1), n+1)
		for i := n; i >= 1; i-- {
			ts = append(ts, math.RoundToEven(lin[i]))
		}
	case "leading":
		ratio := last / (n + 1)
		for i := n; i >= 1; i-- {
			ts = append(ts, float64(i*ratio+d.p.StepsOffset))
		}
	case "trailing":
		for _, v := range numpyArange(float64(last), 0, -float64(T)/float64(n)) {
			ts = append(ts, math.RoundToEven(v)-1)
		}
	default:
		return fmt.Errorf("sched: unknown timestep_spacing %q (valid: leading, trailing, linspace)", d.p.TimestepSpacing)
	}
	m := len(ts)
	sig := make([]float64, m)
	if d.p.UseKarrasSigmas {
		tab := d.s.sigmaTable
		sig = karrasSigmas(float64(tab[0]), float64(tab[T-1]), n)
		logS := logTable(tab)
		ts = ts[:0]
		for _, s := range sig {
			ts = append(ts, math.RoundToEven(sigmaToT(s, logS)))
		}
		m = len(ts)
	} else {
		for i, t := range ts {
			sig[i] = numpyInterp(t, d.s.sigmaTable)
		}
	}
	if err := checkIntTimesteps(d.name, ts, T); err != nil {
		return err
	}
	sigmas := make([]float32, m+1)
	for i, s := range sig {
		sigmas[i] = float32(s)
	}
	if d.p.FinalSigmasType == "sigma_min" {
		sigmas[m] = d.s.sigmaTable[0]
	}
	d.Release()
	d.n, d.timesteps, d.sigmas = m, ts, sigmas
	d.lowerNum = 0
	d.resetSteps()
	return nil
}

// clippedCount is torch.searchsorted(flip(λ_t), lambda_min_clipped): the
// number of λ_t = log √ᾱ_t − log √(1−ᾱ_t) (float32) below the clip value.
func (d *dpm[V]) clippedCount() int {
	clip := d.p.LambdaMinClipped
	if math.IsInf(clip, -1) {
		return 0
	}
	T := d.p.NumTrainTimesteps
	flipped := make([]float64, T)
	for i, a := range d.s.alphasCumprod {
		l := float32(math.Log(float64(sqrt32(a)))) - float32(math.Log(float64(sqrt32(1-a))))
		flipped[T-1-i] = float64(l)
	}
	return sort.Search(T, func(k int) bool { return flipped[k] >= float64(float32(clip)) })
}

// Release drops the kept data predictions.
func (d *dpm[V]) Release() {
	for _, h := range d.history {
		d.ops.Free(h)
	}
	d.history = nil
}

// alphaSigma is _sigma_to_alpha_sigma_t: α = 1/√(σ²+1), σ_t = σ·α.
func alphaSigma(s float32) (float32, float32) {
	a := 1 / sqrt32(s*s+1)
	return a, s * a
}

// lambda is log α − log σ_t in float32 (+Inf at σ = 0).
func lambda(a, s float32) float32 {
	return float32(math.Log(float64(a))) - float32(math.Log(float64(s)))
}

// NoiseCoeffs: add_noise is α_i·x + σ_i·noise with (α_i, σ_i) from σ_i.
func (d *dpm[V]) NoiseCoeffs(i int) (float32, float32) { return alphaSigma(d.sigmas[d.index(i)]) }

func (d *dpm[V]) ScaleModelInput(sample V, i int) V { return d.ops.Keep(sample) }

func (d *dpm[V]) AddNoise(x, noise V, i int) V {
	a, b := d.NoiseCoeffs(i)
	return d.ops.LinComb([]float32{a, b}, x, noise)
}

// Step converts the model output to the data prediction
// (convert_model_output: ε → (x − σ_t·ε)/α_t, v → α_t·x − σ_t·v), keeps it,
// and applies the first-, second- or third-order update chosen as
// DPMSolverMultistepScheduler.step chooses it (lower orders for the first
// steps, and at the end with lower_order_final / final σ = 0).
func (d *dpm[V]) Step(out, x V, i int) (Result[V], error) {
	var r Result[V]
	if err := d.beginStep(i, d.ops.Len(out), d.ops.Len(x)); err != nil {
		return r, err
	}
	m := len(d.timesteps)
	lowerFinal := i == m-1 && (d.p.EulerAtFinal || (d.p.LowerOrderFinal && m < 15) || d.p.FinalSigmasType == "zero")
	lowerSecond := i == m-2 && d.p.LowerOrderFinal && m < 15

	s0 := d.sigmas[i]
	a0, st0 := alphaSigma(s0)
	var x0 V
	switch d.p.PredictionType {
	case "v_prediction":
		x0 = d.ops.LinComb([]float32{a0, -st0}, x, out)
	case "sample":
		x0 = d.ops.Keep(out)
	default:
		x0 = d.ops.LinComb([]float32{1 / a0, -st0 / a0}, x, out)
	}
	if len(d.history) == d.p.SolverOrder {
		d.ops.Free(d.history[0])
		d.history = d.history[1:]
	}
	d.history = append(d.history, d.ops.Keep(x0))

	var prev V
	switch {
	case d.p.SolverOrder == 1 || d.lowerNum < 1 || lowerFinal:
		prev = d.firstOrder(x, i)
	case d.p.SolverOrder == 2 || d.lowerNum < 2 || lowerSecond:
		prev = d.secondOrder(x, i)
	default:
		prev = d.thirdOrder(x, i)
	}
	if d.lowerNum < d.p.SolverOrder {
		d.lowerNum++
	}
	return Result[V]{Prev: prev, Denoised: x0, HasDenoised: true}, nil
}

// hist returns the data prediction k steps back (0 = current).
func (d *dpm[V]) hist(k int) V { return d.history[len(d.history)-1-k] }

// firstOrder is dpm_solver_first_order_update (DDIM in λ):
// x_t = (σ_t/σ_s)·x − α_t·(e^{−h} − 1)·m0, h = λ_t − λ_s.
func (d *dpm[V]) firstOrder(x V, i int) V {
	at, st := alphaSigma(d.sigmas[i+1])
	as, ss := alphaSigma(d.sigmas[i])
	h := lambda(at, st) - lambda(as, ss)
	em1 := float32(math.Exp(float64(-h))) - 1
	return lin(d.ops, tm(st/ss, x), tm(-at*em1, d.hist(0)))
}

// secondOrder is multistep_dpm_solver_second_order_update for dpmsolver++:
// r0 = h_0/h, D0 = m0, D1 = (m0 − m1)/r0, and
// midpoint: x_t = (σ_t/σ_s0)x − α_t(e^{−h}−1)D0 − ½α_t(e^{−h}−1)D1,
// heun:     x_t = (σ_t/σ_s0)x − α_t(e^{−h}−1)D0 + α_t((e^{−h}−1)/h + 1)D1.
func (d *dpm[V]) secondOrder(x V, i int) V {
	at, st := alphaSigma(d.sigmas[i+1])
	a0, s0 := alphaSigma(d.sigmas[i])
	a1, s1 := alphaSigma(d.sigmas[i-1])
	lt, l0, l1 := lambda(at, st), lambda(a0, s0), lambda(a1, s1)
	h, h0 := lt-l0, l0-l1
	r0 := h0 / h
	em1 := float32(math.Exp(float64(-h))) - 1
	c0 := -at * em1
	var cD1 float32
	if d.p.SolverType == "heun" {
		cD1 = at * (em1/h + 1)
	} else {
		cD1 = -0.5 * (at * em1)
	}
	inv := 1 / r0
	// c0·m0 + cD1·(m0 − m1)/r0
	return lin(d.ops, tm(st/s0, x), tm(c0+cD1*inv, d.hist(0)), tm(-cD1*inv, d.hist(1)))
}

// thirdOrder is multistep_dpm_solver_third_order_update for dpmsolver++:
// D1_0 = (m0−m1)/r0, D1_1 = (m1−m2)/r1, D1 = D1_0 + r0/(r0+r1)·(D1_0−D1_1),
// D2 = (D1_0−D1_1)/(r0+r1), x_t = (σ_t/σ_s0)x − α_t(e^{−h}−1)D0 +
// α_t((e^{−h}−1)/h+1)D1 − α_t((e^{−h}−1+h)/h² − ½)D2.
func (d *dpm[V]) thirdOrder(x V, i int) V {
	at, st := alphaSigma(d.sigmas[i+1])
	a0, s0 := alphaSigma(d.sigmas[i])
	a1, s1 := alphaSigma(d.sigmas[i-1])
	a2, s2 := alphaSigma(d.sigmas[i-2])
	lt, l0, l1, l2 := lambda(at, st), lambda(a0, s0), lambda(a1, s1), lambda(a2, s2)
	h, h0, h1 := float64(lt-l0), float64(l0-l1), float64(l1-l2)
	r0, r1 := h0/h, h1/h
	em1 := math.Exp(-h) - 1
	A := float64(at)
	cD0 := -A * em1
	cD1 := A * (em1/h + 1)
	cD2 := -A * ((em1+h)/(h*h) - 0.5)
	// D1_0 = (m0−m1)/r0, D1_1 = (m1−m2)/r1 as coefficient vectors on
	// (m0, m1, m2).
	d10 := [3]float64{1 / r0, -1 / r0, 0}
	d11 := [3]float64{0, 1 / r1, -1 / r1}
	var c [3]float64
	for k := 0; k < 3; k++ {
		diff := d10[k] - d11[k]
		D1 := d10[k] + r0/(r0+r1)*diff
		D2 := diff / (r0 + r1)
		c[k] = cD1*D1 + cD2*D2
	}
	c[0] += cD0
	return lin(d.ops, tm(st/s0, x), tm(float32(c[0]), d.hist(0)), tm(float32(c[1]), d.hist(1)), tm(float32(c[2]), d.hist(2)))
}
