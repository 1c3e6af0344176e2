package unet

import (
	"math"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// TimestepSinusoid computes diffusers' get_timestep_embedding
// (embeddings.py) for each timestep: [len(ts), dim] with, for
// i = 0..half−1 and half = dim/2,
//
//	freq_i = exp(−ln(10000)·i / (half − shift))
//	row    = [sin(t·freq) | cos(t·freq)], or [cos | sin] when flip is set,
//
// and a trailing zero when dim is odd. Every step is rounded to float32 in
// the order PyTorch evaluates it (t is cast to float32 first) and exp is
// PyTorch's own (expf32), so the arguments t·freq are the reference's bit
// for bit and the result differs from it by at most an ulp of sin or cos.
// (An ulp of freq would move t·freq by up to 6e-5 at t = 1000.)
func TimestepSinusoid(ts []float64, dim int, flip bool, shift float64) *tensor.Host {
	half := dim / 2
	freq := make([]float32, half)
	negLog := float32(-math.Log(10000))
	den := float32(float64(half) - shift)
	for i := range freq {
		e := negLog * float32(i)
		e = e / den
		freq[i] = expf32(e)
	}
	out := tensor.New(len(ts), dim)
	for r, t := range ts {
		row := out.Data[r*dim : (r+1)*dim]
		t32 := float32(t)
		for i, f := range freq {
			arg := float64(float32(t32 * f))
			s, c := float32(math.Sin(arg)), float32(math.Cos(arg))
			if flip {
				row[i], row[half+i] = c, s
			} else {
				row[i], row[half+i] = s, c
			}
		}
	}
	return out
}

// GuidanceScaleEmbedding is the LCM pipeline's get_guidance_scale_embedding
// (pipeline_latent_consistency_text2img.py): for each w (the pipeline
// passes guidance_scale − 1), with half = dim/2,
//
//	f_i = exp(i · −(ln(10000)/(half−1)))
//	row = [sin(1000·w·f) | cos(1000·w·f)]   (not flipped)
//
// and a trailing zero when dim is odd. The result [len(w), dim] is the
// UNet's timestep_cond (ForwardOpts.TimestepCond) for LCM-distilled UNets.
func GuidanceScaleEmbedding(w []float64, dim int) *tensor.Host {
	half := dim / 2
	step := float32(math.Log(10000)) / float32(half-1)
	freq := make([]float32, half)
	for i := range freq {
		freq[i] = expf32(float32(i) * -step)
	}
	out := tensor.New(len(w), dim)
	for r, wv := range w {
		row := out.Data[r*dim : (r+1)*dim]
		w32 := float32(wv) * 1000
		for i, f := range freq {
			arg := float64(float32(w32 * f))
			row[i] = float32(math.Sin(arg))
			row[half+i] = float32(math.Cos(arg))
		}
	}
	return out
}

// TimestepEmbedding is diffusers' TimestepEmbedding (embeddings.py):
// linear_2(SiLU(linear_1(x + cond_proj(cond)))), where cond_proj (a Linear
// without bias) exists only in LCM-distilled UNets (time_cond_proj_dim).
type TimestepEmbedding struct {
	Linear1, Linear2 *nn.Linear
	CondProj         *nn.Linear // nil without time_cond_proj_dim
}

// NewTimestepEmbedding binds linear_1 (in→dim), linear_2 (dim→dim) and, if
// condDim > 0, cond_proj (condDim→in, no bias).
func NewTimestepEmbedding(s *nn.Scope, in, dim, condDim int) *TimestepEmbedding {
	t := &TimestepEmbedding{
		Linear1: nn.NewLinear(s, "linear_1", in, dim, true),
		Linear2: nn.NewLinear(s, "linear_2", dim, dim, true),
	}
	if condDim > 0 {
		t.CondProj = nn.NewLinear(s, "cond_proj", condDim, in, false)
	}
	return t
}

// Forward maps x [R, in] (and cond [R', condDim] with R' ∈ {1, R}, or
// nil) to [R, dim].
func (t *TimestepEmbedding) Forward(b backend.Backend, x, cond backend.Tensor) backend.Tensor {
	in := x
	if cond != nil && t.CondProj != nil {
		c := t.CondProj.Forward(b, cond)
		in = b.Binary(backend.Add, x, c)
		b.Free(c)
	}
	h := t.Linear1.Forward(b, in)
	if in != x {
		b.Free(in)
	}
	a := b.Unary(backend.SiLU, h)
	b.Free(h)
	out := t.Linear2.Forward(b, a)
	b.Free(a)
	return out
}

// Release frees the layer's weights.
func (t *TimestepEmbedding) Release(b backend.Backend) {
	t.Linear1.Release(b)
	t.Linear2.Release(b)
	if t.CondProj != nil {
		t.CondProj.Release(b)
	}
}

// expf32 is e^x as PyTorch's float32 exp computes it on x86-64 with AVX2:
// SLEEF's xexpf (Sleef_expf8_u10, sleefsimdsp.c), with its fused
// multiply-adds. The range reduction x = q·ln2 + s uses ln2 split in two
// (L2U + L2L); e^s is 1 + s + s²·P(s) with SLEEF's degree-5 polynomial.
// It differs from the correctly rounded e^x by an ulp for some x, and the
// sinusoidal embeddings multiply it by up to 7000 (LCM's 1000·w), so the
// reference's exp is reproduced rather than approximated.
func expf32(x float32) float32 {
	const (
		rln2 = float32(1.442695040888963407359924681001892137426645954152985934135449406931)
		l2u  = float32(0.693145751953125)
		l2l  = float32(1.428606765330187045e-06)
	)
	if x < -104 {
		return 0
	}
	if x > 100 {
		return float32(math.Inf(1))
	}
	q := float32(math.RoundToEven(float64(x * rln2)))
	s := fma32(q, -l2u, x)
	s = fma32(q, -l2l, s)
	u := float32(0.000198527617612853646278381)
	u = fma32(u, s, 0.00139304355252534151077271)
	u = fma32(u, s, 0.00833336077630519866943359)
	u = fma32(u, s, 0.0416664853692054748535156)
	u = fma32(u, s, 0.166666671633720397949219)
	u = fma32(u, s, 0.5)
	u = 1 + fma32(float32(s*s), u, s)
	// ldexp by q (|q| ≤ 150): exact for normal results.
	return float32(math.Ldexp(float64(u), int(q)))
}

// fma32 is the float32 fused multiply-add a·b + c rounded once. The
// product of two float32 values is exact in float64; the float64 sum s
// and its error t (Knuth's TwoSum, s + t = a·b + c exactly) decide the
// float32 rounding, t breaking the tie when s lies halfway between two
// float32 values.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	s := p + float64(c)
	bv := s - p
	t := (p - (s - bv)) + (float64(c) - bv)
	r := float32(s)
	d := s - float64(r)
	if t == 0 || d == 0 {
		return r
	}
	other := math.Nextafter32(r, float32(math.Inf(1)))
	if d < 0 {
		other = math.Nextafter32(r, float32(math.Inf(-1)))
	}
	if math.Abs(float64(other)-s) == math.Abs(d) && (t > 0) == (other > r) {
		return other
	}
	return r
}
