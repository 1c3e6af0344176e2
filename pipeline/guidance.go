package pipeline

import (
	"fmt"
	"math"

	"github.com/tgate-web/tgate/backend"
)

// guide combines the two halves of a guidance batch the way
// pipeline_stable_diffusion.py does: ε = ε_u + g·(ε_c − ε_u), in that
// order of float32 operations. out is [2, ...]; the result has batch 1.
// It also returns ε_c (the caller frees both) for guidance_rescale.
func guide(b backend.Backend, out backend.Tensor, g float32) (eps, cond backend.Tensor) {
	halves := backend.Chunk(b, out, 0, 2)
	diff := b.Binary(backend.Sub, halves[1], halves[0])
	scaled := b.Affine(diff, g, 0)
	eps = b.Binary(backend.Add, halves[0], scaled)
	b.Free(diff)
	b.Free(scaled)
	b.Free(halves[0])
	return eps, halves[1]
}

// rescaleNoiseCFG is diffusers' rescale_noise_cfg (Lin et al., "Common
// Diffusion Noise Schedules and Sample Steps are Flawed", §3.4):
//
//	ε_r = ε·(std(ε_c)/std(ε)),  ε ← φ·ε_r + (1−φ)·ε
//
// with std over every non-batch dimension and the unbiased (N−1) divisor,
// per batch element. The standard deviations are computed on the host in
// float64. It returns a new tensor; eps and cond are left alone.
func rescaleNoiseCFG(b backend.Backend, eps, cond backend.Tensor, phi float32) (backend.Tensor, error) {
	he, err := b.ReadBack(eps)
	if err != nil {
		return nil, err
	}
	hc, err := b.ReadBack(cond)
	if err != nil {
		return nil, err
	}
	if !he.Shape.Equal(hc.Shape) {
		return nil, fmt.Errorf("guidance rescale: shapes %v and %v differ", he.Shape, hc.Shape)
	}
	n := he.Shape[0]
	per := he.Shape.Numel() / n
	parts := make([]backend.Tensor, n)
	for i := 0; i < n; i++ {
		ratio := float32(stdDev(hc.Data[i*per:(i+1)*per]) / stdDev(he.Data[i*per:(i+1)*per]))
		row := b.Slice(eps, 0, i, i+1)
		scaled := b.Affine(row, ratio, 0)
		parts[i] = b.LinComb([]float32{phi, 1 - phi}, scaled, row)
		b.Free(scaled)
		b.Free(row)
	}
	if n == 1 {
		return parts[0], nil
	}
	res := b.Concat(0, parts...)
	for _, p := range parts {
		b.Free(p)
	}
	return res, nil
}

// stdDev is torch.std: the unbiased standard deviation.
func stdDev(x []float32) float64 {
	if len(x) < 2 {
		return math.NaN()
	}
	mean := 0.0
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	ss := 0.0
	for _, v := range x {
		d := float64(v) - mean
		ss += d * d
	}
	return math.Sqrt(ss / float64(len(x)-1))
}
