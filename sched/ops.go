package sched

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// HostOps steps float32 slices in Go memory. Linear combinations are
// accumulated in float64 and rounded once to float32.
type HostOps struct {
	// Noise supplies Randn; nil means steps that need noise fail.
	Noise NoiseSource
}

// LinComb returns Σ coeffs[i]·vs[i].
func (h *HostOps) LinComb(coeffs []float32, vs ...[]float32) []float32 {
	if len(coeffs) != len(vs) || len(vs) == 0 {
		panic(fmt.Sprintf("sched: LinComb with %d coefficients and %d values", len(coeffs), len(vs)))
	}
	n := len(vs[0])
	for _, v := range vs[1:] {
		if len(v) != n {
			panic(fmt.Sprintf("sched: LinComb over values of %d and %d elements", n, len(v)))
		}
	}
	out := make([]float32, n)
	for j := range out {
		var acc float64
		for k, v := range vs {
			acc += float64(coeffs[k]) * float64(v[j])
		}
		out[j] = float32(acc)
	}
	return out
}

// Clamp returns v limited to [lo, hi].
func (h *HostOps) Clamp(v []float32, lo, hi float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = min(max(x, lo), hi)
	}
	return out
}

// Keep returns a copy of v (the caller may reuse its slice).
func (h *HostOps) Keep(v []float32) []float32 {
	return append([]float32(nil), v...)
}

// Randn draws the next len(like) noise values from Noise.
func (h *HostOps) Randn(like []float32) ([]float32, error) {
	if h.Noise == nil {
		return nil, fmt.Errorf("sched: this step draws noise but no generator was given (Options.Noise)")
	}
	v := h.Noise.Randn(len(like))
	if len(v) != len(like) {
		return nil, fmt.Errorf("sched: noise source returned %d values, want %d", len(v), len(like))
	}
	return v, nil
}

// Free does nothing for host slices.
func (h *HostOps) Free([]float32) {}

// Len returns len(v).
func (h *HostOps) Len(v []float32) int { return len(v) }

// BackendOps steps device tensors on a backend: every linear combination
// is one Backend.LinComb, Keep is a Reshape view (its storage is
// reference-counted), and noise is drawn on the host from Noise and
// uploaded.
type BackendOps struct {
	B     backend.Backend
	Noise NoiseSource
}

// LinComb returns Σ coeffs[i]·vs[i].
func (o *BackendOps) LinComb(coeffs []float32, vs ...backend.Tensor) backend.Tensor {
	return o.B.LinComb(coeffs, vs...)
}

// Clamp returns v limited to [lo, hi].
func (o *BackendOps) Clamp(v backend.Tensor, lo, hi float32) backend.Tensor {
	return o.B.Clamp(v, lo, hi)
}

// Keep returns a new handle sharing v's storage.
func (o *BackendOps) Keep(v backend.Tensor) backend.Tensor {
	return o.B.Reshape(v, v.Shape()...)
}

// Randn draws noise of like's shape on the host and uploads it.
func (o *BackendOps) Randn(like backend.Tensor) (backend.Tensor, error) {
	if o.Noise == nil {
		return nil, fmt.Errorf("sched: this step draws noise but no generator was given (BackendOps.Noise)")
	}
	shape := like.Shape().Clone()
	n := shape.Numel()
	v := o.Noise.Randn(n)
	if len(v) != n {
		return nil, fmt.Errorf("sched: noise source returned %d values, want %d", len(v), n)
	}
	h := &tensor.Host{Shape: shape, Data: v}
	return o.B.Upload(h), nil
}

// Free releases v.
func (o *BackendOps) Free(v backend.Tensor) { o.B.Free(v) }

// Len returns v's element count.
func (o *BackendOps) Len(v backend.Tensor) int { return v.Shape().Numel() }
