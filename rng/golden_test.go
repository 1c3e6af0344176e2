package rng

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
func sharedDir(t *testing.T) string {
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

// readF32Tensor reads one F32 tensor from a safetensors file: an 8-byte
// little-endian header length, a JSON header mapping names to dtype, shape
// and data_offsets, then the raw data.
func readF32Tensor(path, name string) ([]float32, []int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(b) < 8 {
		return nil, nil, fmt.Errorf("%s: too short", path)
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		return nil, nil, fmt.Errorf("%s: header length %d exceeds file", path, n)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		return nil, nil, fmt.Errorf("%s: header: %v", path, err)
	}
	raw, ok := hdr[name]
	if !ok {
		return nil, nil, fmt.Errorf("%s: no tensor %q", path, name)
	}
	var info struct {
		DType   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, nil, err
	}
	if info.DType != "F32" {
		return nil, nil, fmt.Errorf("%s: %s is %s, want F32", path, name, info.DType)
	}
	data := b[8+n:]
	if info.Offsets[1] > int64(len(data)) || info.Offsets[0] > info.Offsets[1] {
		return nil, nil, fmt.Errorf("%s: %s: bad offsets %v", path, name, info.Offsets)
	}
	seg := data[info.Offsets[0]:info.Offsets[1]]
	out := make([]float32, len(seg)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(seg[4*i:]))
	}
	return out, info.Shape, nil
}

type rngGoldens struct {
	Randn5    []float64 `json:"torch_manual_seed0_randn_5"`
	Randn16   []float64 `json:"torch_manual_seed0_randn_16"`
	Seed42    summary   `json:"torch_seed42_randn_1x4x8x8"`
	Seed0Big  summary   `json:"torch_seed0_randn_1x4x64x64"`
	Rand5     []float64 `json:"torch_manual_seed0_rand_5"`
	NumpyLast []float64 `json:"numpy_seed12345_randn10000_last5"`
}

type summary struct {
	First8 []float64 `json:"first8"`
	Last4  []float64 `json:"last4"`
	Sum    float64   `json:"sum"`
	AbsSum float64   `json:"abs_sum"`
}

func loadRNGGoldens(t *testing.T) rngGoldens {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedDir(t), "assets", "goldens", "rng_goldens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g rngGoldens
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}
