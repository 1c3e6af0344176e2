package rng

import (
	"math"

	"github.com/tgate-web/tgate/internal/fma"
)

// This file ports, lane by lane, the single-precision log and sincos of
// aten/src/ATen/native/cpu/avx_mathfun.h (Giovanni Garberoglio's AVX port of
// Julien Pommier's sse_mathfun, itself Cephes' logf/sinf/cosf). PyTorch's
// AVX2 randn kernel (normal_fill_16_AVX2) uses them, so reproducing
// torch.randn bit for bit needs their exact rounding, not libm's.
//
// The kernel is compiled with FMA enabled, and GCC contracts a vector
// multiply whose only uses are additions into a fused multiply-add. The
// fused steps are written here with fma.F32; every other product is rounded
// to float32 explicitly (a float32 conversion forbids the Go compiler from
// fusing it on its own).

const (
	cephesSQRTHF = float32(0.707106781186547524)
	cephesLogP0  = float32(7.0376836292e-2)
	cephesLogP1  = float32(-1.1514610310e-1)
	cephesLogP2  = float32(1.1676998740e-1)
	cephesLogP3  = float32(-1.2420140846e-1)
	cephesLogP4  = float32(+1.4249322787e-1)
	cephesLogP5  = float32(-1.6668057665e-1)
	cephesLogP6  = float32(+2.0000714765e-1)
	cephesLogP7  = float32(-2.4999993993e-1)
	cephesLogP8  = float32(+3.3333331174e-1)
	cephesLogQ1  = float32(-2.12194440e-4)
	cephesLogQ2  = float32(0.693359375)

	cephesDP1   = float32(-0.78515625)
	cephesDP2   = float32(-2.4187564849853515625e-4)
	cephesDP3   = float32(-3.77489497744594108e-8)
	sincofP0    = float32(-1.9515295891e-4)
	sincofP1    = float32(8.3321608736e-3)
	sincofP2    = float32(-1.6666654611e-1)
	coscofP0    = float32(2.443315711809948e-005)
	coscofP1    = float32(-1.388731625493765e-003)
	coscofP2    = float32(4.166664568298827e-002)
	cephesFOPI  = float32(1.27323954473516) // 4/π
	minNormPos  = float32(1.17549435e-38)   // bits 0x00800000
	mantMaskInv = ^uint32(0x7f800000)
)

// logCephes computes log256_ps for one lane: natural log of x > 0.
func logCephes(x float32) float32 {
	if !(x > 0) {
		return float32(math.NaN())
	}
	if x < minNormPos {
		x = minNormPos
	}
	bits := math.Float32bits(x)
	imm0 := int32(bits >> 23)
	x = math.Float32frombits(bits&mantMaskInv | math.Float32bits(0.5))
	imm0 -= 0x7f
	e := float32(imm0)
	e = e + 1
	var tmp float32
	mask := x < cephesSQRTHF
	if mask {
		tmp = x
	}
	x = x - 1
	if mask {
		e = e - 1
	}
	x = x + tmp

	z := float32(x * x)
	y := fma.F32(cephesLogP0, x, cephesLogP1)
	y = fma.F32(y, x, cephesLogP2)
	y = fma.F32(y, x, cephesLogP3)
	y = fma.F32(y, x, cephesLogP4)
	y = fma.F32(y, x, cephesLogP5)
	y = fma.F32(y, x, cephesLogP6)
	y = fma.F32(y, x, cephesLogP7)
	y = fma.F32(y, x, cephesLogP8)
	y = float32(y * x)
	// y = y*z + e*q1: the first product in statement order is the fused one.
	y = fma.F32(y, z, float32(e*cephesLogQ1))
	y = fma.F32(-z, 0.5, y)
	x = x + y
	x = fma.F32(e, cephesLogQ2, x)
	return x
}

// sincosCephes computes sincos256_ps for one lane.
func sincosCephes(x float32) (s, c float32) {
	signSin := math.Float32bits(x) & 0x80000000
	x = float32(math.Abs(float64(x)))
	y := float32(x * cephesFOPI)
	imm2 := int32(y) // truncation, as cvttps
	imm2 = (imm2 + 1) &^ 1
	y = float32(imm2)
	imm4 := imm2
	swapSin := uint32(imm2&4) << 29
	polyMask := imm2&2 == 0

	x = fma.F32(y, cephesDP1, x)
	x = fma.F32(y, cephesDP2, x)
	x = fma.F32(y, cephesDP3, x)

	imm4 -= 2
	signCos := uint32(^imm4&4) << 29
	signSin ^= swapSin

	z := float32(x * x)
	yc := fma.F32(coscofP0, z, coscofP1)
	yc = fma.F32(yc, z, coscofP2)
	yc = float32(yc * z)
	yc = fma.F32(yc, z, -float32(z*0.5))
	yc = yc + 1

	ys := fma.F32(sincofP0, z, sincofP1)
	ys = fma.F32(ys, z, sincofP2)
	ys = float32(ys * z)
	ys = fma.F32(ys, x, x)

	var sv, cv float32
	if polyMask {
		sv, cv = ys, yc
	} else {
		sv, cv = yc, ys
	}
	s = math.Float32frombits(math.Float32bits(sv) ^ signSin)
	c = math.Float32frombits(math.Float32bits(cv) ^ signCos)
	return s, c
}
