package sched

import (
	"fmt"
	"math"
)

// lcm is LCMScheduler (scheduling_lcm.py; Luo et al. 2023, "Latent
// Consistency Models"). SD_SEMANTICS §8.8. Its timesteps ignore
// timestep_spacing and steps_offset.
type lcm[V any] struct {
	base
	ops Ops[V]
}

// SetTimesteps picks n of the distillation timesteps
// origin = [k·j − 1 for j = 1..original_inference_steps] (k = T //
// original_inference_steps), reversed, at indices
// floor(linspace(0, len(origin), n, endpoint=False)).
func (l *lcm[V]) SetTimesteps(n int) error {
	if err := l.checkN(n); err != nil {
		return err
	}
	orig := l.p.OriginalInferenceSteps
	if n > orig {
		return fmt.Errorf("sched: LCMScheduler: %d inference steps exceed original_inference_steps=%d", n, orig)
	}
	k := l.p.NumTrainTimesteps / orig
	origin := make([]float64, orig)
	for j := 1; j <= orig; j++ {
		origin[orig-j] = float64(j*k - 1)
	}
	idx := numpyLinspaceOpen(0, float64(orig), n)
	ts := make([]float64, n)
	for i, v := range idx {
		ts[i] = origin[int(math.Floor(v))]
	}
	l.n, l.timesteps = n, ts
	l.resetSteps()
	return nil
}

func (l *lcm[V]) NoiseCoeffs(i int) (float32, float32) { return l.ddpmNoiseCoeffs(l.timestepInt(i)) }

func (l *lcm[V]) ScaleModelInput(sample V, i int) V { return l.ops.Keep(sample) }

func (l *lcm[V]) AddNoise(x, noise V, i int) V {
	a, b := l.NoiseCoeffs(i)
	return l.ops.LinComb([]float32{a, b}, x, noise)
}

func (l *lcm[V]) Release() {}

// BoundaryScalings returns LCM's consistency boundary condition at
// timestep t (get_scalings_for_boundary_condition_discrete, σ_data = 0.5):
// c_skip = 0.25/((s·t)² + 0.25), c_out = s·t/√((s·t)² + 0.25), with s =
// timestep_scaling, in float32.
func BoundaryScalings(t float64, scaling float64) (cSkip, cOut float32) {
	st := float32(t) * float32(scaling)
	cSkip = 0.25 / (st*st + 0.25)
	cOut = st / sqrt32(st*st+0.25)
	return cSkip, cOut
}

// Step is LCMScheduler.step: x0 as in DDIM (clipped if clip_sample),
// denoised = c_out·x0 + c_skip·x, and unless this is the last of the n
// steps x_prev = √ᾱ_prev·denoised + √(1−ᾱ_prev)·noise with ᾱ_prev at the
// next listed timestep; at the last step x_prev = denoised and no noise is
// drawn. Result.Denoised is what the LCM pipeline decodes.
func (l *lcm[V]) Step(out, x V, i int) (Result[V], error) {
	var r Result[V]
	if err := l.beginStep(i, l.ops.Len(out), l.ops.Len(x)); err != nil {
		return r, err
	}
	t := l.timestepInt(i)
	prevT := t
	if i+1 < len(l.timesteps) {
		prevT = l.timestepInt(i + 1)
	}
	at := l.s.alphasCumprod[t]
	ap := l.alphaAt(prevT, l.finalAlpha())
	cSkip, cOut := BoundaryScalings(float64(t), l.p.TimestepScaling)
	cx, _ := predictX0Eps(l.p.PredictionType, at)
	var den V
	if l.p.ClipSample {
		x0 := lin(l.ops, tm(cx[0], x), tm(cx[1], out))
		c := l.ops.Clamp(x0, -float32(l.p.ClipSampleRange), float32(l.p.ClipSampleRange))
		l.ops.Free(x0)
		den = lin(l.ops, tm(cOut, c), tm(cSkip, x))
		l.ops.Free(c)
	} else {
		den = lin(l.ops, tm(cOut*cx[0]+cSkip, x), tm(cOut*cx[1], out))
	}
	if i == l.n-1 {
		return Result[V]{Prev: l.ops.Keep(den), Denoised: den, HasDenoised: true}, nil
	}
	noise, err := l.ops.Randn(x)
	if err != nil {
		l.ops.Free(den)
		return r, err
	}
	prev := l.ops.LinComb([]float32{sqrt32(ap), sqrt32(1 - ap)}, den, noise)
	l.ops.Free(noise)
	return Result[V]{Prev: prev, Denoised: den, HasDenoised: true}, nil
}
