package rng

import (
	"fmt"
	"math"
)

// NormalKernel selects which of PyTorch's CPU kernels torch.randn runs for
// float32 tensors of 16 or more elements. Both draw the same uniforms; they
// differ in the last bits of log, sin and cos.
type NormalKernel int

const (
	// KernelAVX2 is normal_fill_AVX2, which x86-64 builds of PyTorch
	// dispatch to on any CPU with AVX2 (Cephes-style float32 log/sincos
	// evaluated with FMA). This is the default and what the reference
	// goldens were made with.
	KernelAVX2 NormalKernel = iota
	// KernelScalar is the portable normal_fill (float32 log, float64
	// cos/sin), used by builds without AVX2 such as arm64. Its results
	// depend on the platform's libm in the last bit; here Go's math is used.
	KernelScalar
)

// String names the kernel.
func (k NormalKernel) String() string {
	switch k {
	case KernelAVX2:
		return "avx2"
	case KernelScalar:
		return "scalar"
	}
	return fmt.Sprintf("NormalKernel(%d)", int(k))
}

// Torch reproduces a PyTorch CPU generator (CPUGeneratorImpl): an MT19937
// engine plus the cached second Box-Muller sample that small normal draws
// share. It is a stateful stream: successive calls continue where the last
// one stopped, exactly as successive torch.randn(..., generator=g) calls do
// (diffusers' randn_tensor draws initial latents and then, for ancestral
// samplers, one noise tensor per step from the same generator).
//
// A Torch is not safe for concurrent use.
type Torch struct {
	mt             MT19937
	seed           uint64
	nextDouble     float64
	haveNextDouble bool
	// Kernel is the float32 randn kernel for 16 or more elements.
	Kernel NormalKernel
}

// NewTorch returns the generator torch.Generator().manual_seed(seed) (or
// torch.manual_seed(seed) on the default generator). Negative Python seeds
// map to their two's-complement uint64, as in PyTorch.
func NewTorch(seed uint64) *Torch {
	g := &Torch{}
	g.ManualSeed(seed)
	return g
}

// ManualSeed resets the generator as Generator.manual_seed does: the engine
// is re-seeded with the low 32 bits of seed and any cached normal sample is
// dropped.
func (g *Torch) ManualSeed(seed uint64) {
	g.seed = seed
	g.mt.Seed(uint32(seed))
	g.haveNextDouble = false
	g.nextDouble = 0
}

// InitialSeed returns the seed last passed to ManualSeed.
func (g *Torch) InitialSeed() uint64 { return g.seed }

// Random returns the next raw 32-bit output (CPUGeneratorImpl::random).
func (g *Torch) Random() uint32 { return g.mt.Uint32() }

// Random64 returns two outputs joined high word first
// (CPUGeneratorImpl::random64, detail::make64BitsFrom32Bits).
func (g *Torch) Random64() uint64 {
	hi := uint64(g.mt.Uint32())
	lo := uint64(g.mt.Uint32())
	return hi<<32 | lo
}

// uniformFloat is at::uniform_real_distribution<float>(0, 1): the low 24
// bits of one output times 2⁻²⁴.
func (g *Torch) uniformFloat() float32 {
	return float32(g.mt.Uint32()&(1<<24-1)) * (1.0 / (1 << 24))
}

// uniformDouble is at::uniform_real_distribution<double>(0, 1): the low 53
// bits of random64() times 2⁻⁵³.
func (g *Torch) uniformDouble() float64 {
	return float64(g.Random64()&(1<<53-1)) * (1.0 / (1 << 53))
}

// normalDouble is at::normal_distribution<double>(0, 1) as PyTorch 1.13
// computes it: Box-Muller on two 53-bit uniforms, r = √(−2·ln(1−u2)),
// θ = 2π·u1, returning r·cos θ and caching r·sin θ in the generator for the
// next call.
func (g *Torch) normalDouble() float64 {
	if g.haveNextDouble {
		g.haveNextDouble = false
		return g.nextDouble
	}
	u1 := g.uniformDouble()
	u2 := g.uniformDouble()
	r := math.Sqrt(-2 * math.Log(1-u2))
	theta := 2 * math.Pi * u1
	g.nextDouble = r * math.Sin(theta)
	g.haveNextDouble = true
	return r * math.Cos(theta)
}

// Randn returns torch.randn(shape, generator=g) flattened in row-major
// order for a float32 tensor of n elements. Only the element count matters
// for a contiguous tensor.
func (g *Torch) Randn(n int) []float32 {
	out := make([]float32, n)
	g.RandnInto(out)
	return out
}

// RandnInto fills dst as torch.randn would fill a contiguous float32 tensor
// of len(dst) elements (normal_kernel in DistributionTemplates.h):
//   - n ≥ 16: all n slots get 24-bit uniforms; each block of 16 becomes 16
//     normals by Box-Muller, pairing slot j with slot j+8; when n is not a
//     multiple of 16, 16 fresh uniforms are drawn for the last 16 slots and
//     transformed again (overwriting the tail of the previous block).
//   - n < 16: one normal_distribution<double> draw per element, rounded to
//     float32, sharing the generator's cached second sample.
func (g *Torch) RandnInto(dst []float32) {
	n := len(dst)
	if n < 16 {
		for i := range dst {
			dst[i] = float32(g.normalDouble())
		}
		return
	}
	for i := range dst {
		dst[i] = g.uniformFloat()
	}
	fill := g.fill16
	for i := 0; i+16 <= n; i += 16 {
		fill(dst[i : i+16])
	}
	if n%16 != 0 {
		tail := dst[n-16:]
		for i := range tail {
			tail[i] = g.uniformFloat()
		}
		fill(tail)
	}
}

// fill16 turns 16 uniforms into 16 normals with the selected kernel.
func (g *Torch) fill16(d []float32) {
	if g.Kernel == KernelScalar {
		normalFill16Scalar(d)
		return
	}
	normalFill16AVX2(d)
}

// twoPiF32 is the kernel's _mm256_set1_ps(2.0f * c10::pi<double>).
var twoPiF32 = float32(2 * math.Pi)

// normalFill16AVX2 is normal_fill_16_AVX2 with mean 0 and std 1:
// u1 = 1 − d[j], u2 = d[j+8], r = √(−2·log u1), θ = 2π·u2,
// d[j] = r·cos θ, d[j+8] = r·sin θ, all in float32 with the Cephes
// log/sincos of avx_mathfun.h.
func normalFill16AVX2(d []float32) {
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		radius := float32(math.Sqrt(float64(float32(-2 * logCephes(u1)))))
		theta := float32(twoPiF32 * u2)
		s, c := sincosCephes(theta)
		d[j] = float32(radius * c)
		d[j+8] = float32(radius * s)
	}
}

// normalFill16Scalar is the portable normal_fill_16<float> with mean 0 and
// std 1. Every intermediate is declared float there, so θ = 2π·u2 is
// rounded to float32 and std::log/std::cos/std::sin resolve to their float
// overloads (approximated here by the float64 functions rounded to float32).
func normalFill16Scalar(d []float32) {
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		lg := float32(math.Log(float64(u1)))
		radius := float32(math.Sqrt(float64(float32(-2 * lg))))
		theta := float32(2 * math.Pi * float64(u2))
		c := float32(math.Cos(float64(theta)))
		s := float32(math.Sin(float64(theta)))
		d[j] = float32(radius * c)
		d[j+8] = float32(radius * s)
	}
}

// Rand returns torch.rand(n, generator=g) for float32: each element is the
// low 24 bits of one output times 2⁻²⁴ (uniform_kernel).
func (g *Torch) Rand(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = g.uniformFloat()
	}
	return out
}

// RandnFloat64 returns torch.randn(n, dtype=torch.float64, generator=g):
// normal_fill<double> on 53-bit uniforms for n ≥ 16, otherwise
// normal_distribution<double> per element.
func (g *Torch) RandnFloat64(n int) []float64 {
	out := make([]float64, n)
	if n < 16 {
		for i := range out {
			out[i] = g.normalDouble()
		}
		return out
	}
	for i := range out {
		out[i] = g.uniformDouble()
	}
	for i := 0; i+16 <= n; i += 16 {
		normalFill16Double(out[i : i+16])
	}
	if n%16 != 0 {
		tail := out[n-16:]
		for i := range tail {
			tail[i] = g.uniformDouble()
		}
		normalFill16Double(tail)
	}
	return out
}

// normalFill16Double is normal_fill_16<double> with mean 0 and std 1.
func normalFill16Double(d []float64) {
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		radius := math.Sqrt(-2 * math.Log(u1))
		theta := float64(float32(2.0)) * math.Pi * u2
		d[j] = radius * math.Cos(theta)
		d[j+8] = radius * math.Sin(theta)
	}
}
