//go:build js && wasm

package browser

import (
	"fmt"
	"io"
	"syscall/js"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/internal/jsutil"
	"github.com/tgate-web/tgate/tensor"
)

// Blob reads a stored file (a JS Blob, backed by the browser's disk
// cache). It implements safetensors.RangeReader for the header and
// hub.DirectSource for the tensors.
type Blob struct {
	v    js.Value
	size int64
}

// Size is the file's size in bytes.
func (b *Blob) Size() int64 { return b.size }

// slice reads bytes [off, off+n) as an ArrayBuffer.
func (b *Blob) slice(off, n int64) (js.Value, error) {
	if off < 0 || n < 0 || off+n > b.size {
		return js.Value{}, fmt.Errorf("read of bytes [%d, %d) outside a %d-byte file", off, off+n, b.size)
	}
	return jsutil.Await(b.v.Call("slice", off, off+n).Call("arrayBuffer"))
}

// ReadAt copies bytes into Go memory (used for the safetensors header).
func (b *Blob) ReadAt(p []byte, off int64) (int, error) {
	n := int64(len(p))
	short := false
	if off+n > b.size {
		n = max(0, b.size-off)
		short = true
	}
	ab, err := b.slice(off, n)
	if err != nil {
		return 0, err
	}
	js.CopyBytesToGo(p[:n], js.Global().Get("Uint8Array").New(ab))
	if short {
		return int(n), io.EOF
	}
	return int(n), nil
}

// jsUploader is the WebGPU backend's upload from JS bytes.
type jsUploader interface {
	UploadJS(dt tensor.DType, shape tensor.Shape, src js.Value) (backend.Tensor, error)
}

// UploadRange puts bytes [off, off+n) into a new tensor on b without
// copying them into Go memory, when b can take JS bytes.
func (b *Blob) UploadRange(be backend.Backend, dt tensor.DType, shape tensor.Shape, off, n int64) (backend.Tensor, bool, error) {
	u, ok := be.(jsUploader)
	if !ok {
		return nil, false, nil
	}
	ab, err := b.slice(off, n)
	if err != nil {
		return nil, true, err
	}
	t, err := u.UploadJS(dt, shape, ab)
	return t, true, err
}
