package rng

import "math"

// NumpyRandomState reproduces numpy's legacy np.random.RandomState(seed)
// for the draws diffusers' slow tests and many reference scripts use to
// build latents: standard_normal (the polar Box-Muller method with a cached
// second value) and random_sample. It is not safe for concurrent use.
type NumpyRandomState struct {
	mt        MT19937
	gauss     float64
	haveGauss bool
}

// NewNumpyRandomState returns np.random.RandomState(seed) for an integer
// seed in [0, 2³²) (mt19937_seed: init_genrand on the seed).
func NewNumpyRandomState(seed uint32) *NumpyRandomState {
	r := &NumpyRandomState{}
	r.mt.Seed(seed)
	return r
}

// Float64 is legacy_double (genrand_res53): a 53-bit uniform in [0, 1) from
// two outputs, ((a≫5)·2²⁶ + (b≫6)) / 2⁵³.
func (r *NumpyRandomState) Float64() float64 {
	a := r.mt.Uint32() >> 5
	b := r.mt.Uint32() >> 6
	return (float64(a)*67108864.0 + float64(b)) / 9007199254740992.0
}

// Gauss is legacy_gauss: draw x1, x2 uniform in (−1, 1) until
// 0 < r² = x1² + x2² < 1, f = √(−2·ln r² / r²); return f·x2 and keep f·x1
// for the next call.
func (r *NumpyRandomState) Gauss() float64 {
	if r.haveGauss {
		r.haveGauss = false
		v := r.gauss
		r.gauss = 0
		return v
	}
	var x1, x2, r2 float64
	for {
		x1 = 2*r.Float64() - 1
		x2 = 2*r.Float64() - 1
		r2 = x1*x1 + x2*x2
		if r2 < 1 && r2 != 0 {
			break
		}
	}
	f := math.Sqrt(-2 * math.Log(r2) / r2)
	r.gauss = f * x1
	r.haveGauss = true
	return f * x2
}

// StandardNormal returns n draws of standard_normal as float64 (C order for
// any shape of n elements).
func (r *NumpyRandomState) StandardNormal(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = r.Gauss()
	}
	return out
}

// StandardNormalF32 returns standard_normal(n).astype(np.float32), the
// latents diffusers' slow tests pass to pipelines.
func (r *NumpyRandomState) StandardNormalF32(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.Gauss())
	}
	return out
}
