package sched

import (
	"fmt"
	"math"
)

// base holds what every scheduler shares: its parameters, training
// schedule, the current inference schedule and the step counter.
type base struct {
	name Name
	p    Params
	s    *noiseSchedule

	n              int       // inference steps (0 before SetTimesteps)
	timesteps      []float64 // one per evaluation
	sigmas         []float32 // σ-based schedulers: len(timesteps)+1
	initNoiseSigma float32
	next           int // index the next Step must have; -1 before the first
}

func newBase(name Name, p Params) base {
	return base{name: name, p: p, s: newNoiseSchedule(&p), initNoiseSigma: 1, next: -1}
}

func (b *base) Name() Name              { return b.name }
func (b *base) Params() Params          { return b.p }
func (b *base) NumInferenceSteps() int  { return b.n }
func (b *base) Order() int              { return 1 }
func (b *base) InitNoiseSigma() float32 { return b.initNoiseSigma }

// Timesteps returns a copy of the evaluation timesteps.
func (b *base) Timesteps() []float64 { return append([]float64(nil), b.timesteps...) }

// Sigmas returns a copy of the σ schedule, or nil.
func (b *base) Sigmas() []float32 {
	if b.sigmas == nil {
		return nil
	}
	return append([]float32(nil), b.sigmas...)
}

// InputScale is 1 for the schedulers whose scale_model_input is the
// identity; the Euler schedulers override it.
func (b *base) InputScale(i int) float32 { return 1 }

// AlphasCumprod returns a copy of the training schedule's ᾱ table.
func (b *base) AlphasCumprod() []float32 { return append([]float32(nil), b.s.alphasCumprod...) }

// Betas returns a copy of the training schedule's β table.
func (b *base) Betas() []float32 { return append([]float32(nil), b.s.betas...) }

// checkN validates a step count for set_timesteps.
func (b *base) checkN(n int) error {
	if n < 1 {
		return fmt.Errorf("sched: %s: number of inference steps must be at least 1, got %d", b.name.ClassName(), n)
	}
	if n > b.p.NumTrainTimesteps {
		return fmt.Errorf("sched: %s: %d inference steps exceed num_train_timesteps=%d", b.name.ClassName(), n, b.p.NumTrainTimesteps)
	}
	return nil
}

// beginStep validates the evaluation index and the two lengths, and
// advances the counter.
func (b *base) beginStep(i, lenOut, lenSample int) error {
	if b.n == 0 {
		return fmt.Errorf("sched: %s: Step before SetTimesteps", b.name.ClassName())
	}
	if i < 0 || i >= len(b.timesteps) {
		return fmt.Errorf("sched: %s: step index %d out of range [0, %d)", b.name.ClassName(), i, len(b.timesteps))
	}
	if b.next >= 0 && i != b.next {
		return fmt.Errorf("sched: %s: step %d called, expected step %d (steps must be consecutive)", b.name.ClassName(), i, b.next)
	}
	if lenOut != lenSample {
		return fmt.Errorf("sched: %s: model output has %d elements, sample has %d", b.name.ClassName(), lenOut, lenSample)
	}
	b.next = i + 1
	return nil
}

// resetSteps clears the step counter (set_timesteps).
func (b *base) resetSteps() { b.next = -1 }

// alphaAt returns ᾱ at an integer timestep, or the final value for t < 0.
func (b *base) alphaAt(t int, final float32) float32 {
	if t < 0 {
		return final
	}
	return b.s.alphasCumprod[t]
}

// finalAlpha is final_alpha_cumprod: 1 with set_alpha_to_one, else ᾱ_0.
func (b *base) finalAlpha() float32 {
	if b.p.SetAlphaToOne {
		return 1
	}
	return b.s.alphasCumprod[0]
}

// ddpmNoiseCoeffs returns (√ᾱ_t, √(1−ᾱ_t)) for add_noise at integer
// timestep t (DDPM's q(x_t|x_0), used by DDIM, PNDM and LCM).
func (b *base) ddpmNoiseCoeffs(t int) (float32, float32) {
	a := b.s.alphasCumprod[t]
	return sqrt32(a), sqrt32(1 - a)
}

// timestepInt returns evaluation i's timestep as an integer index.
func (b *base) timestepInt(i int) int { return int(b.timesteps[b.index(i)]) }

// index checks an evaluation index for the schedule queries
// (InputScale, NoiseCoeffs, ScaleModelInput, AddNoise); an index outside
// the schedule is a programming error and panics with a message saying so.
func (b *base) index(i int) int {
	if i < 0 || i >= len(b.timesteps) {
		panic(fmt.Sprintf("sched: %s: evaluation index %d outside the schedule of %d (call SetTimesteps first)", b.name.ClassName(), i, len(b.timesteps)))
	}
	return i
}

// sqrt32 is a float32 square root (torch ** 0.5 on a float32 tensor).
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// predictX0Eps converts a model output at ᾱ = a into (coefficients of) the
// clean-sample and noise predictions as linear combinations of
// (sample, modelOutput): x0 = cx[0]·x + cx[1]·m and ε = ce[0]·x + ce[1]·m
// (scheduling_ddim.py step, part 3):
//   - epsilon:      x0 = (x − √(1−a)·ε)/√a
//   - v_prediction: x0 = √a·x − √(1−a)·v, ε = √a·v + √(1−a)·x
//   - sample:       x0 = m, ε = (x − √a·x0)/√(1−a)
func predictX0Eps(pred string, a float32) (cx, ce [2]float32) {
	sa, sb := sqrt32(a), sqrt32(1-a)
	switch pred {
	case "v_prediction":
		return [2]float32{sa, -sb}, [2]float32{sb, sa}
	case "sample":
		return [2]float32{0, 1}, [2]float32{1 / sb, -sa / sb}
	}
	return [2]float32{1 / sa, -sb / sa}, [2]float32{0, 1}
}
