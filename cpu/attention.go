package cpu

import (
	"fmt"
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
	H := opt.Heads
	fail := func(why string) {
		s := fmt.Sprintf("cpu: Attention: %s: q %v, k %v, v %v, heads %d", why, q.shape, k.shape, v.shape, H)
		if bs != nil {
			s += fmt.Sprintf(", bias %v", bs.shape)
		}
		panic(s)
	}
	if q.shape.Rank() != 3 || k.shape.Rank() != 3 || v.shape.Rank() != 3 {
		fail("q, k and v must be 3-D")
	}
	if H <= 0 {
		fail("heads must be positive")
	}
	B, Nq, Nk := q.shape[0], q.shape[1], k.shape[1]
	if k.shape[0] != B || v.shape[0] != B || v.shape[1] != Nk {
		fail("batch or key counts differ")
	}
	if q.shape[2]%H != 0 || k.shape[2] != q.shape[2] || v.shape[2]%H != 0 {
		fail("channels do not split into heads")
	}
	D, Dv := q.shape[2]/H, v.shape[2]/H
	var bb, bh int // bias strides for batch and head (0 when broadcast)
	if bs != nil {
		s := bs.shape
		if s.Rank() != 4 || s[2] != Nq || s[3] != Nk || (s[0] != 1 && s[0] != B) || (s[1] != 1 && s[1] != H) {
			fail(fmt.Sprintf("bias must be [1|%d, 1|%d, %d, %d]", B, H, Nq, Nk))
		}
		if s[1] != 1 {
			bh = Nq * Nk
		}
		if s[0] != 1 {
			bb = s[1] * Nq * Nk
		}
	}
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
