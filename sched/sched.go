// Package sched implements the diffusion schedulers of diffusers v0.30.3
// that Stable Diffusion, LCM and PixArt pipelines use: DDIM, PNDM (PLMS),
// Euler, Euler ancestral, DPM-Solver++ (multistep) and LCM, with the
// epsilon, v_prediction and sample parameterisations, the linear,
// scaled_linear and squaredcos_cap_v2 beta schedules and the leading,
// trailing and linspace timestep spacings. The formulas are those of
// ../shared/spec/SD_SEMANTICS.md §8 and the diffusers files named on each
// type.
//
// A scheduler is built from a scheduler_config.json with the from_config
// rule (see Config) and a Name. Its schedule (timesteps, sigmas, input
// scaling) is plain data; its Step is written once, against Ops, as linear
// combinations of latent-shaped values, so the same code steps float32
// host slices (New, HostOps) or device tensors (NewStepper with
// BackendOps, where every update is one backend.LinComb).
//
// Every denoiser evaluation has an index i into Timesteps(); Step(i) must
// be called for consecutive i (the first call may start later, for
// image-to-image). PNDM evaluates the denoiser N+1 times for N steps
// (the PLMS warm-up repeats one timestep), so len(Timesteps()) can exceed
// NumInferenceSteps().
package sched

import "fmt"

// Ops is the arithmetic a scheduler step needs on latent-shaped values of
// type V. Values returned by Ops are owned by the scheduler until it hands
// them to the caller in a Result; values passed into Step stay owned by the
// caller (the scheduler keeps its own reference through Keep when it needs
// one later).
type Ops[V any] interface {
	// LinComb returns a new value Σ coeffs[i]·vs[i].
	LinComb(coeffs []float32, vs ...V) V
	// Clamp returns a new value with every element limited to [lo, hi].
	Clamp(v V, lo, hi float32) V
	// Keep returns a reference to v that stays valid after the caller
	// frees or reuses v.
	Keep(v V) V
	// Randn returns a new standard-normal value shaped like `like`, the
	// next draw of the pipeline's generator (diffusers' randn_tensor).
	Randn(like V) (V, error)
	// Free releases a value obtained from LinComb, Clamp, Keep or Randn.
	Free(v V)
	// Len returns the number of elements of v, for shape checks.
	Len(v V) int
}

// Result is what one Step produces. The caller owns both values (and frees
// them, for device values).
type Result[V any] struct {
	// Prev is the sample for the next evaluation (prev_sample).
	Prev V
	// Denoised is the model's estimate of the clean sample at this step:
	// pred_original_sample, or LCM's boundary-condition "denoised" (which
	// the LCM pipeline decodes instead of the final latents). It is set
	// when HasDenoised is true; PNDM never forms one.
	Denoised    V
	HasDenoised bool
}

// Scheduler is the data side of a scheduler: the schedule for a number of
// inference steps and what the pipeline does around each evaluation.
type Scheduler interface {
	// Name returns which scheduler this is.
	Name() Name
	// Params returns the resolved constructor arguments.
	Params() Params
	// SetTimesteps prepares the schedule for n inference steps and resets
	// all stepping state (set_timesteps).
	SetTimesteps(n int) error
	// NumInferenceSteps returns the n of the last SetTimesteps.
	NumInferenceSteps() int
	// Timesteps returns the timestep passed to the denoiser at each
	// evaluation, in order. Values are integers for DDIM, PNDM, DPM-Solver
	// and LCM, and float32 values (possibly fractional) for the Euler
	// schedulers, which the denoiser receives as they are.
	Timesteps() []float64
	// Sigmas returns the σ schedule with its final entry (len
	// len(Timesteps())+1) for the σ-based schedulers (Euler, Euler
	// ancestral, DPM-Solver), or nil.
	Sigmas() []float32
	// InitNoiseSigma is the factor the initial N(0, I) latents are
	// multiplied by (init_noise_sigma).
	InitNoiseSigma() float32
	// InputScale returns the factor scale_model_input applies to the sample
	// before evaluation i (1/√(σ_i²+1) for Euler, 1 otherwise).
	InputScale(i int) float32
	// NoiseCoeffs returns (a, b) such that add_noise(x, noise) at
	// evaluation i is a·x + b·noise (image-to-image start).
	NoiseCoeffs(i int) (a, b float32)
	// Order is the diffusers class attribute `order` (1 for all these).
	Order() int
}

// Stepper is a Scheduler that can step values of type V.
type Stepper[V any] interface {
	Scheduler
	// Step consumes the (guided) model output of evaluation i and the
	// sample it was evaluated at, and returns the next sample.
	Step(modelOutput, sample V, i int) (Result[V], error)
	// ScaleModelInput returns scale_model_input(sample) for evaluation i as
	// a new value.
	ScaleModelInput(sample V, i int) V
	// AddNoise returns add_noise(original, noise) at evaluation i as a new
	// value.
	AddNoise(original, noise V, i int) V
	// Release frees the values the scheduler keeps between steps (PLMS and
	// multistep history). SetTimesteps also releases them.
	Release()
}

// Options are construction choices that are not part of a scheduler
// config.
type Options struct {
	// TimestepSpacing, when not empty, overrides timestep_spacing
	// (leading, trailing, linspace) as an explicit from_config argument.
	TimestepSpacing string
	// Eta is DDIM's η (0: deterministic; 1: DDPM-like). Noise is drawn
	// from the generator when η > 0.
	Eta float32
	// Noise is the generator of the host stepper built by New (one
	// Randn(n) per noise draw). Steps that need noise fail without it.
	Noise NoiseSource
}

// NoiseSource produces standard-normal float32 noise; *rng.Torch is one.
type NoiseSource interface {
	Randn(n int) []float32
}

// New builds the host stepper `name` from cfg the way
// diffusers' <Class>.from_config(cfg) does, stepping []float32 values with
// noise drawn from opt.Noise. cfg may be nil (class defaults).
func New(name Name, cfg *Config, opt Options) (Stepper[[]float32], error) {
	return NewStepper[[]float32](name, cfg, opt, &HostOps{Noise: opt.Noise})
}

// NewStepper builds scheduler `name` from cfg (see New) over the given Ops.
func NewStepper[V any](name Name, cfg *Config, opt Options, ops Ops[V]) (Stepper[V], error) {
	if ops == nil {
		return nil, fmt.Errorf("sched: NewStepper needs Ops")
	}
	if opt.TimestepSpacing != "" {
		cfg = cfg.Clone()
		if err := cfg.Set("timestep_spacing", opt.TimestepSpacing); err != nil {
			return nil, err
		}
	}
	p, err := ResolveParams(name, cfg)
	if err != nil {
		return nil, err
	}
	if opt.Eta < 0 {
		return nil, fmt.Errorf("sched: eta must be ≥ 0, got %g", opt.Eta)
	}
	b := newBase(name, p)
	if p.RescaleBetasZeroSNR && (name == Euler || name == EulerAncestral || name == DPMSolver) {
		// These classes keep the first σ finite by setting the last ᾱ to
		// 2⁻²⁴ instead of 0.
		T := p.NumTrainTimesteps
		b.s.alphasCumprod[T-1] = 1.0 / (1 << 24)
		b.s.sigmaTable[T-1] = sigmaOf(b.s.alphasCumprod[T-1])
	}
	switch name {
	case DDIM:
		return &ddim[V]{base: b, ops: ops, eta: opt.Eta}, nil
	case PNDM:
		return &pndm[V]{base: b, ops: ops}, nil
	case Euler:
		return &euler[V]{base: b, ops: ops}, nil
	case EulerAncestral:
		return &euler[V]{base: b, ops: ops, ancestral: true}, nil
	case DPMSolver:
		return &dpm[V]{base: b, ops: ops}, nil
	case LCM:
		return &lcm[V]{base: b, ops: ops}, nil
	}
	_, err = ParseName(string(name))
	return nil, err
}

// NameFromConfig returns the scheduler named by cfg's _class_name (the
// scheduler a pipeline uses when none is chosen).
func NameFromConfig(cfg *Config) (Name, error) {
	if cfg == nil || cfg.ClassName == "" {
		return "", fmt.Errorf("sched: config has no _class_name")
	}
	n, err := ParseName(cfg.ClassName)
	if err != nil {
		return "", fmt.Errorf("sched: %s: scheduler class %q is not supported: %w", cfg.Source, cfg.ClassName, err)
	}
	return n, nil
}
