package lora

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// Base is a component's weights: an nn.Source that can list its keys
// (hub.Component is one).
type Base interface {
	nn.Source
	Names() []string
}

// Source is a component's weights with LoRA updates fused in: the weights
// a Plan changes are updated on the device and bound as F32; every other
// weight comes from the base unchanged (straight to the device where the
// base can do that). It forwards
// DecodeConfig to the base, so it stands in for a hub.Component wherever a
// model loader takes one.
type Source struct {
	base Base
	plan *Plan
}

// NewSource resolves layers against base's keys for component (see
// Resolve) and returns the patched source. Nothing is read yet.
func NewSource(base Base, component string, layers []Layer) (*Source, error) {
	plan, err := Resolve(component, base.Names(), base, layers)
	if err != nil {
		return nil, err
	}
	return &Source{base: base, plan: plan}, nil
}

// Plan returns the weights the source changes and how.
func (s *Source) Plan() *Plan { return s.plan }

// Names lists the base's keys.
func (s *Source) Names() []string { return s.base.Names() }

// Lookup reports a changed weight as F32 with its base shape, any other as
// the base stores it.
func (s *Source) Lookup(name string) (tensor.DType, tensor.Shape, bool) {
	dt, shape, ok := s.base.Lookup(name)
	if ok && s.plan.Terms[name] != nil {
		dt = tensor.F32
	}
	return dt, shape, ok
}

// Load puts the named weight on b: W + Σ coef·up @ down for a changed
// weight (F32), the base's own tensor otherwise.
//
// The update is computed on b: the base weight goes to the device as the
// base stores it (straight from the file where the base can), the terms'
// factors are stacked into one [out, Σr] by [Σr, in·kh·kw] product with
// the coefficients folded into the up rows, and the product is added to
// the weight. Only the small LoRA factors pass through host memory.
func (s *Source) Load(b backend.Backend, name string) (backend.Tensor, error) {
	terms := s.plan.Terms[name]
	if terms == nil {
		return s.base.Load(b, name)
	}
	w, err := s.base.Load(b, name)
	if err != nil {
		return nil, err
	}
	shape := w.Shape().Clone()
	up, down := stackTerms(terms)
	rows, cols := up.Shape[0], down.Shape[1]
	if rows*cols != shape.Numel() {
		b.Free(w)
		return nil, fmt.Errorf("lora: %s weight %q has shape %v; the update is [%d, %d]", s.plan.Component, name, shape, rows, cols)
	}
	u, d := b.Upload(up), b.Upload(down)
	delta := b.MatMul(u, d, nil, backend.MatMulOpts{})
	flat := b.Reshape(w, rows, cols)
	sum := b.Binary(backend.Add, flat, delta)
	out := b.Reshape(sum, shape...)
	for _, t := range []backend.Tensor{u, d, delta, flat, w, sum} {
		b.Free(t)
	}
	return out, b.Err()
}

// stackTerms joins the terms' factors: up [out, Σr] with each term's
// coefficient folded into its columns, down [Σr, in·kh·kw].
func stackTerms(terms []Term) (up, down *tensor.Host) {
	rows := terms[0].Module.Up.Shape[0]
	cols := terms[0].Module.Down.Shape.Numel() / terms[0].Module.Rank()
	total := 0
	for _, t := range terms {
		total += t.Module.Rank()
	}
	up, down = tensor.New(rows, total), tensor.New(total, cols)
	k := 0
	for _, t := range terms {
		r := t.Module.Rank()
		for o := range rows {
			for i := range r {
				up.Data[o*total+k+i] = float32(t.Coef * float64(t.Module.Up.Data[o*r+i]))
			}
		}
		copy(down.Data[k*cols:], t.Module.Down.Data)
		k += r
	}
	return up, down
}

// Fused returns the named weight with its updates applied, computed on
// the host in float64 (the reference for Load). b is used only when the
// base can give the weight no other way.
func (s *Source) Fused(b backend.Backend, name string) (*tensor.Host, error) {
	w, err := s.readBase(b, name)
	if err != nil {
		return nil, err
	}
	return Fuse(w, s.plan.Terms[name]), nil
}

// DecodeConfig forwards to the base's DecodeConfig (hub.Component's
// config.json).
func (s *Source) DecodeConfig(v any) error {
	c, ok := s.base.(interface{ DecodeConfig(any) error })
	if !ok {
		return fmt.Errorf("lora: the %s weights have no config", s.plan.Component)
	}
	return c.DecodeConfig(v)
}

// readBase reads a base weight as float32 on the host: with the base's
// own reader when it has one (a renaming single-file component), from its
// checkpoint (hub.Component), else through b.
func (s *Source) readBase(b backend.Backend, name string) (*tensor.Host, error) {
	switch r := s.base.(type) {
	case interface {
		ReadRaw(string) (*tensor.Raw, error)
	}:
		raw, err := r.ReadRaw(name)
		if err != nil {
			return nil, err
		}
		return raw.Float32()
	case interface {
		ReadFloat32(string) (*tensor.Host, error)
	}:
		return r.ReadFloat32(name)
	case interface {
		Checkpoint() *safetensors.Checkpoint
	}:
		if ck := r.Checkpoint(); ck != nil {
			return ck.ReadFloat32(name)
		}
	}
	t, err := s.base.Load(b, name)
	if err != nil {
		return nil, err
	}
	defer b.Free(t)
	return b.ReadBack(t)
}

// Fuse returns w + Σ coef·up @ down over terms, computed in float64 and
// rounded once to float32 (diffusers' fuse_lora: peft LoraLayer.merge
// adds get_delta_weight = (lora_B.weight @ lora_A.weight) · scaling; for
// a convolution the kernels are flattened to [r, in·kh·kw] and [out, r]).
// w is not modified.
func Fuse(w *tensor.Host, terms []Term) *tensor.Host {
	out := tensor.New(w.Shape...)
	rows := w.Shape[0]
	cols := len(w.Data) / max(rows, 1)
	workers := min(runtime.GOMAXPROCS(0), rows)
	var wg sync.WaitGroup
	for k := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acc := make([]float64, cols)
			for o := k; o < rows; o += workers {
				row := w.Data[o*cols : (o+1)*cols]
				for j, v := range row {
					acc[j] = float64(v)
				}
				for _, t := range terms {
					up, down, r := t.Module.Up.Data, t.Module.Down.Data, t.Module.Rank()
					for i := range r {
						u := t.Coef * float64(up[o*r+i])
						for j, d := range down[i*cols : (i+1)*cols] {
							acc[j] += u * float64(d)
						}
					}
				}
				dst := out.Data[o*cols : (o+1)*cols]
				for j, v := range acc {
					dst[j] = float32(v)
				}
			}
		}()
	}
	wg.Wait()
	return out
}
