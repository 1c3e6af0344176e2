package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// stdHeader decodes a header with encoding/json, independently of the
// token-level parser (valid for files without repeated names).
type stdEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

func stdHeader(t *testing.T, b []byte) (map[string]stdEntry, int64) {
	t.Helper()
	n := int64(binary.LittleEndian.Uint64(b))
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]stdEntry{}
	for k, v := range raw {
		if k == "__metadata__" {
			continue
		}
		var e stdEntry
		if err := json.Unmarshal(v, &e); err != nil {
			t.Fatal(err)
		}
		out[k] = e
	}
	return out, 8 + n
}

// bf16Value computes a bfloat16 value from its sign, exponent and mantissa
// fields in float64.
func bf16Value(h uint16) float64 {
	e := int(h>>7) & 0xff
	m := float64(h & 0x7f)
	v := math.Ldexp(128+m, e-134)
	if e == 0 {
		v = math.Ldexp(m, -133)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return v
}

// TestTAESDDecoder parses the real TAESD decoder (BF16, 67 tensors) and
// checks its index and one tensor's values against an independent
// decode of the file.
func TestTAESDDecoder(t *testing.T) {
	path := shared(t, "assets", "taesd", "bf16_comfyui_fork", "taesd_decoder.safetensors")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Len() != 67 {
		t.Errorf("%d tensors, want 67", f.Len())
	}
	whole, err := os.ReadFile(path)
	must(t, err)
	std, dataStart := stdHeader(t, whole)
	if len(std) != 67 || f.DataStart() != dataStart || f.Size() != 2450590 {
		t.Errorf("encoding/json sees %d tensors, data at %d (parser: %d, size %d)", len(std), dataStart, f.DataStart(), f.Size())
	}
	var total int64
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		e := std[name]
		if info.DType != "BF16" || e.DType != "BF16" || !info.Shape.Equal(e.Shape) || info.Begin != e.DataOffsets[0] || info.End != e.DataOffsets[1] {
			t.Errorf("%s: parsed %s %v [%d,%d], encoding/json %s %v %v", name, info.DType, info.Shape, info.Begin, info.End, e.DType, e.Shape, e.DataOffsets)
		}
		total += info.Bytes()
	}
	if total != f.Size()-f.DataStart() {
		t.Errorf("tensors cover %d bytes of %d", total, f.Size()-f.DataStart())
	}
	// taesd.py Decoder: Clamp (0), conv(4→64) (1), ReLU, 3 Blocks (3-5),
	// Upsample, conv without bias (7), ..., Block (18), conv(64→3) (19).
	if _, ok := f.Info("7.bias"); ok {
		t.Error("7.bias present; taesd.py's conv after the first Upsample has no bias")
	}
	for name, shape := range map[string][]int{"1.weight": {64, 4, 3, 3}, "1.bias": {64}, "7.weight": {64, 64, 3, 3}, "19.weight": {3, 64, 3, 3}, "19.bias": {3}} {
		info, ok := f.Info(name)
		if !ok || !info.Shape.Equal(shape) {
			t.Errorf("%s: %v, want %v", name, info.Shape, shape)
		}
	}
	for _, name := range []string{"1.weight", "19.bias"} {
		h, err := f.ReadFloat32(name)
		must(t, err)
		e := std[name]
		for i, v := range h.Data {
			bits := binary.LittleEndian.Uint16(whole[dataStart+e.DataOffsets[0]+int64(2*i):])
			if want := bf16Value(bits); float64(v) != want {
				t.Fatalf("%s[%d] = %g, independent decode %g", name, i, v, want)
			}
		}
		if len(h.Data) != int(e.DataOffsets[1]-e.DataOffsets[0])/2 {
			t.Errorf("%s: %d values", name, len(h.Data))
		}
	}
}

// TestAllReferenceFiles parses every safetensors file in ../shared (real
// TAE weights, golden weights, io and run files) and checks each index
// against encoding/json and F32 values against the raw bytes.
func TestAllReferenceFiles(t *testing.T) {
	var paths []string
	for _, root := range []string{shared(t, "golden"), shared(t, "assets")} {
		must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".safetensors") {
				paths = append(paths, p)
			}
			return err
		}))
	}
	sort.Strings(paths)
	if len(paths) < 40 {
		t.Fatalf("found only %d reference files", len(paths))
	}
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		whole, err := os.ReadFile(p)
		must(t, err)
		std, dataStart := stdHeader(t, whole)
		if len(std) != f.Len() {
			t.Errorf("%s: %d tensors, encoding/json %d", p, f.Len(), len(std))
		}
		for _, name := range f.Names() {
			info, _ := f.Info(name)
			e := std[name]
			if info.DType != e.DType || !info.Shape.Equal(e.Shape) || info.Begin != e.DataOffsets[0] || info.End != e.DataOffsets[1] {
				t.Errorf("%s %s: parsed %s %v [%d,%d], encoding/json %+v", p, name, info.DType, info.Shape, info.Begin, info.End, e)
			}
			if info.DType != "F32" {
				continue
			}
			h, err := f.ReadFloat32(name)
			must(t, err)
			for i, v := range h.Data {
				want := math.Float32frombits(binary.LittleEndian.Uint32(whole[dataStart+e.DataOffsets[0]+int64(4*i):]))
				if math.Float32bits(v) != math.Float32bits(want) {
					t.Fatalf("%s %s[%d] = %g, raw bytes say %g", p, name, i, v, want)
				}
			}
		}
		f.Close()
	}
}

// TestGoldenComponentFolder opens the SD1.5 tiny UNet folder as a
// component: the weights file is found, io.safetensors is ignored.
func TestGoldenComponentFolder(t *testing.T) {
	dir := shared(t, "golden", "sd15_tiny_pipeline", "unet")
	c, err := OpenDir(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Files()) != 1 || filepath.Base(c.Files()[0].Name()) != "diffusion_pytorch_model.safetensors" {
		t.Fatalf("opened %v", c.Files()[0].Name())
	}
	if m := c.Files()[0].Metadata(); m["format"] != "pt" {
		t.Errorf("metadata %v", m)
	}
	if c.Len() != 208 {
		t.Errorf("%d tensors, want 208", c.Len())
	}
	for _, n := range c.Names() {
		if strings.Contains(n, ".in.") || strings.Contains(n, ".out.") {
			t.Errorf("io tensor %s listed among the weights", n)
		}
	}
	info, ok := c.Info("conv_in.weight")
	if !ok || info.DType != "F32" || !info.Shape.Equal([]int{32, 4, 3, 3}) {
		t.Errorf("conv_in.weight: %+v", info)
	}
	// The README's initialisation: conv weights are N(0,1)·clip(1/sqrt(36), 0.02, 0.2)
	// → std ≈ 1/6 over 1152 values.
	h, err := c.ReadFloat32("conv_in.weight")
	must(t, err)
	var s, ss float64
	for _, v := range h.Data {
		s += float64(v)
		ss += float64(v) * float64(v)
	}
	n := float64(len(h.Data))
	std := math.Sqrt(ss/n - (s/n)*(s/n))
	if math.Abs(std-1.0/6) > 0.02 {
		t.Errorf("conv_in.weight std %.4f, want ≈ %.4f", std, 1.0/6)
	}
}
