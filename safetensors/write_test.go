package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/tensor"
)

func f32Bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// TestWriteGolden reproduces the reference writer's bytes from
// safetensors src/tensor.rs: test_serialization (SD_SEMANTICS.md §1.1),
// test_serialization_forced_alignement and test_empty.
func TestWriteGolden(t *testing.T) {
	data := f32Bytes(0, 1, 2, 3, 4, 5)
	cases := []struct {
		name     string
		metadata map[string]string
		tensors  []Named
		want     []byte
	}{
		{"attn.0", nil, []Named{{"attn.0", &tensor.Raw{DType: tensor.F32, Shape: tensor.Shape{1, 2, 3}, Bytes: data}}},
			append(append([]byte{64, 0, 0, 0, 0, 0, 0, 0}, `{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`...),
				0, 0, 0, 0, 0, 0, 0x80, 0x3F, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40, 0, 0, 0xA0, 0x40)},
		{"attn0 padded", nil, []Named{{"attn0", &tensor.Raw{DType: tensor.F32, Shape: tensor.Shape{1, 1, 2, 3}, Bytes: data}}},
			append(append([]byte{72, 0, 0, 0, 0, 0, 0, 0}, `{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       `...), data...)},
		{"empty", nil, nil, []byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}},
		{"empty with metadata", map[string]string{"framework": "pt"}, nil,
			append([]byte{40, 0, 0, 0, 0, 0, 0, 0}, `{"__metadata__":{"framework":"pt"}}     `...)},
	}
	for _, c := range cases {
		got, err := Marshal(c.metadata, c.tensors)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
		if _, err := ParseBytes(got); err != nil {
			t.Errorf("%s: written file does not parse: %v", c.name, err)
		}
	}
}

// TestWriteOrder checks the reference writer's layout for mixed dtypes:
// "__metadata__" first, then tensors by dtype in descending reference
// enum order (I64, F32, I32, BF16, F16), then by name; data in the same
// order; the header a multiple of 8 bytes.
func TestWriteOrder(t *testing.T) {
	raw := func(dt tensor.DType, n int) *tensor.Raw {
		b := make([]byte, n*dt.Size())
		for i := range b {
			b[i] = byte(len(b) + i)
		}
		return &tensor.Raw{DType: dt, Shape: tensor.Shape{n}, Bytes: b}
	}
	in := []Named{
		{"h.b", raw(tensor.F16, 3)}, {"f.z", raw(tensor.F32, 1)}, {"b.a", raw(tensor.BF16, 2)},
		{"i.t", raw(tensor.I64, 1)}, {"f.a", raw(tensor.F32, 2)}, {"n.i", raw(tensor.I32, 1)}, {"a.h", raw(tensor.F16, 1)},
	}
	out, err := Marshal(map[string]string{"format": "pt", "b": "x<&>\"\n\x01é"}, in)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(out)
	if n%8 != 0 {
		t.Errorf("header length %d not a multiple of 8", n)
	}
	hdr := string(out[8 : 8+n])
	wantPrefix := `{"__metadata__":{"b":"x<&>\"\n\u0001é","format":"pt"},"i.t":`
	if !strings.HasPrefix(hdr, wantPrefix) {
		t.Errorf("header starts %q, want prefix %q", hdr[:min(len(hdr), 80)], wantPrefix)
	}
	f, err := ParseBytes(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"i.t", "f.a", "f.z", "n.i", "b.a", "a.h", "h.b"}
	if got := strings.Join(f.Names(), " "); got != strings.Join(want, " ") {
		t.Errorf("file order %s, want %s", got, strings.Join(want, " "))
	}
	// The header is also valid JSON for encoding/json, and lists the
	// tensors in the same order.
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(hdr), &m); err != nil || len(m) != len(in)+1 {
		t.Fatalf("encoding/json: %v (%d keys)", err, len(m))
	}
	if f.Metadata()["b"] != "x<&>\"\n\x01é" {
		t.Errorf("metadata round trip: %q", f.Metadata()["b"])
	}
	for _, x := range in {
		r, err := f.ReadRaw(x.Name)
		if err != nil {
			t.Fatal(err)
		}
		if r.DType != x.DType || !r.Shape.Equal(x.Shape) || !bytes.Equal(r.Bytes, x.Bytes) {
			t.Errorf("%s: read %v %v %v, wrote %v %v %v", x.Name, r.DType, r.Shape, r.Bytes, x.DType, x.Shape, x.Bytes)
		}
	}
}

func TestWriteRejects(t *testing.T) {
	ok := &tensor.Raw{DType: tensor.F32, Shape: tensor.Shape{1}, Bytes: make([]byte, 4)}
	for _, c := range []struct {
		name string
		in   []Named
		meta map[string]string
		want string
	}{
		{"duplicate", []Named{{"a", ok}, {"a", ok}}, nil, `tensor "a" is given more than once`},
		{"reserved", []Named{{"__metadata__", ok}}, nil, "reserved"},
		{"byte count", []Named{{"a", &tensor.Raw{DType: tensor.F16, Shape: tensor.Shape{3}, Bytes: make([]byte, 4)}}}, nil, `tensor "a": 4 bytes for F16 [3] (want 6)`},
		{"nil raw", []Named{{"a", nil}}, nil, `tensor "a" has no data`},
		{"bad dtype", []Named{{"a", &tensor.Raw{DType: tensor.DType(42), Shape: tensor.Shape{}, Bytes: nil}}}, nil, `tensor "a"`},
		{"negative dim", []Named{{"a", &tensor.Raw{DType: tensor.F32, Shape: tensor.Shape{-1, -1}, Bytes: make([]byte, 4)}}}, nil, "negative dimension"},
		{"bad utf8 name", []Named{{"a\xff", ok}}, nil, "not valid UTF-8"},
		{"bad utf8 metadata", nil, map[string]string{"k": "\xff"}, "not valid UTF-8"},
	} {
		if _, err := Marshal(c.meta, c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

func TestWriteFileRoundTrip(t *testing.T) {
	h := tensor.FromData([]float32{0.5, -1.25, 3e-5, 70000}, 2, 2)
	path := filepath.Join(t.TempDir(), "w.safetensors")
	in := []Named{FromHost("x.f32", h, tensor.F32), FromHost("x.f16", h, tensor.F16), FromHost("x.bf16", h, tensor.BF16)}
	if err := WriteFile(path, map[string]string{"format": "pt"}, in); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Expected values: the float64 inputs rounded by hand to each format.
	// 3e-5 in binary16 is subnormal: round(3e-5 / 2^-24) = 503 units;
	// 70000 overflows binary16; in bfloat16 it rounds to 70144 (8 bits).
	want := map[string][]float64{
		"x.f32":  {0.5, -1.25, float64(float32(3e-5)), 70000},
		"x.f16":  {0.5, -1.25, 503 * math.Ldexp(1, -24), math.Inf(1)},
		"x.bf16": {0.5, -1.25, bf16Round(float64(float32(3e-5))), 70144},
	}
	for name, w := range want {
		got, err := f.ReadFloat32(name)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Shape.Equal(tensor.Shape{2, 2}) {
			t.Errorf("%s shape %v", name, got.Shape)
		}
		for i := range w {
			if float64(got.Data[i]) != w[i] {
				t.Errorf("%s[%d] = %g, want %g", name, i, got.Data[i], w[i])
			}
		}
	}
	if info, _ := f.Info("x.f16"); info.File != path {
		t.Errorf("Info.File = %q, want %q", info.File, path)
	}
	data, _ := os.ReadFile(path)
	if mem, err := Marshal(map[string]string{"format": "pt"}, in); err != nil || !bytes.Equal(mem, data) {
		t.Error("WriteFile and Marshal differ")
	}
}

// bf16Round rounds a positive normal float64 to 8 significant bits,
// nearest even, by scaling to an integer mantissa.
func bf16Round(x float64) float64 {
	frac, exp := math.Frexp(x) // x = frac × 2^exp, frac in [0.5, 1)
	return math.Ldexp(math.RoundToEven(frac*256), exp-8)
}
