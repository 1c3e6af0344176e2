package sched

import (
	"fmt"
	"math"
)

// euler is EulerDiscreteScheduler (scheduling_euler_discrete.py; Karras et
// al. 2022, Algorithm 2 with s_churn = 0) and, with ancestral set,
// EulerAncestralDiscreteScheduler (scheduling_euler_ancestral_discrete.py;
// k-diffusion's sample_euler_ancestral). SD_SEMANTICS §8.5–8.6.
//
// EulerDiscrete's step also draws an unused noise tensor (its churn is 0)
// from the pipeline's generator; nothing reads that generator afterwards in
// the text-to-image pipelines, so the draw is not reproduced.
type euler[V any] struct {
	base
	ops       Ops[V]
	ancestral bool
}

// SetTimesteps computes the float32 timesteps of the spacing (linspace
// keeps fractional values), σ_i = interp(t_i, arange(T), σ_table) (NumPy,
// float64, then float32), optionally Karras σs with their timesteps, and
// the final σ (0, or σ_table[0] for final_sigmas_type="sigma_min").
func (e *euler[V]) SetTimesteps(n int) error {
	if err := e.checkN(n); err != nil {
		return err
	}
	T := e.p.NumTrainTimesteps
	ts, err := spacedTimesteps(e.p.TimestepSpacing, T, n, e.p.StepsOffset, false)
	if err != nil {
		return err
	}
	for i, t := range ts {
		ts[i] = float64(float32(t))
	}
	for _, t := range ts {
		if t < 0 || t > float64(T-1) {
			return fmt.Errorf("sched: %s: timestep %g is outside [0, %d] (check steps_offset and timestep_spacing)", e.name.ClassName(), t, T-1)
		}
	}
	sig := make([]float64, n)
	for i, t := range ts {
		sig[i] = numpyInterp(t, e.s.sigmaTable)
	}
	if e.p.UseKarrasSigmas && !e.ancestral {
		lo, hi := sig[n-1], sig[0]
		if e.p.SigmaMin != nil {
			lo = *e.p.SigmaMin
		}
		if e.p.SigmaMax != nil {
			hi = *e.p.SigmaMax
		}
		sig = karrasSigmas(lo, hi, n)
		logS := logTable(e.s.sigmaTable)
		for i, s := range sig {
			ts[i] = float64(float32(sigmaToT(s, logS)))
		}
	}
	sigmas := make([]float32, n+1)
	for i, s := range sig {
		sigmas[i] = float32(s)
	}
	if !e.ancestral && e.p.FinalSigmasType == "sigma_min" {
		sigmas[n] = e.s.sigmaTable[0]
	}
	maxS := sigmas[0]
	for _, s := range sigmas {
		maxS = max(maxS, s)
	}
	e.initNoiseSigma = maxS
	if e.p.TimestepSpacing == "leading" {
		e.initNoiseSigma = sqrt32(maxS*maxS + 1)
	}
	e.n, e.timesteps, e.sigmas = n, ts, sigmas
	e.resetSteps()
	return nil
}

// logTable is np.log of a float32 array (float32 results).
func logTable(t []float32) []float32 {
	out := make([]float32, len(t))
	for i, v := range t {
		out[i] = float32(math.Log(float64(v)))
	}
	return out
}

// InputScale is scale_model_input's 1/√(σ_i²+1).
func (e *euler[V]) InputScale(i int) float32 {
	s := e.sigmas[e.index(i)]
	return 1 / sqrt32(s*s+1)
}

func (e *euler[V]) ScaleModelInput(sample V, i int) V {
	return e.ops.LinComb([]float32{e.InputScale(i)}, sample)
}

// NoiseCoeffs: add_noise is x + σ_i·noise.
func (e *euler[V]) NoiseCoeffs(i int) (float32, float32) { return 1, e.sigmas[e.index(i)] }

func (e *euler[V]) AddNoise(x, noise V, i int) V {
	a, b := e.NoiseCoeffs(i)
	return e.ops.LinComb([]float32{a, b}, x, noise)
}

func (e *euler[V]) Release() {}

// x0Coeffs returns x0 = c[0]·x + c[1]·m at σ:
//   - epsilon:      x − σ·ε
//   - v_prediction: v·(−σ/√(σ²+1)) + x/(σ²+1)
//   - sample:       m
func x0Coeffs(pred string, s float32) [2]float32 {
	switch pred {
	case "v_prediction":
		return [2]float32{1 / (s*s + 1), -s / sqrt32(s*s+1)}
	case "sample":
		return [2]float32{0, 1}
	}
	return [2]float32{1, -s}
}

// Step is the Euler update x + ((x − x0)/σ)·(σ_next − σ); the ancestral
// variant steps to σ_down = √(σ_next² − σ_up²) with
// σ_up = √(σ_next²·(σ² − σ_next²)/σ²) and adds σ_up·noise, drawing the
// noise at every step (also the last, where σ_up = 0).
func (e *euler[V]) Step(out, x V, i int) (Result[V], error) {
	var r Result[V]
	if err := e.beginStep(i, e.ops.Len(out), e.ops.Len(x)); err != nil {
		return r, err
	}
	s, sNext := e.sigmas[i], e.sigmas[i+1]
	c := x0Coeffs(e.p.PredictionType, s)
	x0 := lin(e.ops, tm(c[0], x), tm(c[1], out))
	dt := sNext - s
	var up float32
	if e.ancestral {
		up = sqrt32(sNext * sNext * (s*s - sNext*sNext) / (s * s))
		down := sqrt32(sNext*sNext - up*up)
		dt = down - s
	}
	// x + (dt/σ)(x − x0), with x0 = c0·x + c1·m.
	k := dt / s
	terms := []term[V]{tm(1+k*(1-c[0]), x), tm(-k*c[1], out)}
	if e.ancestral {
		noise, err := e.ops.Randn(x)
		if err != nil {
			e.ops.Free(x0)
			return r, err
		}
		prev := lin(e.ops, append(terms, tm(up, noise))...)
		e.ops.Free(noise)
		return Result[V]{Prev: prev, Denoised: x0, HasDenoised: true}, nil
	}
	return Result[V]{Prev: lin(e.ops, terms...), Denoised: x0, HasDenoised: true}, nil
}
