package cpu

import (
	"math"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// Attention computes softmax(q·kᵀ·scale + bias)·v for every head (diffusers
// AttnProcessor2_0, transformers eager attention). q is [B, Nq, H·D], k is
// [B, Nk, H·D], v is [B, Nk, H·Dv]; head h reads channels [h·D, (h+1)·D).
// bias is [Bb, Hb, Nq, Nk] with Bb ∈ {1, B}, Hb ∈ {1, H}. Each query row is
// computed independently in float64: the scores, their softmax and the
// weighted sum of value rows.
func (b *Backend) Attention(qt, kt, vt, biasT backend.Tensor, opt backend.AttentionOpts) backend.Tensor {
	q, k, v, bs := get("Attention", qt), get("Attention", kt), get("Attention", vt), getOpt("Attention", biasT)
	g, err := backend.AttentionShape(q.shape, k.shape, v.shape, shapeOf(bs), opt.Heads)
	if err != nil {
		panic("cpu: " + err.Error())
	}
	B, Nq, Nk, H, D, Dv := g.B, g.Nq, g.Nk, g.Heads, g.D, g.Dv
	bb, bh := g.BiasBatchStride, g.BiasHeadStride
	scale := float64(opt.Scale)
	if opt.Scale == 0 {
		scale = 1 / math.Sqrt(float64(D))
	}
	out := b.alloc(tensor.Shape{B, Nq, H * Dv})
	qd, kd, vd, od := q.data(), k.data(), v.data(), out.data()
	var bd []float32
	if bs != nil {
		bd = bs.data()
	}
	parallelFor(B*H*Nq, Nk*(D+Dv+4), func(lo, hi int) {
		p := make([]float64, Nk)
		acc := make([]float64, Dv)
		for r := lo; r < hi; r++ {
			bi, h, i := r/(H*Nq), r/Nq%H, r%Nq
			qr := qd[(bi*Nq+i)*H*D+h*D:][:D]
			m := math.Inf(-1)
			for j := 0; j < Nk; j++ {
				s := dot(qr, kd[(bi*Nk+j)*H*D+h*D:][:D]) * scale
				if bd != nil {
					s += float64(bd[bi*bb+h*bh+i*Nk+j])
				}
				p[j] = s
				m = math.Max(m, s)
			}
			var sum float64
			for j := range p {
				p[j] = math.Exp(p[j] - m)
				sum += p[j]
			}
			clear(acc)
			for j, pj := range p {
				vr := vd[(bi*Nk+j)*H*Dv+h*Dv:][:Dv]
				for c, x := range vr {
					acc[c] += pj * float64(x)
				}
			}
			o := od[(bi*Nq+i)*H*Dv+h*Dv:][:Dv]
			for c := range o {
				o[c] = float32(acc[c] / sum)
			}
		}
	})
	return out
}
