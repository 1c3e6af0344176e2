// Package nn builds the layers the models are made of (Linear, Conv2d,
// GroupNorm, LayerNorm, Attention, FeedForward, Embedding) from backend
// ops, and binds their weights by the checkpoint's real key names.
package nn

import (
	"fmt"
	"strings"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// Source supplies a model's stored weights by key name.
type Source interface {
	// Lookup returns the stored dtype and shape of the named tensor, or
	// ok=false if the checkpoint has no such tensor.
	Lookup(name string) (dt tensor.DType, shape tensor.Shape, ok bool)
	// Load puts the named tensor on b in its stored dtype.
	Load(b backend.Backend, name string) (backend.Tensor, error)
}

// Declarer is implemented by backends that can make a tensor from a dtype
// and shape alone, without data (the counting backend). A Scope with no
// Source uses it to build a model from its config for shape-only work.
type Declarer interface {
	Declare(dt tensor.DType, shape tensor.Shape) backend.Tensor
}

// Param records one weight a Scope bound.
type Param struct {
	Name   string
	DType  tensor.DType
	Shape  tensor.Shape
	Tensor backend.Tensor
}

// scopeState is shared by a root Scope and all its sub-scopes.
type scopeState struct {
	b     backend.Backend
	src   Source
	dtype tensor.DType // dtype of declared weights when src is nil
	// dtypeOf, when set, gives each declared weight's dtype instead.
	dtypeOf func(name string, shape tensor.Shape) tensor.DType
	err     error
	params  []Param
}

// Scope binds weights under a key prefix, in the manner of candle's
// VarBuilder: s.Sub("down_blocks.0").Tensor("conv.weight", 320, 320, 3, 3).
// The first error (a missing key, a shape that disagrees with the config)
// is sticky: later calls return nil and Err reports it, so a constructor
// checks once at the end.
type Scope struct {
	st     *scopeState
	prefix string
}

// NewScope returns a root scope loading weights from src onto b.
func NewScope(b backend.Backend, src Source) *Scope {
	return &Scope{st: &scopeState{b: b, src: src}}
}

// NewDeclaredScope returns a root scope that makes weights of the expected
// shapes and the given dtype without data, on a backend implementing
// Declarer. It builds a model from its config alone.
func NewDeclaredScope(b backend.Backend, dt tensor.DType) *Scope {
	return &Scope{st: &scopeState{b: b, dtype: dt}}
}

// NewDeclaredScopeFunc is NewDeclaredScope with a dtype per weight: dtOf
// gives it from the weight's key and shape (8-bit Linear and convolution
// weights beside 16-bit norms, for memory counts).
func NewDeclaredScopeFunc(b backend.Backend, dtOf func(name string, shape tensor.Shape) tensor.DType) *Scope {
	return &Scope{st: &scopeState{b: b, dtypeOf: dtOf}}
}

// Backend returns the backend the scope loads onto.
func (s *Scope) Backend() backend.Backend { return s.st.b }

// Sub returns the scope for a child module. Parts are joined with dots, so
// s.Sub("resnets", 1) is the prefix "resnets.1".
func (s *Scope) Sub(parts ...any) *Scope {
	p := make([]string, 0, len(parts)+1)
	if s.prefix != "" {
		p = append(p, s.prefix)
	}
	for _, x := range parts {
		p = append(p, fmt.Sprint(x))
	}
	return &Scope{st: s.st, prefix: strings.Join(p, ".")}
}

// Path returns the full key of name under this scope.
func (s *Scope) Path(name string) string {
	if s.prefix == "" {
		return name
	}
	return s.prefix + "." + name
}

// Err returns the first error any scope sharing this root met.
func (s *Scope) Err() error { return s.st.err }

// Fail records err as the scope's error unless one is already recorded.
func (s *Scope) Fail(err error) {
	if s.st.err == nil {
		s.st.err = err
	}
}

// Params returns every weight bound so far, in binding order.
func (s *Scope) Params() []Param { return s.st.params }

// Has reports whether the checkpoint has the named tensor. A declared
// scope has nothing.
func (s *Scope) Has(name string) bool {
	if s.st.src == nil {
		return false
	}
	_, _, ok := s.st.src.Lookup(s.Path(name))
	return ok
}

// StoredShape returns the stored shape of the named tensor, or nil.
func (s *Scope) StoredShape(name string) tensor.Shape {
	if s.st.src == nil {
		return nil
	}
	_, sh, ok := s.st.src.Lookup(s.Path(name))
	if !ok {
		return nil
	}
	return sh
}

// Tensor binds the named weight, which must have exactly the given shape.
func (s *Scope) Tensor(name string, shape ...int) backend.Tensor {
	return s.bind(name, shape, false)
}

// TensorFlat binds the named weight and views it with the given shape. The
// stored shape may be the given shape followed by trailing 1s: a 1×1
// convolution's [C, C, 1, 1] kernel is bound as a [C, C] linear weight,
// which is how diffusers' conv and linear projections coincide (spec §3.1).
func (s *Scope) TensorFlat(name string, shape ...int) backend.Tensor {
	return s.bind(name, shape, true)
}

// Optional binds the named weight if the checkpoint has it (or, for a
// declared scope, if present is true) and returns nil otherwise.
func (s *Scope) Optional(name string, present bool, shape ...int) backend.Tensor {
	if s.st.src == nil {
		if !present {
			return nil
		}
		return s.bind(name, shape, false)
	}
	if !s.Has(name) {
		return nil
	}
	return s.bind(name, shape, false)
}

func (s *Scope) bind(name string, shape []int, flat bool) backend.Tensor {
	if s.st.err != nil {
		return nil
	}
	key := s.Path(name)
	want := tensor.Shape(shape)
	if s.st.src == nil {
		d, ok := s.st.b.(Declarer)
		if !ok {
			s.Fail(fmt.Errorf("backend %s cannot declare weights without data", s.st.b.Name()))
			return nil
		}
		dt := s.st.dtype
		if s.st.dtypeOf != nil {
			dt = s.st.dtypeOf(key, want)
		}
		t := d.Declare(dt, want.Clone())
		s.st.params = append(s.st.params, Param{Name: key, DType: dt, Shape: want.Clone(), Tensor: t})
		return t
	}
	dt, got, ok := s.st.src.Lookup(key)
	if !ok {
		s.Fail(fmt.Errorf("weight %q is missing from the checkpoint (expected shape %v)", key, want))
		return nil
	}
	if !dt.IsFloat() {
		s.Fail(fmt.Errorf("weight %q has dtype %v; want F32, F16 or BF16", key, dt))
		return nil
	}
	if !shapeMatches(got, want, flat) {
		s.Fail(fmt.Errorf("weight %q has shape %v in the checkpoint but the config implies %v", key, got, want))
		return nil
	}
	t, err := s.st.src.Load(s.st.b, key)
	if err != nil {
		s.Fail(fmt.Errorf("loading weight %q: %w", key, err))
		return nil
	}
	if flat && !got.Equal(want) {
		v := s.st.b.Reshape(t, shape...)
		s.st.b.Free(t) // the view keeps the storage alive
		t = v
	}
	s.st.params = append(s.st.params, Param{Name: key, DType: dt, Shape: got.Clone(), Tensor: t})
	return t
}

func shapeMatches(got, want tensor.Shape, flat bool) bool {
	if got.Equal(want) {
		return true
	}
	if !flat || len(got) < len(want) || !got[:len(want)].Equal(want) {
		return false
	}
	for _, d := range got[len(want):] {
		if d != 1 {
			return false
		}
	}
	return true
}
