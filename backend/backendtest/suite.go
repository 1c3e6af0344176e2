// Package backendtest is the conformance suite every backend.Backend runs:
// table-driven cases for each method, with inputs drawn from a seeded
// random source and results compared against float64 references computed
// independently in reference.go.
//
// Sizes cross vector and workgroup edges (0, 1, 3, 4, 5, 63, 64, 65, 255,
// 256, 257) in the dimensions that matter for each op. The suite uses only
// testing, math and math/rand, so it runs unchanged on a native backend and
// inside a browser under js/wasm.
//
// Each failure names the case, the maximum error relative to the largest
// magnitude in the reference, the index where it occurs with both values,
// and the seed that reproduces the inputs.
package backendtest

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// DefaultSeed is the seed used when Options.Seed is 0.
const DefaultSeed = 0x5eed

// DefaultMaxWork is the work limit used when Options.MaxWork is 0: large
// enough to run every case.
const DefaultMaxWork = 1 << 24

// SmallMaxWork is a work limit for slow backends (a software GPU adapter):
// every op and every edge size still runs at least once, but the large
// matmul, convolution and attention cases are left out.
const SmallMaxWork = 1 << 17

// Options adjust a run of the suite.
type Options struct {
	// Seed is the base seed of the random inputs; each case mixes it with
	// its own name. 0 means DefaultSeed.
	Seed int64
	// MaxWork leaves out cases whose estimated work (multiply-adds for
	// matmul, convolution and attention, elements touched for the rest)
	// exceeds it. 0 means DefaultMaxWork. The cases are chosen so that
	// SmallMaxWork still covers every op and every edge size.
	MaxWork int
}

// Tolerances, as the largest allowed |got − want| divided by the largest
// |want| of the case.
const (
	tolExact       = 0    // copies: Permute, Concat, Slice, Gather, ResizeNearest, round trips
	tolElementwise = 1e-5 // Unary, Affine, Clamp, Binary, LinComb
	tolReduction   = 1e-4 // norms, Softmax, MatMul and Conv2D (K up to 585), Attention
)

// RunAll runs every case of the suite on b with the default Options.
func RunAll(t *testing.T, b backend.Backend) { Run(t, b, Options{}) }

// Run runs every case of the suite on b whose work fits opt.MaxWork, each as
// a subtest named after the op and the case.
func Run(t *testing.T, b backend.Backend, opt Options) {
	if opt.Seed == 0 {
		opt.Seed = DefaultSeed
	}
	if opt.MaxWork == 0 {
		opt.MaxWork = DefaultMaxWork
	}
	s := &suite{b: b, opt: opt}
	t.Logf("conformance suite on backend %q: seed %d, max work %d", b.Name(), opt.Seed, opt.MaxWork)
	groups := []struct {
		name string
		run  func(*testing.T, *suite)
	}{
		{"RoundTrip", testRoundTrip},
		{"UploadRaw", testUploadRaw},
		{"Memory", testMemory},
		{"Reshape", testReshape},
		{"ViewLifetime", testViewLifetime},
		{"Permute", testPermute},
		{"MatMul", testMatMul},
		{"Conv2D", testConv2D},
		{"GroupNorm", testGroupNorm},
		{"LayerNorm", testLayerNorm},
		{"RMSNorm", testRMSNorm},
		{"Softmax", testSoftmax},
		{"Attention", testAttention},
		{"Unary", testUnary},
		{"Affine", testAffine},
		{"Clamp", testClamp},
		{"Binary", testBinary},
		{"Concat", testConcat},
		{"Slice", testSlice},
		{"Split", testSplit},
		{"ResizeNearest", testResizeNearest},
		{"Gather", testGather},
		{"LinComb", testLinComb},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) { g.run(t, s) })
	}
	if s.omitted > 0 {
		t.Logf("%d cases above max work %d were left out", s.omitted, opt.MaxWork)
	}
	if err := b.Err(); err != nil {
		t.Errorf("backend error after the suite: %v", err)
	}
}

// suite is the state shared by all cases of one run.
type suite struct {
	b       backend.Backend
	opt     Options
	omitted int
}

// env is the context of one case: its random source and the tensors it
// made, which are freed when the case ends.
type env struct {
	t      *testing.T
	b      backend.Backend
	rng    *rand.Rand
	seed   int64 // Options.Seed
	owned  []backend.Tensor
	inputs []input
}

// input is an uploaded tensor and the values it must still hold when the
// case ends (ops never modify their inputs).
type input struct {
	t    backend.Tensor
	want []float32
}

// run runs f as the subtest name of t unless work exceeds the limit.
func (s *suite) run(t *testing.T, name string, work int, f func(e *env)) {
	t.Helper()
	if work > s.opt.MaxWork {
		s.omitted++
		return
	}
	t.Run(name, func(t *testing.T) {
		h := fnv.New64a()
		h.Write([]byte(t.Name()))
		e := &env{t: t, b: s.b, seed: s.opt.Seed, rng: rand.New(rand.NewSource(s.opt.Seed ^ int64(h.Sum64())))}
		defer e.cleanup()
		f(e)
		e.checkInputs()
		if err := s.b.Err(); err != nil {
			t.Fatalf("backend error: %v", err)
		}
	})
}

// cleanup frees every tensor the case made, newest first (views before
// the tensors they view).
func (e *env) cleanup() {
	for i := len(e.owned) - 1; i >= 0; i-- {
		e.b.Free(e.owned[i])
	}
	e.owned = nil
}

// checkInputs reads every uploaded input back and fails the case if an op
// changed it.
func (e *env) checkInputs() {
	for i, in := range e.inputs {
		h, err := e.b.ReadBack(in.t)
		if err != nil {
			e.t.Fatalf("ReadBack of input %d %v: %v", i, in.t.Shape(), err)
		}
		for j, v := range in.want {
			if h.Data[j] != v && !(v != v && h.Data[j] != h.Data[j]) {
				e.t.Fatalf("input %d %v was modified: element %d is %v, was %v", i, in.t.Shape(), j, h.Data[j], v)
			}
		}
	}
}

// own records t for freeing at the end of the case and returns it.
func (e *env) own(t backend.Tensor) backend.Tensor {
	e.owned = append(e.owned, t)
	return t
}

// randn returns a host tensor of normal values with the given standard
// deviation.
func (e *env) randn(std float64, shape ...int) *tensor.Host {
	h := tensor.New(shape...)
	for i := range h.Data {
		h.Data[i] = float32(e.rng.NormFloat64() * std)
	}
	return h
}

// uniform returns a host tensor of values uniform in [lo, hi).
func (e *env) uniform(lo, hi float64, shape ...int) *tensor.Host {
	h := tensor.New(shape...)
	for i := range h.Data {
		h.Data[i] = float32(lo + (hi-lo)*e.rng.Float64())
	}
	return h
}

// in uploads h as an F32 input of the case.
func (e *env) in(h *tensor.Host) backend.Tensor {
	t := e.own(e.b.Upload(h))
	e.inputs = append(e.inputs, input{t, append([]float32(nil), h.Data...)})
	return t
}

// inAs uploads h in encoding dt with UploadRaw and returns the tensor and
// the values it holds (h rounded to dt and widened back), which is what a
// reference must use.
func (e *env) inAs(h *tensor.Host, dt tensor.DType) (backend.Tensor, *tensor.Host) {
	raw := &tensor.Raw{DType: dt, Shape: h.Shape.Clone(), Bytes: make([]byte, len(h.Data)*dt.Size())}
	tensor.EncodeFloat32(raw.Bytes, h.Data, dt)
	w := tensor.New(h.Shape...)
	tensor.DecodeFloat32(w.Data, raw.Bytes, dt)
	t := e.own(e.b.UploadRaw(raw))
	if t.DType() != dt {
		e.t.Errorf("UploadRaw %v %v: tensor reports dtype %v", dt, h.Shape, t.DType())
	}
	e.inputs = append(e.inputs, input{t, w.Data})
	return t, w
}

// check reads got back and compares it with want. It fails the case when
// the shapes differ or when max|got − want| / max|want| exceeds tol (an
// absolute comparison when want is all zeros), reporting the worst index.
func (e *env) check(what string, got backend.Tensor, want *array, tol float64) {
	e.t.Helper()
	e.own(got)
	if !got.Shape().Equal(tensor.Shape(want.shape)) {
		e.t.Fatalf("%s: shape %v, want %v", what, got.Shape(), tensor.Shape(want.shape))
	}
	if got.DType() != tensor.F32 {
		e.t.Errorf("%s: result dtype %v, want F32", what, got.DType())
	}
	h, err := e.b.ReadBack(got)
	if err != nil {
		e.t.Fatalf("%s: ReadBack: %v", what, err)
	}
	if !h.Shape.Equal(tensor.Shape(want.shape)) || len(h.Data) != len(want.data) {
		e.t.Fatalf("%s: ReadBack gave shape %v with %d values, want %v", what, h.Shape, len(h.Data), tensor.Shape(want.shape))
	}
	scale := 0.0
	for _, v := range want.data {
		scale = math.Max(scale, math.Abs(v))
	}
	if scale == 0 {
		scale = 1
	}
	worst, at, bad := -1.0, -1, 0
	for i, w := range want.data {
		g := float64(h.Data[i])
		d := math.Abs(g-w) / scale
		if g != g || math.IsInf(g, 0) {
			d = math.Inf(1)
		}
		if d > tol {
			bad++
		}
		if d > worst {
			worst, at = d, i
		}
	}
	if bad > 0 {
		e.t.Errorf("%s: max error %.3g (tolerance %.3g, relative to max |ref| %.4g) at index %d %v: got %v, want %.9g; %d of %d elements out of tolerance (Options.Seed %d)",
			what, worst, tol, scale, at, unravel(at, want.shape), h.Data[at], want.data[at], bad, len(want.data), e.seed)
	}
}

// unravel returns the multi-index of flat index i in shape.
func unravel(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] > 0 {
			idx[d] = i % shape[d]
			i /= shape[d]
		}
	}
	return idx
}

// name formats a case name from its parts.
func name(format string, args ...any) string { return fmt.Sprintf(format, args...) }
