package sched

import (
	"fmt"
	"github.com/tgate-web/tgate/internal/fma"
	"math"
)

// This file computes the training noise schedule shared by all schedulers
// (the __init__ of every diffusers scheduler) and the timestep lists of
// set_timesteps, reproducing PyTorch's and NumPy's float rounding.

// torchLinspaceF32 is torch.linspace(start, end, steps, dtype=float32) on
// the CPU as PyTorch 1.13's x86-64 build computes it
// (RangeFactoriesKernel.cpp::linspace_kernel): start and end are rounded to
// float32, step = (end−start)/(steps−1) in float32, and element i is
// start + step·i for i < steps/2, end − step·(steps−1−i) otherwise. The
// kernel runs vectorised over blocks of 8 while 16 elements remain: a block
// starting at i evaluates the rule above at i and adds k·step for its k-th
// element (Vectorized<float>::arange); the tail uses the rule per element.
// The kernel is compiled with FMA contraction, so every a + b·c here is a
// single-rounding fused multiply-add (verified against the betas,
// alphas_cumprod and σ values of the golden runs).
func torchLinspaceF32(startD, endD float64, steps int) []float32 {
	start, end := float32(startD), float32(endD)
	out := make([]float32, steps)
	if steps == 1 {
		out[0] = start
		return out
	}
	step := (end - start) / float32(steps-1)
	half := steps / 2
	rule := func(i int) float32 {
		if i < half {
			return fma.F32(step, float32(i), start)
		}
		return fma.F32(-step, float32(steps-i-1), end)
	}
	i := 0
	for ; i+16 <= steps; i += 8 {
		base := rule(i)
		for k := 0; k < 8; k++ {
			out[i+k] = fma.F32(float32(k), step, base)
		}
	}
	for ; i < steps; i++ {
		out[i] = rule(i)
	}
	return out
}

// betasFor returns the float32 betas of a schedule (§8.1 of the spec):
//   - linear: torch.linspace(beta_start, beta_end, T)
//   - scaled_linear: torch.linspace(√beta_start, √beta_end, T)², squared
//     in float32
//   - squaredcos_cap_v2: betas_for_alpha_bar with the cosine ᾱ(t) =
//     cos²((t+0.008)/1.008·π/2), β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999)
//     in float64, stored as float32
//
// trained_betas, when given, are used as float32 directly. With
// rescale_betas_zero_snr the result goes through rescaleZeroTerminalSNR.
func betasFor(p *Params) []float32 {
	T := p.NumTrainTimesteps
	var b []float32
	switch {
	case p.TrainedBetas != nil:
		b = make([]float32, T)
		for i, v := range p.TrainedBetas {
			b[i] = float32(v)
		}
	case p.BetaSchedule == "linear":
		b = torchLinspaceF32(p.BetaStart, p.BetaEnd, T)
	case p.BetaSchedule == "scaled_linear":
		b = torchLinspaceF32(math.Sqrt(p.BetaStart), math.Sqrt(p.BetaEnd), T)
		for i, v := range b {
			b[i] = v * v
		}
	case p.BetaSchedule == "squaredcos_cap_v2":
		abar := func(t float64) float64 {
			c := math.Cos((t + 0.008) / 1.008 * math.Pi / 2)
			return c * c
		}
		b = make([]float32, T)
		for i := range b {
			t1 := float64(i) / float64(T)
			t2 := float64(i+1) / float64(T)
			b[i] = float32(math.Min(1-abar(t2)/abar(t1), 0.999))
		}
	}
	if p.RescaleBetasZeroSNR {
		b = rescaleZeroTerminalSNR(b)
	}
	return b
}

// rescaleZeroTerminalSNR is diffusers' rescale_zero_terminal_snr (Lin et
// al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed",
// Algorithm 1), in float32 like the torch original: shift and scale √ᾱ so
// that its last value is 0 and its first is unchanged, then undo the
// cumulative product.
func rescaleZeroTerminalSNR(betas []float32) []float32 {
	n := len(betas)
	ac := cumprodF32(oneMinus(betas))
	s := make([]float32, n)
	for i, a := range ac {
		s[i] = float32(math.Sqrt(float64(a)))
	}
	s0, sT := s[0], s[n-1]
	scale := s0 / (s0 - sT)
	for i := range s {
		s[i] = float32((s[i] - sT) * scale)
	}
	abar := make([]float32, n)
	for i, v := range s {
		abar[i] = v * v
	}
	out := make([]float32, n)
	out[0] = 1 - abar[0]
	for i := 1; i < n; i++ {
		out[i] = 1 - abar[i]/abar[i-1]
	}
	return out
}

func oneMinus(b []float32) []float32 {
	a := make([]float32, len(b))
	for i, v := range b {
		a[i] = 1 - v
	}
	return a
}

// cumprodF32 is torch.cumprod on float32 CPU tensors: the running product
// is accumulated in float64 (the CPU accumulation type) and each prefix is
// stored rounded to float32.
func cumprodF32(a []float32) []float32 {
	out := make([]float32, len(a))
	acc := 1.0
	for i, v := range a {
		acc *= float64(v)
		out[i] = float32(acc)
	}
	return out
}

// noiseSchedule holds the training schedule tables of one scheduler.
type noiseSchedule struct {
	T             int
	betas         []float32
	alphasCumprod []float32 // ᾱ_t
	sigmaTable    []float32 // √((1−ᾱ_t)/ᾱ_t), float32 as torch computes it
}

func newNoiseSchedule(p *Params) *noiseSchedule {
	s := &noiseSchedule{T: p.NumTrainTimesteps}
	s.betas = betasFor(p)
	s.alphasCumprod = cumprodF32(oneMinus(s.betas))
	s.sigmaTable = make([]float32, s.T)
	for i, a := range s.alphasCumprod {
		s.sigmaTable[i] = sigmaOf(a)
	}
	return s
}

// sigmaOf is ((1 − ᾱ)/ᾱ) ** 0.5 in float32.
func sigmaOf(a float32) float32 {
	return float32(math.Sqrt(float64((1 - a) / a)))
}

// numpyLinspace is np.linspace(start, stop, num) in float64 (endpoint
// included): i·step + start with step = (stop−start)/(num−1), the last
// element set to stop exactly.
func numpyLinspace(start, stop float64, num int) []float64 {
	out := make([]float64, num)
	if num == 1 {
		out[0] = start
		return out
	}
	step := (stop - start) / float64(num-1)
	for i := range out {
		out[i] = float64(i)*step + start
	}
	out[num-1] = stop
	return out
}

// numpyLinspaceOpen is np.linspace(start, stop, num, endpoint=False).
func numpyLinspaceOpen(start, stop float64, num int) []float64 {
	out := make([]float64, num)
	step := (stop - start) / float64(num)
	for i := range out {
		out[i] = float64(i)*step + start
	}
	return out
}

// numpyArange is np.arange(start, stop, step) with float arguments as
// NumPy builds it (ctors.c PyArray_ArangeObj and the DOUBLE fill of
// arraytypes.c.src): length ceil((stop − start)/step), a[0] = start,
// a[1] = start + step, and a[k] = start + k·(a[1] − a[0]) for k ≥ 2. The
// increment a[1] − a[0] can differ from step in its last bit, which moves
// values meant to end in .5 (T − k·T/N) to either side of it before
// rounding: trailing spacing with T = 1000 and N = 48 gives 937.4999…,
// not 937.5, at k = 3.
func numpyArange(start, stop, step float64) []float64 {
	n := int(math.Ceil((stop - start) / step))
	if n <= 0 {
		return nil
	}
	out := make([]float64, n)
	out[0] = start
	if n == 1 {
		return out
	}
	out[1] = start + step
	delta := out[1] - out[0]
	for k := 2; k < n; k++ {
		out[k] = start + float64(k)*delta
	}
	return out
}

// numpyInterp is np.interp(x, arange(len(fp)), fp) for fp given as float32
// (computed in float64): fp[j] at integer points, else
// slope·(x − j) + fp[j] with slope = fp[j+1] − fp[j]; clamped at the ends.
func numpyInterp(x float64, fp []float32) float64 {
	n := len(fp)
	if x <= 0 {
		return float64(fp[0])
	}
	if x >= float64(n-1) {
		return float64(fp[n-1])
	}
	j := int(math.Floor(x))
	if float64(j) == x {
		return float64(fp[j])
	}
	slope := (float64(fp[j+1]) - float64(fp[j])) / 1.0
	return slope*(x-float64(j)) + float64(fp[j])
}

// reversedInts returns the list reversed.
func reversedFloats(a []float64) []float64 {
	out := make([]float64, len(a))
	for i, v := range a {
		out[len(a)-1-i] = v
	}
	return out
}

// spacedTimesteps computes the descending timesteps of set_timesteps for
// the spacings shared by DDIM, Euler and EulerAncestral (and, ascending
// before reversal, PNDM):
//   - leading: arange(N)·(T//N), reversed, + steps_offset
//   - trailing: round(arange(T, 0, −T/N)) − 1
//   - linspace: linspace(0, T−1, N) (DDIM rounds half to even)
//
// round is applied to linspace for integer schedulers (DDIM); Euler keeps
// the float32 values.
func spacedTimesteps(spacing string, T, N, offset int, roundLinspace bool) ([]float64, error) {
	out := make([]float64, N)
	switch spacing {
	case "leading":
		ratio := T / N
		for i := 0; i < N; i++ {
			out[N-1-i] = float64(i*ratio + offset)
		}
	case "trailing":
		// np.arange(T, 0, −T/N): its length is ceil(T/(T/N)), which is N
		// up to rounding of the ratio.
		vals := numpyArange(float64(T), 0, -float64(T)/float64(N))
		for k, v := range vals {
			vals[k] = math.RoundToEven(v) - 1
		}
		if len(vals) != N {
			return nil, fmt.Errorf("sched: trailing spacing gives %d timesteps for %d steps", len(vals), N)
		}
		copy(out, vals)
	case "linspace":
		lin := numpyLinspace(0, float64(T-1), N)
		for i, v := range lin {
			if roundLinspace {
				v = math.RoundToEven(v)
			}
			out[N-1-i] = v
		}
	default:
		return nil, fmt.Errorf("sched: unknown timestep_spacing %q (valid: leading, trailing, linspace)", spacing)
	}
	return out, nil
}

// karrasSigmas is _convert_to_karras (Karras et al. 2022, eq. 5, ρ = 7):
// (σmax^(1/ρ) + ramp·(σmin^(1/ρ) − σmax^(1/ρ)))^ρ with ramp =
// linspace(0, 1, N), in float64.
func karrasSigmas(sigmaMin, sigmaMax float64, n int) []float64 {
	const rho = 7.0
	ramp := numpyLinspace(0, 1, n)
	minInv := math.Pow(sigmaMin, 1/rho)
	maxInv := math.Pow(sigmaMax, 1/rho)
	out := make([]float64, n)
	for i, r := range ramp {
		out[i] = math.Pow(maxInv+r*(minInv-maxInv), rho)
	}
	return out
}

// sigmaToT is _sigma_to_t: the fractional training timestep whose σ is
// sigma, by linear interpolation of log σ between neighbouring table
// entries. logSigmas is np.log of the float32 table (float32). NumPy 1.x
// casts the float64 scalar log σ to float32 when it meets the float32
// array (value-based casting), so the distances and the weight w are
// float32; only t = (1−w)·low + w·high is float64 (float32 × int64).
func sigmaToT(sigma float64, logSigmas []float32) float64 {
	logSigma := float32(math.Log(math.Max(sigma, 1e-10)))
	n := len(logSigmas)
	// low = the last index whose log σ is ≤ log sigma (argmax of the
	// cumulative count), 0 when there is none, clipped to n−2.
	low := 0
	for i, ls := range logSigmas {
		if logSigma-ls >= 0 {
			low = i
		}
	}
	if low > n-2 {
		low = n - 2
	}
	high := low + 1
	lo, hi := logSigmas[low], logSigmas[high]
	w := (lo - logSigma) / (lo - hi)
	w = min(max(w, 0), 1)
	return float64(1-w)*float64(low) + float64(w)*float64(high)
}
