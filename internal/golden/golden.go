// Package golden gives tests access to the reference data in ../shared
// (relative to the module root): paths, tensors of safetensors files, and
// closeness checks relative to the reference's largest magnitude.
package golden

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// Root returns the module root: the nearest folder above the working
// directory that holds go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("golden: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Dir returns the absolute path of rel under ../shared, failing the test
// if it does not exist.
func Dir(t testing.TB, rel ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{Root(t), "..", "shared"}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("golden: reference data missing: %v", err)
	}
	return p
}

// Tensors reads every tensor of a safetensors file as float32 (integer
// tensors converted by value). Tensors of a dtype the project has no
// numeric type for (U8: the raw bytes of an input PNG in the img2img and
// inpainting runs) are left out.
func Tensors(t testing.TB, path string) map[string]*tensor.Host {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]*tensor.Host{}
	for _, n := range f.Names() {
		if info, _ := f.Info(n); info.DType == "U8" {
			continue
		}
		h, err := f.ReadFloat32(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = h
	}
	return out
}

// MaxAbs returns the largest magnitude in h.
func MaxAbs(h *tensor.Host) float64 {
	m := 0.0
	for _, v := range h.Data {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return m
}

// Diff returns the largest absolute difference between got and want and
// that difference relative to want's largest magnitude.
func Diff(got, want *tensor.Host) (abs, rel float64) {
	for i := range want.Data {
		d := math.Abs(float64(got.Data[i]) - float64(want.Data[i]))
		if math.IsNaN(d) {
			return math.Inf(1), math.Inf(1)
		}
		abs = math.Max(abs, d)
	}
	if m := MaxAbs(want); m > 0 {
		return abs, abs / m
	}
	return abs, abs
}

// AssertClose fails the test when got's shape differs from want's or when
// max|got − want| > tol·max|want|. It logs both errors either way.
func AssertClose(t testing.TB, name string, got, want *tensor.Host, tol float64) {
	t.Helper()
	if !got.Shape.Equal(want.Shape) {
		t.Errorf("%s: shape %v, want %v", name, got.Shape, want.Shape)
		return
	}
	abs, rel := Diff(got, want)
	if rel > tol {
		t.Errorf("%s: max abs error %.3g, relative %.3g > tolerance %.1g", name, abs, rel, tol)
		return
	}
	t.Logf("%s: max abs error %.3g, relative %.3g (tolerance %.1g)", name, abs, rel, tol)
}

// ReadBack reads x back from b, failing the test on a device error.
func ReadBack(t testing.TB, b backend.Backend, x backend.Tensor) *tensor.Host {
	t.Helper()
	h, err := b.ReadBack(x)
	if err != nil {
		t.Fatalf("%s ReadBack: %v", b.Name(), err)
	}
	return h
}
