//go:build js && wasm

package webgpu

import (
	"errors"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// TestLimitError runs ops whose tensors exceed a storage binding lowered
// to 1 KiB on a backend of their own: the first op that cannot run must
// record a *LimitError naming the op, the tensor's shape and bytes and the
// limit, without panicking; its result and every later op's keep their
// shapes; every ReadBack returns the error; and freeing everything brings
// Memory().Live back to where it was.
func TestLimitError(t *testing.T) {
	b, err := New(Options{MaxStorageBindingSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	live := b.Memory().Live
	small := b.Upload(tensor.FromData([]float32{1, 2, 3}, 3))
	a := b.Upload(tensor.New(16, 32)) // 2048 bytes: MatMul does not window
	w := b.Upload(tensor.New(8, 32))
	bias := b.Upload(tensor.New(8))
	mm := b.MatMul(a, w, bias, backend.MatMulOpts{TransB: true})
	if !mm.Shape().Equal(tensor.Shape{16, 8}) {
		t.Errorf("MatMul above the limit returned shape %v, want [16 8]", mm.Shape())
	}
	err = b.Err()
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("Err after MatMul above the limit = %v, want a *LimitError", err)
	}
	if le.Op != "MatMul" || !le.Shape.Equal(tensor.Shape{16, 32}) || le.Bytes != 2048 || le.Max != 1024 ||
		le.Limit != "maxStorageBufferBindingSize" {
		t.Errorf("LimitError %+v, want op MatMul, shape [16 32], 2048 bytes, maxStorageBufferBindingSize 1024", *le)
	}
	for _, part := range []string{"MatMul", "[16,32]", "2048 bytes", "maxStorageBufferBindingSize", "1024 bytes"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}

	// Later ops keep running on placeholders, including ones that could
	// not run either: a broadcast whose second input [1, 300] must be bound
	// whole (the op that used to leak its output when it panicked).
	col, row := b.Upload(tensor.New(300, 1)), b.Upload(tensor.New(1, 300))
	sum := b.Binary(backend.Add, col, row)
	act := b.Unary(backend.SiLU, sum)
	perm := b.Permute(sum, 1, 0)
	img := b.Upload(tensor.New(1, 8, 12, 12))
	cw := b.Upload(tensor.New(4, 8, 3, 3))
	conv := b.Conv2D(img, cw, nil, backend.Conv2DOpts{Stride: 1, Padding: 1})
	for _, c := range []struct {
		t    backend.Tensor
		want tensor.Shape
	}{{sum, tensor.Shape{300, 300}}, {act, tensor.Shape{300, 300}}, {perm, tensor.Shape{300, 300}}, {conv, tensor.Shape{1, 4, 12, 12}}} {
		if !c.t.Shape().Equal(c.want) {
			t.Errorf("op after the error returned shape %v, want %v", c.t.Shape(), c.want)
		}
	}
	if b.Err() != err {
		t.Errorf("Err changed from the first error %v to %v", err, b.Err())
	}
	for _, x := range []backend.Tensor{small, act} {
		if _, rerr := b.ReadBack(x); !errors.Is(rerr, err) {
			t.Errorf("ReadBack after the error: %v, want the sticky %v", rerr, err)
		}
	}
	for _, x := range []backend.Tensor{small, a, w, bias, mm, col, row, sum, act, perm, img, cw, conv} {
		b.Free(x)
	}
	if m := b.Memory().Live; m != live {
		t.Errorf("Memory().Live %d after freeing everything, %d before", m, live)
	}
}

// TestBufferLimitError lowers maxBufferSize to 4 KiB on a backend of its
// own: an upload and an op result above it become placeholders without a
// buffer, the error names the op, shape, bytes and limit, and freeing them
// releases exactly what was allocated.
func TestBufferLimitError(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.maxBuffer = 4096
	live := b.Memory().Live
	x := b.Upload(tensor.New(2048)) // 8192 bytes
	y := b.Affine(x, 2, 1)
	var le *LimitError
	if !errors.As(b.Err(), &le) || le.Op != "Upload" || le.Limit != "maxBufferSize" || le.Bytes != 8192 || le.Max != 4096 {
		t.Fatalf("Err = %v, want a LimitError for Upload of 8192 bytes above maxBufferSize 4096", b.Err())
	}
	if msg := b.Err().Error(); !strings.Contains(msg, "[2048]") || !strings.Contains(msg, "maxBufferSize of 4096 bytes") {
		t.Errorf("error %q does not name the shape and the limit", msg)
	}
	if _, err := b.ReadBack(y); !errors.As(err, &le) {
		t.Errorf("ReadBack of a placeholder: %v, want the LimitError", err)
	}
	if _, err := b.NewWriter(tensor.F32, tensor.Shape{2}); err == nil {
		t.Error("NewWriter after a limit error: no error")
	}
	b.Free(x)
	b.Free(y)
	if m := b.Memory().Live; m != live {
		t.Errorf("Memory().Live %d after freeing the placeholders, %d before", m, live)
	}
}
