package sched

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// sharedDir returns ../shared next to the module root (the directory that
// holds go.mod).
func sharedDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := quoteNonFinite(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fixed, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// stFile is a parsed safetensors file: an 8-byte little-endian header
// length, a JSON header of name → {dtype, shape, data_offsets}, the data.
type stFile struct {
	path string
	hdr  map[string]json.RawMessage
	data []byte
}

type stInfo struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

func openST(t testing.TB, path string) *stFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 8 {
		t.Fatalf("%s: too short", path)
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		t.Fatalf("%s: header length %d exceeds the file", path, n)
	}
	f := &stFile{path: path, data: b[8+n:]}
	if err := json.Unmarshal(b[8:8+n], &f.hdr); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

func (f *stFile) has(name string) bool { _, ok := f.hdr[name]; return ok }

func (f *stFile) info(name string) (stInfo, []byte, error) {
	raw, ok := f.hdr[name]
	if !ok {
		return stInfo{}, nil, fmt.Errorf("%s: no tensor %q", f.path, name)
	}
	var in stInfo
	if err := json.Unmarshal(raw, &in); err != nil {
		return in, nil, err
	}
	if in.Offsets[0] < 0 || in.Offsets[1] > int64(len(f.data)) || in.Offsets[0] > in.Offsets[1] {
		return in, nil, fmt.Errorf("%s: %s: bad offsets %v", f.path, name, in.Offsets)
	}
	return in, f.data[in.Offsets[0]:in.Offsets[1]], nil
}

func (f *stFile) f32(t testing.TB, name string) []float32 {
	t.Helper()
	in, seg, err := f.info(name)
	if err != nil {
		t.Fatal(err)
	}
	if in.DType != "F32" {
		t.Fatalf("%s: %s is %s, want F32", f.path, name, in.DType)
	}
	out := make([]float32, len(seg)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(seg[4*i:]))
	}
	return out
}

// scalar reads a 0-d or 1-element I64 or F32 tensor (a recorded timestep).
func (f *stFile) scalar(t testing.TB, name string) float64 {
	t.Helper()
	in, seg, err := f.info(name)
	if err != nil {
		t.Fatal(err)
	}
	switch in.DType {
	case "I64":
		return float64(int64(binary.LittleEndian.Uint64(seg)))
	case "F32":
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(seg)))
	}
	t.Fatalf("%s: %s has dtype %s", f.path, name, in.DType)
	return 0
}

// maxAbs returns max |v|.
func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

// maxDiff returns max |a−b|.
func maxDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}
