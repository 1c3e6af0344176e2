package golden

import (
	"testing"

	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// ByteTensor is a U8 tensor of a safetensors file: its shape and raw
// bytes (an input image as uint8 HWC, or the bytes of a PNG file).
type ByteTensor struct {
	Shape tensor.Shape
	Data  []byte
}

// Bytes reads the U8 tensors of a safetensors file (the ones Tensors
// leaves out), by name.
func Bytes(t testing.TB, path string) map[string]ByteTensor {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]ByteTensor{}
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		if info.DType != "U8" {
			continue
		}
		data, err := f.ReadBytes(n)
		if err != nil {
			t.Fatalf("%s: %s: %v", path, n, err)
		}
		out[n] = ByteTensor{Shape: info.Shape.Clone(), Data: data}
	}
	return out
}
