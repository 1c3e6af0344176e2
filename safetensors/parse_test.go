package safetensors

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/tensor"
)

// TestRejects feeds malformed files to Parse: each must fail with a
// FormatError whose message names the problem (and the tensor, when one
// is at fault).
func TestRejects(t *testing.T) {
	f32 := func(n int) []byte { return make([]byte, 4*n) }
	hugeLen := make([]byte, 16)
	binary.LittleEndian.PutUint64(hugeLen, MaxHeaderSize+1)
	maxU64 := make([]byte, 16)
	binary.LittleEndian.PutUint64(maxU64, ^uint64(0))
	cases := []struct {
		name string
		in   []byte
		want []string // substrings of the error message
	}{
		{"empty file", nil, []string{"file is empty"}},
		{"shorter than 8 bytes", []byte{2, 0, 0, 0, 0}, []string{"5 bytes, shorter than the 8-byte header length"}},
		{"header length past the file", file(`{}`, nil)[:9], []string{"header length 2 is larger than the 1 bytes"}},
		{"header over 100 MB", hugeLen, []string{"header length 100000001 exceeds the 100000000-byte limit"}},
		{"header length 2^64-1", maxU64, []string{"exceeds the 100000000-byte limit"}},
		{"header not JSON", file(`{"a":{"dtype":"F32",,}}`, nil), []string{`tensor "a"`, "not valid JSON", "invalid character ','"}},
		{"header truncated JSON", file(`{"a":{"dtype":"F32"`, nil), []string{"header JSON ends early"}},
		{"header not an object", file(`["a"]`, nil), []string{"does not start with '{'", `'['`}},
		{"header starts with space", file(` {}`, nil), []string{"does not start with '{'"}},
		{"header empty", file(``, []byte{}), []string{"does not start with '{' (starts with nothing)"}},
		{"header not UTF-8", file("{\"\xff\":1}", nil), []string{"not valid UTF-8"}},
		{"lone high surrogate", file(`{"__metadata__":{"a":"x\ud800y"}}`, nil), []string{`unpaired UTF-16 surrogate escape \ud800 at header byte 23`}},
		{"lone low surrogate", file(`{"__metadata__":{"\\\"\udc00":"v"}}`, nil), []string{`unpaired UTF-16 surrogate escape \udc00`}},
		{"high surrogate then non-low", file(`{"__metadata__":{"a":"\ud800\u0041"}}`, nil), []string{`\ud800`}},
		{"garbage after object", file(`{} x`, nil), []string{"2 bytes after", "'x'"}},
		{"second object", file(`{}{}`, nil), []string{"2 bytes after its JSON object"}},
		{"NUL padding", file("{}\x00\x00", nil), []string{"only whitespace padding"}},
		{"tensor entry not an object", file(`{"w":[1,2]}`, nil), []string{`tensor "w"`, "entry must be an object, found an array"}},
		{"unknown dtype", file(`{"w":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}`, f32(1)), []string{`tensor "w"`, `unknown dtype "F31"`}},
		{"lower-case dtype", file(`{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, f32(1)), []string{`unknown dtype "f32"`}},
		{"dtype not a string", file(`{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, f32(1)), []string{"dtype must be a string, found the number 4"}},
		{"missing shape", file(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, f32(1)), []string{`tensor "w"`, `missing "shape"`}},
		{"missing dtype", file(`{"w":{"shape":[1],"data_offsets":[0,4]}}`, f32(1)), []string{`missing "dtype"`}},
		{"missing offsets", file(`{"w":{"dtype":"F32","shape":[1]}}`, f32(1)), []string{`missing "data_offsets"`}},
		{"negative dim", file(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, f32(1)), []string{"shape must hold non-negative integers, found -1"}},
		{"fractional dim", file(`{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}`, f32(1)), []string{"non-negative integers, found 1.0"}},
		{"exponent offset", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4e0]}}`, f32(1)), []string{"non-negative integers, found 4e0"}},
		{"offset too large", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999]}}`, f32(1)), []string{"data_offsets value 99999999999999999999 is too large"}},
		{"three offsets", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, f32(1)), []string{"must be [BEGIN, END], found 3 numbers"}},
		{"shape is null", file(`{"w":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}`, f32(1)), []string{"shape must be an array, found null"}},
		{"duplicate names", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32(2)),
			[]string{`tensor "w"`, "more than once"}},
		{"duplicate field", file(`{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, f32(1)), []string{`field "dtype" appears more than once`}},
		{"duplicate metadata", file(`{"__metadata__":{},"__metadata__":{}}`, nil), []string{`"__metadata__"`, "more than once"}},
		{"metadata value not string", file(`{"__metadata__":{"format":1}}`, nil), []string{`value of "format" must be a string, found the number 1`}},
		{"metadata not object", file(`{"__metadata__":"pt"}`, nil), []string{"must be an object of strings, found a string"}},
		{"overlapping offsets", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, f32(3)),
			[]string{`tensor "b"`, "data_offsets [4,12] overlap tensor \"a\", which ends at 8"}},
		{"same offsets twice", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32(1)),
			[]string{`tensor "b"`, "overlap tensor \"a\""}},
		{"hole between tensors", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, f32(3)),
			[]string{`tensor "b"`, "leave a hole", `tensor "a" ends at 4`}},
		{"hole at the start", file(`{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32(2)),
			[]string{`tensor "b"`, "leave a hole: no tensor covers data bytes [0,4)"}},
		{"end before begin", file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"c":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, f32(1)),
			[]string{`tensor "c"`, "data_offsets [4,0] end before they begin"}},
		{"end past the data", file(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, f32(3)),
			[]string{`tensor "a"`, "data_offsets [0,16] run past the end of the data section (12 bytes)"}},
		{"bytes after the last tensor", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32(3)),
			[]string{"tensors cover 8 bytes but the data section holds 12", `after tensor "a"`}},
		{"no tensors but data", file(`{}`, f32(1)), []string{"lists no tensor data but the data section holds 4 bytes"}},
		{"shape disagrees with offsets", file(`{"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,24]}}`, f32(6)),
			[]string{`tensor "a"`, "shape [2,3] of F16 needs 12 bytes but data_offsets [0,24] span 24"}},
		{"shape overflow", file(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, f32(1)),
			[]string{`tensor "a"`, "overflows the element count"}},
		{"shape overflow before a zero", file(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}`, nil),
			[]string{"overflows the element count"}},
		{"bits overflow", file(`{"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}}`, f32(1)),
			[]string{"overflows the element count"}},
		{"sub-byte size", file(`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, []byte{0, 0}),
			[]string{`tensor "a"`, "12 bits, not a whole number of bytes"}},
		{"deep nesting", file(`{"a":{"x":`+strings.Repeat("[", 200)+strings.Repeat("]", 200)+`}}`, nil),
			[]string{"nests deeper than 128 levels"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := ParseBytes(c.in)
			if err == nil {
				t.Fatalf("accepted: %v", f.Names())
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *FormatError: %v", err, err)
			}
			msg := err.Error()
			if strings.Count(msg, "\n") > 0 {
				t.Errorf("error spans several lines: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// TestAccepts parses well-formed files that exercise the format's corners.
func TestAccepts(t *testing.T) {
	data := []byte{
		0, 0, 0x80, 0x3f, // a: F32 1.0
		0x00, 0x3c, // b: F16 1.0
		0x80, 0xbf, // c: BF16 -1.0
		7, 0, 0, 0, 0, 0, 0, 0, // d: I64 scalar 7
		1, 2, 3, // e: U8 [3], listed but not decodable
	}
	// JSON keys out of offset order, unknown fields, zero-size tensors at
	// the start, in the middle and at the end, whitespace padding.
	hdr := `{"e":{"dtype":"U8","shape":[3],"data_offsets":[16,19]},` +
		`"z0":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},` +
		`"d":{"data_offsets":[8,16],"shape":[],"dtype":"I64","extra":{"k":[1,{"x":null}]}},` +
		`"c":{"dtype":"BF16","shape":[1],"data_offsets":[6,8]},` +
		`"zm":{"dtype":"F16","shape":[0],"data_offsets":[4,4]},` +
		`"__metadata__":{"format":"pt","note":"caf\u00e9","emoji":"\ud83d\ude00 \\ud800"},` +
		`"b":{"dtype":"F16","shape":[1],"data_offsets":[4,6]},` +
		`"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},` +
		`"zz":{"dtype":"BOOL","shape":[2,0],"data_offsets":[19,19]}} ` + "\t\n "
	f, err := ParseBytes(file(hdr, data))
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"z0", "a", "zm", "b", "c", "d", "e", "zz"}
	if got := strings.Join(f.Names(), " "); got != strings.Join(wantNames, " ") {
		t.Errorf("Names() = %s, want %s (file order)", got, strings.Join(wantNames, " "))
	}
	if m := f.Metadata(); len(m) != 3 || m["format"] != "pt" || m["note"] != "café" || m["emoji"] != "\U0001F600 \\ud800" {
		t.Errorf("Metadata() = %v", m)
	}
	if f.HeaderLen() != int64(len(hdr)) || f.DataStart() != 8+int64(len(hdr)) || f.Size() != int64(8+len(hdr)+len(data)) {
		t.Errorf("HeaderLen %d DataStart %d Size %d", f.HeaderLen(), f.DataStart(), f.Size())
	}
	want := map[string]float32{"a": 1, "b": 1, "c": -1, "d": 7}
	for name, v := range want {
		h, err := f.ReadFloat32(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Data) != 1 || h.Data[0] != v {
			t.Errorf("%s = %v, want [%g]", name, h.Data, v)
		}
	}
	d, _ := f.Info("d")
	if d.DType != "I64" || len(d.Shape) != 0 || d.Begin != 8 || d.End != 16 || d.Bytes() != 8 || d.Numel() != 1 || d.DataStart != f.DataStart() {
		t.Errorf("Info(d) = %+v", d)
	}
	e, _ := f.Info("e")
	if _, err := e.TensorDType(); err == nil || !strings.Contains(err.Error(), `tensor "e"`) {
		t.Errorf("TensorDType of U8: %v", err)
	}
	if _, err := f.ReadRaw("e"); err == nil || !strings.Contains(err.Error(), `unsupported dtype "U8"`) {
		t.Errorf("ReadRaw(U8) error = %v", err)
	}
	if b, err := f.ReadBytes("e"); err != nil || string(b) != "\x01\x02\x03" {
		t.Errorf("ReadBytes(e) = %v, %v", b, err)
	}
	z, err := f.ReadRaw("z0")
	if err != nil || len(z.Bytes) != 0 || !z.Shape.Equal(tensor.Shape{0, 5}) {
		t.Errorf("ReadRaw(z0) = %+v, %v", z, err)
	}
	if _, err := f.ReadRaw("nope"); err == nil || !strings.Contains(err.Error(), `tensor "nope" not found`) {
		t.Errorf("missing tensor error = %v", err)
	}
	// Info returns a copy: changing it leaves the file's index intact.
	a, _ := f.Info("a")
	a.Shape[0] = 99
	if a2, _ := f.Info("a"); a2.Shape[0] != 1 {
		t.Error("Info shares the shape slice")
	}
}

func TestAcceptsEmptyAndNullMetadata(t *testing.T) {
	for _, hdr := range []string{`{}`, `{}      `, `{"__metadata__":null}`, `{ }`, "{\n}"} {
		f, err := ParseBytes(file(hdr, nil))
		if err != nil {
			t.Errorf("%q: %v", hdr, err)
			continue
		}
		if f.Len() != 0 || f.Metadata() != nil {
			t.Errorf("%q: %d tensors, metadata %v", hdr, f.Len(), f.Metadata())
		}
	}
}

// TestDTypeBits checks the element sizes of every dtype string of the
// format (safetensors README / src/tensor.rs Dtype::bitsize).
func TestDTypeBits(t *testing.T) {
	want := map[string]int{"BOOL": 8, "U8": 8, "I8": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
		"I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64, "C64": 64,
		"F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
		"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}
	if len(want) != len(dtypes) {
		t.Errorf("%d dtypes known, want %d", len(dtypes), len(want))
	}
	for name, bits := range want {
		if got, ok := DTypeBits(name); !ok || got != bits {
			t.Errorf("DTypeBits(%s) = %d, %v; want %d", name, got, ok, bits)
		}
	}
	if _, ok := DTypeBits("F128"); ok {
		t.Error("F128 accepted")
	}
	// Sub-byte dtypes parse when the total is whole bytes.
	f, err := ParseBytes(file(`{"q":{"dtype":"F4","shape":[4],"data_offsets":[0,2]},"r":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[2,5]}}`, make([]byte, 5)))
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := f.Info("q"); q.Bytes() != 2 {
		t.Errorf("F4 [4] spans %d bytes", q.Bytes())
	}
}
