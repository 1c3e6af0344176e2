package sched

import "fmt"

// ddim is DDIMScheduler (scheduling_ddim.py; Song et al. 2021, "Denoising
// Diffusion Implicit Models", eq. 12). SD_SEMANTICS §8.3.
type ddim[V any] struct {
	base
	ops Ops[V]
	eta float32
}

// SetTimesteps sets the spacing's timesteps (leading: arange(N)·(T//N)
// reversed + steps_offset; trailing; linspace rounded half to even).
func (d *ddim[V]) SetTimesteps(n int) error {
	if err := d.checkN(n); err != nil {
		return err
	}
	ts, err := spacedTimesteps(d.p.TimestepSpacing, d.p.NumTrainTimesteps, n, d.p.StepsOffset, true)
	if err != nil {
		return err
	}
	if err := checkIntTimesteps(d.name, ts, d.p.NumTrainTimesteps); err != nil {
		return err
	}
	d.n, d.timesteps = n, ts
	d.resetSteps()
	return nil
}

// checkIntTimesteps rejects timesteps outside the training range (a large
// steps_offset can push leading timesteps past T−1).
func checkIntTimesteps(n Name, ts []float64, T int) error {
	for _, t := range ts {
		if t < 0 || t > float64(T-1) {
			return fmt.Errorf("sched: %s: timestep %g is outside [0, %d] (check steps_offset and timestep_spacing)", n.ClassName(), t, T-1)
		}
	}
	return nil
}

func (d *ddim[V]) NoiseCoeffs(i int) (float32, float32) { return d.ddpmNoiseCoeffs(d.timestepInt(i)) }

func (d *ddim[V]) ScaleModelInput(sample V, i int) V { return d.ops.Keep(sample) }

func (d *ddim[V]) AddNoise(x, noise V, i int) V {
	a, b := d.NoiseCoeffs(i)
	return d.ops.LinComb([]float32{a, b}, x, noise)
}

func (d *ddim[V]) Release() {}

// Step is DDIMScheduler.step with use_clipped_model_output=False:
// prev_t = t − T//N (whatever the spacing), x0 and ε̂ from the model output
// (predictX0Eps), x0 clipped to ±clip_sample_range if clip_sample,
// σ = η·√((1−ᾱ_prev)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_prev)), and
// x_prev = √ᾱ_prev·x0 + √(1−ᾱ_prev−σ²)·ε̂ (+ σ·noise when η > 0).
func (d *ddim[V]) Step(out, x V, i int) (Result[V], error) {
	var r Result[V]
	if err := d.beginStep(i, d.ops.Len(out), d.ops.Len(x)); err != nil {
		return r, err
	}
	t := d.timestepInt(i)
	prevT := t - d.p.NumTrainTimesteps/d.n
	at := d.s.alphasCumprod[t]
	ap := d.alphaAt(prevT, d.finalAlpha())
	cx, ce := predictX0Eps(d.p.PredictionType, at)
	x0 := lin(d.ops, tm(cx[0], x), tm(cx[1], out))
	if d.p.ClipSample {
		c := d.ops.Clamp(x0, -float32(d.p.ClipSampleRange), float32(d.p.ClipSampleRange))
		d.ops.Free(x0)
		x0 = c
	}
	variance := (1 - ap) / (1 - at) * (1 - at/ap)
	std := d.eta * sqrt32(variance)
	dir := sqrt32(1 - ap - std*std)
	prev := lin(d.ops, tm(sqrt32(ap), x0), tm(dir*ce[0], x), tm(dir*ce[1], out))
	if d.eta > 0 {
		noise, err := d.ops.Randn(x)
		if err != nil {
			d.ops.Free(x0)
			d.ops.Free(prev)
			return r, err
		}
		p2 := d.ops.LinComb([]float32{1, std}, prev, noise)
		d.ops.Free(prev)
		d.ops.Free(noise)
		prev = p2
	}
	return Result[V]{Prev: prev, Denoised: x0, HasDenoised: true}, nil
}
