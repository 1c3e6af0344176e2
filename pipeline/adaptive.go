package pipeline

import (
	"fmt"
	"math"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// adaptiveGuidance is Adaptive Guidance (Castillo et al., "Adaptive
// Guidance: Training-free Acceleration of Conditional Diffusion Models",
// arXiv 2312.12487, §4): after each guided step it measures the cosine
// similarity of the conditional and unconditional noise predictions; once
// it exceeds the threshold γ̄, classifier-free guidance stops for the
// remaining steps and the UNet runs on the conditional half alone
// (batch 1, the prompt's embeddings), its output used directly.
type adaptiveGuidance struct {
	threshold float64
	// stoppedAt is the 0-based step whose similarity exceeded the
	// threshold (its own update was still guided); -1 while guiding.
	stoppedAt int
	// last is the similarity measured at the latest guided step (NaN when
	// the step was not guided).
	last float64
}

// newAdaptiveGuidance returns nil when γ̄ is 0 (off) or when the run has
// no classifier-free guidance (cfg false). γ̄ must lie in (0, 1]; 1 never
// stops (a cosine similarity never exceeds 1). It runs on the SD 1.x/2.x
// pipeline (kind StableDiffusion) without T-GATE.
func newAdaptiveGuidance(threshold float64, kind Kind, cfg, tgate bool) (*adaptiveGuidance, error) {
	if threshold == 0 {
		return nil, nil
	}
	if !(threshold > 0 && threshold <= 1) {
		return nil, fmt.Errorf("pipeline: adaptive guidance threshold %g is outside (0, 1] (0 turns it off)", threshold)
	}
	if kind != StableDiffusion {
		return nil, fmt.Errorf("pipeline: adaptive guidance runs on the %s pipeline, not %s; leave it at 0", StableDiffusion, kind)
	}
	if tgate {
		return nil, fmt.Errorf("pipeline: adaptive guidance and T-GATE both end classifier-free guidance early; enable one of them")
	}
	if !cfg {
		return nil, nil
	}
	return &adaptiveGuidance{threshold: threshold, stoppedAt: -1, last: math.NaN()}, nil
}

// guiding reports whether step i still runs classifier-free guidance.
func (a *adaptiveGuidance) guiding() bool { return a == nil || a.stoppedAt < 0 }

// observe measures the similarity of the guidance batch out [2, ...]
// (unconditional first) at step i and stops guidance when it exceeds the
// threshold.
func (a *adaptiveGuidance) observe(b backend.Backend, out backend.Tensor, i int) error {
	if a == nil {
		return nil
	}
	h, err := b.ReadBack(out)
	if err != nil {
		return err
	}
	a.last = halvesCosine(h)
	if a.guiding() && a.last > a.threshold {
		a.stoppedAt = i
	}
	return nil
}

// similarity returns the latest step's measurement and forgets it.
func (a *adaptiveGuidance) similarity() float64 {
	if a == nil {
		return math.NaN()
	}
	s := a.last
	a.last = math.NaN()
	return s
}

// step reports the 1-based step whose similarity ended guidance, or 0.
func (a *adaptiveGuidance) step() int {
	if a == nil || a.stoppedAt < 0 {
		return 0
	}
	return a.stoppedAt + 1
}

// halvesCosine is the cosine similarity, in float64 over every element,
// of the two batch halves of h (unconditional, conditional).
func halvesCosine(h *tensor.Host) float64 {
	n := len(h.Data) / 2
	return cosineSimilarity(h.Data[:n], h.Data[n:2*n])
}

// cosineSimilarity is Σuv / (‖u‖·‖v‖) in float64 (0 when either vector
// is zero).
func cosineSimilarity(u, v []float32) float64 {
	var uv, uu, vv float64
	for i := range u {
		x, y := float64(u[i]), float64(v[i])
		uv += x * y
		uu += x * x
		vv += y * y
	}
	if uu == 0 || vv == 0 {
		return 0
	}
	return uv / math.Sqrt(uu*vv)
}
