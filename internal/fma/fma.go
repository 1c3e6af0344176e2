// Package fma computes fused multiply-adds in float32 with one rounding,
// as the FMA instructions PyTorch's compiled kernels use: reproducing its
// random numbers and schedules bit for bit depends on them.
package fma

import "math"

// F32 is the single-precision fused multiply-add a·b + c, rounded once.
// The product of two float32 values is exact in float64; the sum is split
// into s + t exactly (Knuth's TwoSum), and s is rounded to float32 with t
// breaking the tie when s falls exactly halfway between two float32 values,
// which avoids the double rounding of a plain float64 FMA.
func F32(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact: 24 + 24 bits
	q := float64(c)
	s := p + q
	bb := s - p
	t := (p - (s - bb)) + (q - bb)
	r := float32(s)
	if t == 0 || float64(r) == s {
		return r
	}
	// s lies strictly between two float32 values; only an exact midpoint
	// needs t to pick the side.
	lo, hi := r, r
	if float64(r) < s {
		hi = math.Nextafter32(r, float32(math.Inf(1)))
	} else {
		lo = math.Nextafter32(r, float32(math.Inf(-1)))
	}
	mid := (float64(lo) + float64(hi)) / 2
	if s != mid {
		return r
	}
	if t > 0 {
		return hi
	}
	return lo
}
