package cpu

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/backend/backendtest"
	"github.com/tgate-web/tgate/tensor"
)

// TestConformance runs the backend conformance suite on the CPU backend.
func TestConformance(t *testing.T) {
	backendtest.RunAll(t, New())
}

// TestConformanceWorkers runs the suite with one worker (every op inline)
// and with more workers than CPUs (uneven chunking), so both paths of the
// parallel loops are checked against the references.
func TestConformanceWorkers(t *testing.T) {
	for _, procs := range []int{1, 7} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			backendtest.Run(t, New(), backendtest.Options{Seed: int64(procs), MaxWork: 1 << 20})
		})
	}
}

// mustPanic runs f and checks that it panics with a message containing
// every string in want.
func mustPanic(t *testing.T, f func(), want ...string) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("no panic, want one mentioning %q", want)
			return
		}
		msg := fmt.Sprint(r)
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Errorf("panic %q does not mention %q", msg, w)
			}
		}
	}()
	f()
}

func TestShapeErrorsNameOpAndShapes(t *testing.T) {
	b := New()
	up := func(shape ...int) backend.Tensor { return b.Upload(tensor.New(shape...)) }
	x23, x34, x43 := up(2, 3), up(3, 4), up(4, 3)
	mustPanic(t, func() { b.MatMul(x23, x43, nil, backend.MatMulOpts{}) }, "MatMul", "[2,3]", "[4,3]")
	mustPanic(t, func() { b.MatMul(x23, x34, up(5), backend.MatMulOpts{}) }, "MatMul", "bias", "[5]")
	mustPanic(t, func() { b.MatMul(up(2, 2, 3), up(3, 2, 3, 4), nil, backend.MatMulOpts{}) }, "MatMul", "[3,2,3,4]")
	mustPanic(t, func() { b.MatMul(up(2, 2, 3), up(3, 3, 4), nil, backend.MatMulOpts{}) }, "MatMul", "[2,2,3]", "[3,3,4]")
	mustPanic(t, func() { b.Conv2D(up(1, 3, 5, 5), up(4, 2, 3, 3), nil, backend.Conv2DOpts{Padding: 1}) }, "Conv2D", "[1,3,5,5]", "[4,2,3,3]")
	mustPanic(t, func() { b.Conv2D(up(1, 3, 2, 2), up(4, 3, 3, 3), nil, backend.Conv2DOpts{}) }, "Conv2D", "[1,3,2,2]")
	mustPanic(t, func() { b.GroupNorm(up(1, 6, 2), nil, nil, 4, 1e-5, false) }, "GroupNorm", "[1,6,2]", "4")
	mustPanic(t, func() { b.GroupNorm(up(1, 6, 2), up(5), nil, 3, 1e-5, false) }, "GroupNorm", "gamma", "[5]")
	mustPanic(t, func() { b.LayerNorm(x23, up(2), nil, 1e-5) }, "LayerNorm", "gamma", "[2]", "[2,3]")
	mustPanic(t, func() { b.RMSNorm(x23, up(4), 1e-5) }, "RMSNorm", "[4]", "[2,3]")
	mustPanic(t, func() { b.Binary(backend.Add, x23, x34) }, "Binary add", "[2,3]", "[3,4]")
	mustPanic(t, func() { b.Concat(0, x23, x34) }, "Concat", "[2,3]", "[3,4]")
	mustPanic(t, func() { b.Concat(2, x23) }, "Concat", "axis 2", "[2,3]")
	mustPanic(t, func() { b.Slice(x23, 1, 2, 4) }, "Slice", "[2, 4)", "[2,3]")
	mustPanic(t, func() { b.Reshape(x23, 4, 2) }, "Reshape", "[2,3]", "[4,2]")
	mustPanic(t, func() { b.Reshape(x23, 4, -1) }, "Reshape", "[2,3]", "[4,-1]")
	mustPanic(t, func() { b.Permute(x23, 0, 0) }, "Permute", "[0 0]", "[2,3]")
	mustPanic(t, func() { b.Gather(x23, []int32{0, 2}) }, "Gather", "id 2", "[2,3]")
	mustPanic(t, func() { b.LinComb([]float32{1, 1}, x23, x34) }, "LinComb", "[3,4]", "[2,3]")
	mustPanic(t, func() { b.ResizeNearest(x23, 4, 4) }, "ResizeNearest", "[2,3]")
	q, k, v := up(1, 4, 8), up(1, 5, 8), up(1, 5, 8)
	mustPanic(t, func() { b.Attention(q, k, v, up(1, 1, 5, 4), backend.AttentionOpts{Heads: 2}) }, "Attention", "bias", "[1,1,5,4]")
	mustPanic(t, func() { b.Attention(q, k, v, nil, backend.AttentionOpts{Heads: 3}) }, "Attention", "heads 3", "[1,4,8]")
	mustPanic(t, func() { b.Attention(q, up(1, 5, 6), v, nil, backend.AttentionOpts{Heads: 2}) }, "Attention", "[1,5,6]")
	mustPanic(t, func() { b.UploadRaw(&tensor.Raw{DType: tensor.F16, Shape: tensor.Shape{3}, Bytes: make([]byte, 4)}) }, "UploadRaw", "4 bytes", "F16", "[3]")
	mustPanic(t, func() { b.UploadRaw(&tensor.Raw{DType: tensor.I64, Shape: tensor.Shape{1}, Bytes: make([]byte, 8)}) }, "UploadRaw", "I64")
}

func TestFreedTensors(t *testing.T) {
	b := New()
	x := b.Upload(tensor.FromData([]float32{1, 2, 3, 4, 5, 6}, 2, 3))
	v := b.Reshape(x, 3, 2)
	b.Free(v)
	if _, err := b.ReadBack(x); err != nil {
		t.Fatalf("freeing a view freed the tensor it views: %v", err)
	}
	mustPanic(t, func() { b.Unary(backend.Neg, v) }, "Unary neg", "freed", "[3,2]")
	v2 := b.Reshape(x, 6)
	b.Free(x)
	if got, err := b.ReadBack(v2); err != nil || got.Data[5] != 6 {
		t.Fatalf("a view must keep the storage after its original is freed: %v %v", got, err)
	}
	mustPanic(t, func() { b.Softmax(x) }, "Softmax", "freed", "[2,3]")
	if m := b.Memory(); m.Live != 24 {
		t.Errorf("Live %d with a view still held, want 24", m.Live)
	}
	b.Free(v2) // the last handle releases the storage
	mustPanic(t, func() { b.Free(x) }, "Free", "freed", "[2,3]")
	if m := b.Memory(); m.Live != 0 || m.Peak != 24 {
		t.Errorf("Memory %+v, want Live 0 and Peak 24", m)
	}
}

// TestHalfWeightsHeldAsFloat32 checks that F16 and BF16 uploads keep their
// dtype, are counted at the 4 bytes per element the backend holds, and
// that ops read them as their exact float32 widening.
func TestHalfWeightsHeldAsFloat32(t *testing.T) {
	b := New()
	// 1 + 2^-10 is exact in F16; in BF16 it rounds to 1.
	one := tensor.F32ToF16(1 + 1.0/1024)
	raw16 := &tensor.Raw{DType: tensor.F16, Shape: tensor.Shape{2}, Bytes: []byte{byte(one), byte(one >> 8), 0x00, 0xc0}} // 1+2^-10, -2
	w := b.UploadRaw(raw16)
	if w.DType() != tensor.F16 {
		t.Errorf("dtype %v, want F16", w.DType())
	}
	if m := b.Memory(); m.Live != 8 {
		t.Errorf("Live %d after a 2-element F16 upload, want 8 (held as float32)", m.Live)
	}
	x := b.Upload(tensor.FromData([]float32{1024, 1}, 1, 2))
	y := b.MatMul(x, b.Reshape(w, 2, 1), nil, backend.MatMulOpts{})
	h, err := b.ReadBack(y)
	if err != nil {
		t.Fatal(err)
	}
	// 1024·(1+2^-10) + 1·(−2) = 1025 − 2 = 1023
	if h.Data[0] != 1023 {
		t.Errorf("MatMul with F16 weights: %v, want 1023", h.Data[0])
	}
}
