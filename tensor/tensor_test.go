package tensor

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

func TestDTypeTable(t *testing.T) {
	for _, c := range []struct {
		dt    DType
		name  string
		size  int
		float bool
	}{
		{F32, "F32", 4, true}, {F16, "F16", 2, true}, {BF16, "BF16", 2, true},
		{I64, "I64", 8, false}, {I32, "I32", 4, false},
	} {
		if c.dt.String() != c.name || c.dt.Size() != c.size || c.dt.IsFloat() != c.float {
			t.Errorf("%d: got %s size %d float %v, want %s %d %v", int(c.dt), c.dt, c.dt.Size(), c.dt.IsFloat(), c.name, c.size, c.float)
		}
		got, err := ParseDType(c.name)
		if err != nil || got != c.dt {
			t.Errorf("ParseDType(%q) = %v, %v", c.name, got, err)
		}
	}
	for _, bad := range []string{"F64", "U8", "f32", "", "BOOL"} {
		if _, err := ParseDType(bad); err == nil || !strings.Contains(err.Error(), "unsupported dtype") {
			t.Errorf("ParseDType(%q) error = %v, want unsupported dtype", bad, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Size of an invalid dtype did not panic")
		}
	}()
	DType(99).Size()
}

func TestShape(t *testing.T) {
	s := Shape{2, 3, 4}
	if s.Numel() != 24 || s.Rank() != 3 || s.Dim(-1) != 4 || s.Dim(0) != 2 || s.String() != "[2,3,4]" {
		t.Errorf("shape methods: numel %d rank %d dim(-1) %d %s", s.Numel(), s.Rank(), s.Dim(-1), s)
	}
	if (Shape{}).Numel() != 1 || (Shape{}).String() != "[]" || (Shape{3, 0}).Numel() != 0 {
		t.Error("scalar / zero-size numel wrong")
	}
	c := s.Clone()
	c[0] = 9
	if s[0] != 2 || !s.Equal(Shape{2, 3, 4}) || s.Equal(c) || s.Equal(Shape{2, 3}) {
		t.Error("Clone shares memory or Equal is wrong")
	}
}

func TestHostConstructors(t *testing.T) {
	h := New(2, 3)
	if len(h.Data) != 6 || !h.Shape.Equal(Shape{2, 3}) {
		t.Fatalf("New(2,3) = %v with %d values", h.Shape, len(h.Data))
	}
	d := []float32{1, 2, 3, 4}
	if f := FromData(d, 2, 2); &f.Data[0] != &d[0] {
		t.Error("FromData copied the data")
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "3 values for shape [2,2]") {
			t.Errorf("FromData with a wrong count: recover() = %v", r)
		}
	}()
	FromData([]float32{1, 2, 3}, 2, 2)
}

// TestDecodeFloat32 decodes bytes built here from the formats' definitions.
func TestDecodeFloat32(t *testing.T) {
	le16 := func(v ...uint16) []byte {
		b := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], x)
		}
		return b
	}
	// binary16: 1.0 = 0x3c00, -2.5 = 0xc100, 65504 = 0x7bff, 2^-24 = 0x0001.
	// bfloat16: 1.0 = 0x3f80, -2.5 = 0xc020, 3.140625 = 0x4049.
	i64 := make([]byte, 16)
	binary.LittleEndian.PutUint64(i64, uint64(1<<40))
	binary.LittleEndian.PutUint64(i64[8:], uint64(0xffff_ffff_ffff_fffd)) // -3
	i32 := make([]byte, 8)
	binary.LittleEndian.PutUint32(i32, 77)
	binary.LittleEndian.PutUint32(i32[4:], 0xffff_ffff) // -1
	f32 := make([]byte, 8)
	binary.LittleEndian.PutUint32(f32, 0x40490fdb) // float32(pi)
	binary.LittleEndian.PutUint32(f32[4:], 0x80000000)
	for _, c := range []struct {
		dt   DType
		src  []byte
		want []float64
	}{
		{F16, le16(0x3c00, 0xc100, 0x7bff, 0x0001), []float64{1, -2.5, 65504, math.Ldexp(1, -24)}},
		{BF16, le16(0x3f80, 0xc020, 0x4049), []float64{1, -2.5, 3.140625}},
		{I64, i64, []float64{1 << 40, -3}},
		{I32, i32, []float64{77, -1}},
		{F32, f32, []float64{float64(float32(math.Pi)), math.Copysign(0, -1)}},
	} {
		got := make([]float32, len(c.want))
		DecodeFloat32(got, c.src, c.dt)
		for i := range got {
			if float64(got[i]) != c.want[i] || math.Signbit(float64(got[i])) != math.Signbit(c.want[i]) {
				t.Errorf("%v element %d = %g, want %g", c.dt, i, got[i], c.want[i])
			}
		}
	}
}

func TestEncodeFloat32(t *testing.T) {
	src := []float32{1, -2.5, 1 + 1.0/2048, 1e6}
	// binary16: 1+2^-11 is a tie between 0x3c00 and 0x3c01 → even 0x3c00;
	// 1e6 overflows to Inf.
	wantF16 := []uint16{0x3c00, 0xc100, 0x3c00, 0x7c00}
	// bfloat16 of 1e6 = 0x49742400 → 0x4974 (remainder 0x2400 < 0x8000).
	wantBF16 := []uint16{0x3f80, 0xc020, 0x3f80, 0x4974}
	for _, c := range []struct {
		dt   DType
		want []uint16
	}{{F16, wantF16}, {BF16, wantBF16}} {
		b := make([]byte, 2*len(src))
		EncodeFloat32(b, src, c.dt)
		for i, w := range c.want {
			if got := binary.LittleEndian.Uint16(b[2*i:]); got != w {
				t.Errorf("%v: element %d = %#04x, want %#04x", c.dt, i, got, w)
			}
		}
	}
	b := make([]byte, 4*len(src))
	EncodeFloat32(b, src, F32)
	for i, v := range src {
		if got := binary.LittleEndian.Uint32(b[4*i:]); got != math.Float32bits(v) {
			t.Errorf("F32 element %d = %#08x, want %#08x", i, got, math.Float32bits(v))
		}
	}
}

func TestRawFloat32(t *testing.T) {
	r := &Raw{DType: BF16, Shape: Shape{2}, Bytes: []byte{0x80, 0x3f, 0x20, 0xc0}}
	h, err := r.Float32()
	if err != nil || !h.Shape.Equal(Shape{2}) || h.Data[0] != 1 || h.Data[1] != -2.5 {
		t.Fatalf("Float32() = %v, %v", h, err)
	}
	bad := &Raw{DType: F32, Shape: Shape{2, 2}, Bytes: make([]byte, 12)}
	if _, err := bad.Float32(); err == nil || !strings.Contains(err.Error(), "12 bytes for F32 [2,2] (want 16)") {
		t.Errorf("mismatched Raw: error = %v", err)
	}
}
