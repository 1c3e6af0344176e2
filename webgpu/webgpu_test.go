//go:build js && wasm

package webgpu

import (
	"errors"
	"math"
	"strings"
	"syscall/js"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/backend/backendtest"
	"github.com/tgate-web/tgate/tensor"
	"github.com/tgate-web/tgate/webgpu/gpu"
)

// kernelEntries lists every entry point the backend dispatches.
var kernelEntries = []kernel{kUnary, kBinary, kLinComb, kStrided, kResize, kGather,
	kGroupNorm, kLayerNorm, kSoftmax, kMatMul, kConv2D, kAttention}

// TestSplitDispatch reruns the conformance suite with at most two
// workgroups per dispatch dimension, so every kernel's grid is split into
// several dispatches with workgroup offsets (and flat grids are folded into
// two dimensions), and checks that each kernel did run split over several
// tiles or workgroups.
func TestSplitDispatch(t *testing.T) {
	saved := shared.maxDim
	shared.maxDim = 2
	defer func() { shared.maxDim = saved }()
	before := shared.KernelStats()
	backendtest.Run(t, shared, backendtest.Options{MaxWork: backendtest.SmallMaxWork})
	// The suite's gathers are small: one over several workgroups.
	table := tensor.New(300, 64)
	for i := range table.Data {
		table.Data[i] = float32(i)
	}
	ids := []int32{299, 0, 17, 150, 17, 3, 298, 1, 42, 99, 7, 200, 5, 6, 8, 9, 10, 11, 12, 13}
	tt := shared.Upload(table)
	got, err := shared.ReadBack(shared.Gather(tt, ids))
	if err != nil {
		t.Fatal(err)
	}
	for r, id := range ids {
		for j := range 64 {
			if want := float32(int(id)*64 + j); got.Data[r*64+j] != want {
				t.Fatalf("Gather row %d col %d = %v, want %v", r, j, got.Data[r*64+j], want)
			}
		}
	}
	shared.Free(tt)
	after := shared.KernelStats()
	for _, k := range kernelEntries {
		s := after[k.entry]
		s.Split -= before[k.entry].Split
		if s.Split == 0 {
			t.Errorf("kernel %s never ran with a split dispatch (stats %+v)", k.entry, after[k.entry])
		}
		if s.MaxGroups < 3 {
			t.Errorf("kernel %s never ran with more than %d workgroups", k.entry, s.MaxGroups)
		}
	}
}

// jsBytes copies b into a new JS Uint8Array.
func jsBytes(b []byte) js.Value {
	u := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(u, b)
	return u
}

// TestUploadJS streams an odd-length F16 tensor (14 bytes, not a multiple
// of 4) in chunks that split 32-bit words, and checks every value.
func TestUploadJS(t *testing.T) {
	vals := []float32{1, -2, 0.5, 65504, -0.000061035156, 3.140625, -7}
	raw := make([]byte, 2*len(vals))
	tensor.EncodeFloat32(raw, vals, tensor.F16)
	for _, cuts := range [][]int{{14}, {1, 13}, {3, 5, 2, 4}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {0, 7, 0, 7}} {
		w, err := shared.NewWriter(tensor.F16, tensor.Shape{7})
		if err != nil {
			t.Fatal(err)
		}
		pos := 0
		for _, n := range cuts {
			// Pass a view into a larger buffer, to exercise byteOffset.
			big := jsBytes(append(append([]byte{9, 9, 9}, raw[pos:pos+n]...), 9))
			chunk := js.Global().Get("Uint8Array").New(big.Get("buffer"), 3, n)
			if err := w.Write(chunk); err != nil {
				t.Fatalf("cuts %v: %v", cuts, err)
			}
			pos += n
		}
		x, err := w.Close()
		if err != nil {
			t.Fatalf("cuts %v: %v", cuts, err)
		}
		got, err := shared.ReadBack(x)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if got.Data[i] != v {
				t.Errorf("cuts %v: element %d = %v, want %v", cuts, i, got.Data[i], v)
			}
		}
		// The F16 tensor is read by kernels in its packed form.
		y, _ := shared.ReadBack(shared.Affine(x, 2, 1))
		for i, v := range vals {
			if want := 2*v + 1; math.Abs(float64(y.Data[i]-want)) > 1e-6*math.Abs(float64(want)) {
				t.Errorf("cuts %v: Affine element %d = %v, want %v", cuts, i, y.Data[i], want)
			}
		}
		shared.Free(x)
	}

	// A whole ArrayBuffer of BF16 through UploadJS.
	bvals := []float32{1.5, -3, 256, 0.0078125, -1e30}
	braw := make([]byte, 2*len(bvals))
	tensor.EncodeFloat32(braw, bvals, tensor.BF16)
	x, err := shared.UploadJS(tensor.BF16, tensor.Shape{5}, jsBytes(braw).Get("buffer"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := shared.ReadBack(x)
	for i := range bvals {
		if want := tensor.BF16ToF32(tensor.F32ToBF16(bvals[i])); got.Data[i] != want {
			t.Errorf("BF16 element %d = %v, want %v", i, got.Data[i], want)
		}
	}
	shared.Free(x)

	// Wrong lengths are errors naming the tensor.
	live := shared.Memory().Live
	if _, err := shared.UploadJS(tensor.F32, tensor.Shape{3}, jsBytes(make([]byte, 8))); err == nil || !strings.Contains(err.Error(), "[3]") {
		t.Errorf("short upload: error %v, want one naming shape [3]", err)
	}
	if _, err := shared.UploadJS(tensor.F32, tensor.Shape{1}, jsBytes(make([]byte, 8))); err == nil || !strings.Contains(err.Error(), "8 bytes") {
		t.Errorf("long upload: error %v, want one counting 8 bytes", err)
	}
	if m := shared.Memory().Live; m != live {
		t.Errorf("failed uploads leaked memory: Live %d, was %d", m, live)
	}
}

// TestOneSubmission records a chain of small steps (each step's output is
// the next one's input and is then freed, as in a denoising loop) and
// checks that it makes no submission until ReadBack, then exactly one, and
// that once pipelines and bind groups are cached each op costs at most
// three Go→JS calls.
func TestOneSubmission(t *testing.T) {
	b := shared
	x := b.Upload(tensor.FromData(make([]float32, 4*32), 4, 32))
	w := b.Upload(tensor.FromData(make([]float32, 32*32), 32, 32))
	g := b.Upload(tensor.FromData(make([]float32, 32), 32))
	step := func(in backend.Tensor) backend.Tensor {
		h := b.MatMul(in, w, g, backend.MatMulOpts{TransB: true})
		a := b.Unary(backend.SiLU, h)
		c := b.Binary(backend.Add, a, in)
		n := b.LayerNorm(c, g, g, 1e-5)
		for _, t := range []backend.Tensor{h, a, c, in} {
			b.Free(t)
		}
		return n
	}
	y := b.Affine(x, 1, 0)
	for range 4 { // warm the caches
		y = step(y)
	}
	if _, err := b.ReadBack(y); err != nil {
		t.Fatal(err)
	}
	s0 := b.Stats()
	for range 10 {
		y = step(y)
	}
	s1 := b.Stats()
	if s1.Submits != s0.Submits {
		t.Errorf("recording 40 ops submitted %d times, want 0 before ReadBack", s1.Submits-s0.Submits)
	}
	ops := s1.Dispatches - s0.Dispatches
	per := float64(s1.Crossings-s0.Crossings) / float64(ops)
	t.Logf("%d dispatches: %.2f Go→JS calls per op; bind groups hit %d, created %d", ops, per, s1.BindGroupHits-s0.BindGroupHits, s1.BindGroupMiss-s0.BindGroupMiss)
	if ops != 40 {
		t.Errorf("%d dispatches for 40 ops", ops)
	}
	// setPipeline, setBindGroup and dispatchWorkgroups per op, plus
	// createCommandEncoder and beginComputePass once.
	if n := s1.Crossings - s0.Crossings; n > 3*ops+2 {
		t.Errorf("%d Go→JS calls for %d ops (%.2f per op), want at most 3 per op + 2 with warm caches", n, ops, per)
	}
	if s1.BindGroupMiss != s0.BindGroupMiss {
		t.Errorf("%d bind groups created in the measured steps, want all from the cache", s1.BindGroupMiss-s0.BindGroupMiss)
	}
	if _, err := b.ReadBack(y); err != nil {
		t.Fatal(err)
	}
	if n := b.Stats().Submits - s1.Submits; n != 1 {
		t.Errorf("ReadBack submitted %d times, want 1", n)
	}
	for _, o := range []backend.Tensor{y, x, w, g} {
		b.Free(o)
	}
}

// TestShaderErrors checks that WGSL compilation errors come back as Go
// errors with positions, and pipeline errors as errors.
func TestShaderErrors(t *testing.T) {
	dev := shared.dev
	_, err := dev.CreateShaderModule("broken.wgsl", "fn f() -> f32 {\n  return 1u;\n}\n")
	var ce *gpu.CompileError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "broken.wgsl:2:") {
		t.Fatalf("compiling a type error: got %v, want a CompileError at broken.wgsl:2", err)
	}
	mod, err := dev.CreateShaderModule("ok.wgsl", "@compute @workgroup_size(1) fn main() {}")
	if err != nil {
		t.Fatal(err)
	}
	_, err = dev.CreateComputePipeline(gpu.ComputePipelineDescriptor{Label: "missing", Layout: shared.layout(0), Module: mod, EntryPoint: "nope"})
	if err == nil {
		t.Fatal("pipeline with a missing entry point: no error")
	}
	if err := shared.Err(); err != nil {
		t.Fatalf("the reported shader errors also became a device error: %v", err)
	}
}

// TestDeviceErrors checks that a validation error and a lost device are
// kept as the backend's sticky error and returned by ReadBack.
func TestDeviceErrors(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := b.Upload(tensor.FromData([]float32{1, 2, 3}, 3))
	// MAP_READ may only be combined with COPY_DST: a validation error that
	// no error scope catches.
	b.dev.CreateBuffer("invalid", 16, gpu.UsageMapRead|gpu.UsageStorage)
	if _, err := b.ReadBack(x); err == nil {
		// The error event may arrive after the readback's own work.
		if _, err = b.ReadBack(x); err == nil {
			t.Fatalf("ReadBack after a validation error: no error (Err %v)", b.Err())
		}
	}
	if err := b.Err(); err == nil || !strings.Contains(err.Error(), "webgpu") {
		t.Fatalf("Err after a validation error = %v", err)
	}

	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.dev.Destroy()
	<-c.dev.Lost()
	if _, err := c.ReadBack(c.Upload(tensor.FromData([]float32{1}, 1))); err == nil || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("ReadBack on a destroyed device: error %v, want device lost", err)
	}
}

// TestBindingWindows lowers the binding limit to 1 KiB so that flat ops on
// 1000-element tensors bind their buffers in windows at offsets, and checks
// the results against values computed here.
func TestBindingWindows(t *testing.T) {
	saved := shared.maxBinding
	shared.maxBinding = 1024
	defer func() { shared.maxBinding = saved }()

	const n = 1001
	a, c := make([]float32, n), make([]float32, n)
	for i := range a {
		a[i] = float32(i%97) - 40.5
		c[i] = float32(i%13) * 0.25
	}
	raw := make([]byte, 2*n)
	tensor.EncodeFloat32(raw, c, tensor.F16) // quarters are exact in F16
	x := shared.Upload(tensor.FromData(a, n))
	h := shared.UploadRaw(&tensor.Raw{DType: tensor.F16, Shape: tensor.Shape{n}, Bytes: raw})
	check := func(what string, y backend.Tensor, want func(i int) float64) {
		t.Helper()
		got, err := shared.ReadBack(y)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if w := want(i); math.Abs(float64(got.Data[i])-w) > 1e-5*math.Max(1, math.Abs(w)) {
				t.Fatalf("%s: element %d = %v, want %v", what, i, got.Data[i], w)
			}
		}
		shared.Free(y)
	}
	check("Neg", shared.Unary(backend.Neg, x), func(i int) float64 { return -float64(a[i]) })
	check("Affine F16", shared.Affine(h, 3, -1), func(i int) float64 { return 3*float64(c[i]) - 1 })
	check("Mul", shared.Binary(backend.Mul, x, h), func(i int) float64 { return float64(a[i]) * float64(c[i]) })
	check("LinComb", shared.LinComb([]float32{1, 2, -1, 0.5, 4}, x, h, x, h, x), func(i int) float64 {
		return 4*float64(a[i]) + 2.5*float64(c[i])
	})

	// A row broadcast over the 143 rows of x, seen as [143, 7]: x is
	// windowed, the row is bound whole in every window.
	rowv := []float32{1, -2, 3, -4, 5, -6, 7}
	row := shared.Upload(tensor.FromData(rowv, 1, 7))
	big := shared.Reshape(x, 143, 7)
	check("broadcast Add", shared.Binary(backend.Add, big, row), func(i int) float64 {
		return float64(a[i]) + float64(rowv[i%7])
	})
	shared.Free(big)
	shared.Free(row)
	shared.Free(x)
	shared.Free(h)
}
