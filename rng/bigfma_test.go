package rng

import "math/big"

// bigFMA32 evaluates a·b + c exactly with big.Float and rounds it once to
// float32 (nearest, ties to even).
func bigFMA32(a, b, c float32) float32 {
	x := new(big.Float).SetPrec(200).SetFloat64(float64(a))
	y := new(big.Float).SetPrec(200).SetFloat64(float64(b))
	z := new(big.Float).SetPrec(200).SetFloat64(float64(c))
	x.Mul(x, y)
	x.Add(x, z)
	f, _ := x.Float32()
	return f
}
