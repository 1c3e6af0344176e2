package fma

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// exact rounds a·b + c computed exactly (math/big) to float32 with
// round-to-nearest-even: the definition of a single-rounding FMA.
func exact(a, b, c float32) float32 {
	x := new(big.Float).SetPrec(0).SetFloat64(float64(a))
	x.SetPrec(200).Mul(x, new(big.Float).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetPrec(200).SetFloat64(float64(c)))
	f, _ := x.Float32()
	return f
}

func TestF32MatchesExactRounding(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	// (1+2⁻¹²)² = 1 + 2⁻¹¹ + 2⁻²⁴ is exactly halfway between two float32
	// values; a tiny c decides the side. Rounding to float64 first loses c
	// and then ties to even: the double rounding F32 must avoid.
	cases := [][3]float32{
		{1 + 0x1p-12, 1 + 0x1p-12, 0x1p-80}, {1 + 0x1p-12, 1 + 0x1p-12, -0x1p-80},
		{-(1 + 0x1p-12), 1 + 0x1p-12, 0x1p-80},
		{1 + 0x1p-23, 1 + 0x1p-23, -1}, {1.5, 1 + 0x1p-23, 0x1p-25}, {3, 1.0 / 3, -1},
	}
	// Random operands, with c near −a·b so that the sum's low bits matter.
	for i := 0; i < 200000; i++ {
		a := math.Float32frombits(r.Uint32() & 0xbfffffff)
		b := math.Float32frombits(r.Uint32() & 0xbfffffff)
		c := -a * b * (1 + float32(r.NormFloat64())*0x1p-20)
		cases = append(cases, [3]float32{a, b, c})
	}
	for _, k := range cases {
		a, b, c := k[0], k[1], k[2]
		if math.IsInf(float64(a*b), 0) || math.IsNaN(float64(a*b)) {
			continue
		}
		if got, want := F32(a, b, c), exact(a, b, c); math.Float32bits(got) != math.Float32bits(want) && !(got == 0 && want == 0) {
			t.Fatalf("F32(%g, %g, %g) = %g, want %g", a, b, c, got, want)
		}
	}
}
