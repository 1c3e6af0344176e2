package tensor

import (
	"math"
	"math/rand"
	"sort"
	"testing"
)

// refF16 computes the value of an IEEE binary16 bit pattern from its
// fields in float64: (-1)^s × 2^(e−15) × (1 + m/1024) for normal numbers,
// (-1)^s × 2^−14 × m/1024 for subnormals, ±Inf or NaN for e = 31.
func refF16(h uint16) float64 {
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	var v float64
	switch {
	case e == 31 && m == 0:
		v = math.Inf(1)
	case e == 31:
		v = math.NaN()
	case e == 0:
		v = math.Ldexp(m, -24)
	default:
		v = math.Ldexp(1024+m, e-25)
	}
	if h&0x8000 != 0 {
		v = math.Copysign(v, -1)
	}
	return v
}

// refBF16 computes the value of a bfloat16 bit pattern from its fields in
// float64 (8 exponent bits, bias 127, 7 mantissa bits).
func refBF16(h uint16) float64 {
	e := int(h>>7) & 0xff
	m := float64(h & 0x7f)
	var v float64
	switch {
	case e == 255 && m == 0:
		v = math.Inf(1)
	case e == 255:
		v = math.NaN()
	case e == 0:
		v = math.Ldexp(m, -133)
	default:
		v = math.Ldexp(128+m, e-134)
	}
	if h&0x8000 != 0 {
		v = math.Copysign(v, -1)
	}
	return v
}

// refNarrow rounds x to nearest, ties to even, in a 16-bit format whose
// non-negative finite patterns 0..inf-1 are ordered by value and whose
// pattern inf is +Inf. value gives a pattern's value; overflowTo is the
// value the step after the largest finite number would have if the
// exponent range were unbounded (so a tie with it rounds to Inf, as
// IEEE 754 requires). It brackets |x| between the two neighbouring
// representable values and compares with their exact midpoint.
func refNarrow(x float32, inf uint16, value func(uint16) float64, overflowTo float64) uint16 {
	var sign uint16
	if math.Signbit(float64(x)) {
		sign = 0x8000
	}
	a := math.Abs(float64(x))
	if math.IsInf(a, 1) {
		return sign | inf
	}
	// Largest pattern whose value is ≤ a (value(inf) = +Inf > a).
	lo := uint16(sort.Search(int(inf)+1, func(h int) bool { return value(uint16(h)) > a }) - 1)
	vlo := value(lo)
	if vlo == a {
		return sign | lo
	}
	hi := lo + 1
	vhi := value(hi)
	if hi == inf {
		vhi = overflowTo
	}
	mid := (vlo + vhi) / 2 // exact: both have few significant bits
	switch {
	case a < mid:
		return sign | lo
	case a > mid:
		return sign | hi
	case lo&1 == 0:
		return sign | lo
	default:
		return sign | hi
	}
}

func refF32ToF16(x float32) uint16  { return refNarrow(x, 0x7c00, refF16, 65536) }
func refF32ToBF16(x float32) uint16 { return refNarrow(x, 0x7f80, refBF16, math.Ldexp(1, 128)) }

func TestF16ToF32AllPatterns(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := F16ToF32(h)
		want := refF16(h)
		if math.IsNaN(want) {
			b := math.Float32bits(got)
			if !math.IsNaN(float64(got)) || b>>31 != uint32(h>>15) || (b>>13)&0x3ff != uint32(h&0x3ff) || b&0x1fff != 0 {
				t.Fatalf("F16ToF32(%#04x) = %#08x, want NaN with sign %d and payload %#x", h, b, h>>15, h&0x3ff)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("F16ToF32(%#04x) = %g, want %g", h, got, want)
		}
	}
}

func TestF16RoundTripAllPatterns(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := F32ToF16(F16ToF32(h))
		want := h
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			want = h | 0x200 // NaN comes back quiet with its payload
		}
		if got != want {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x, want %#04x", h, got, want)
		}
	}
}

func checkF16(t *testing.T, x float32) {
	t.Helper()
	got := F32ToF16(x)
	if want := refF32ToF16(x); got != want {
		t.Fatalf("F32ToF16(%g = %#08x) = %#04x (%g), want %#04x (%g)",
			x, math.Float32bits(x), got, refF16(got), want, refF16(want))
	}
}

// TestF32ToF16Neighbourhoods checks rounding at and around every
// representable half and every midpoint between neighbouring halves (the
// ties), both signs: subnormals, the normal range, and overflow to Inf.
func TestF32ToF16Neighbourhoods(t *testing.T) {
	inf32 := float32(math.Inf(1))
	for h := uint16(0); h < 0x7c00; h++ {
		v := refF16(h)
		next := 65536.0
		if h+1 < 0x7c00 {
			next = refF16(h + 1)
		}
		mid := float32((v + next) / 2)
		if float64(mid) != (v+next)/2 {
			t.Fatalf("midpoint after %#04x not representable in float32", h)
		}
		for _, x := range []float32{float32(v), mid,
			math.Nextafter32(float32(v), inf32), math.Nextafter32(float32(v), 0),
			math.Nextafter32(mid, inf32), math.Nextafter32(mid, 0)} {
			checkF16(t, x)
			checkF16(t, -x)
		}
	}
	// Specific cases stated by IEEE 754 binary16.
	for _, c := range []struct {
		x    float32
		want uint16
	}{
		{0, 0}, {float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff},
		{65519.99, 0x7bff}, {65520, 0x7c00}, {1e9, 0x7c00}, {-1e9, 0xfc00},
		{float32(math.Ldexp(1, -24)), 0x0001}, {float32(math.Ldexp(1, -25)), 0x0000},
		{float32(math.Ldexp(1.5, -25)), 0x0001}, {float32(math.Ldexp(3, -25)), 0x0002},
		{float32(math.Ldexp(1, -14)), 0x0400}, {math.SmallestNonzeroFloat32, 0},
		{-math.SmallestNonzeroFloat32, 0x8000},
		{1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02},
		{inf32, 0x7c00}, {-inf32, 0xfc00},
	} {
		if got := F32ToF16(c.x); got != c.want {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", c.x, got, c.want)
		}
	}
}

func TestF32ToF16Random(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 1<<20; i++ {
		x := math.Float32frombits(rng.Uint32())
		if math.IsNaN(float64(x)) {
			continue
		}
		checkF16(t, x)
	}
	// Uniform over the binary16 range too, where most rounding happens.
	for i := 0; i < 1<<18; i++ {
		checkF16(t, float32(math.Ldexp(rng.Float64()*2-1, rng.Intn(44)-26)))
	}
}

func TestF32ToF16NaN(t *testing.T) {
	for _, b := range []uint32{0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0x7f802000} {
		h := F32ToF16(math.Float32frombits(b))
		if h&0x7c00 != 0x7c00 || h&0x3ff == 0 || uint32(h>>15) != b>>31 {
			t.Errorf("F32ToF16(NaN %#08x) = %#04x, want a NaN with the same sign", b, h)
		}
	}
}

func TestBF16ToF32AllPatterns(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := BF16ToF32(h)
		want := refBF16(h)
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) || math.Float32bits(got) != uint32(h)<<16 {
				t.Fatalf("BF16ToF32(%#04x) = %#08x, want NaN %#08x", h, math.Float32bits(got), uint32(h)<<16)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("BF16ToF32(%#04x) = %g, want %g", h, got, want)
		}
	}
}

func TestBF16RoundTripAllPatterns(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := F32ToBF16(BF16ToF32(h))
		want := h
		if h&0x7f80 == 0x7f80 && h&0x7f != 0 {
			want = h | 0x40
		}
		if got != want {
			t.Fatalf("F32ToBF16(BF16ToF32(%#04x)) = %#04x, want %#04x", h, got, want)
		}
	}
}

func checkBF16(t *testing.T, x float32) {
	t.Helper()
	got := F32ToBF16(x)
	if want := refF32ToBF16(x); got != want {
		t.Fatalf("F32ToBF16(%g = %#08x) = %#04x, want %#04x", x, math.Float32bits(x), got, want)
	}
}

// TestF32ToBF16Neighbourhoods checks rounding at and around every
// representable bfloat16 and every midpoint (tie) between neighbours.
func TestF32ToBF16Neighbourhoods(t *testing.T) {
	inf32 := float32(math.Inf(1))
	for h := uint16(0); h < 0x7f80; h++ {
		v := refBF16(h)
		next := math.Ldexp(1, 128)
		if h+1 < 0x7f80 {
			next = refBF16(h + 1)
		}
		m := (v + next) / 2
		mid := float32(m)
		if float64(mid) != m {
			t.Fatalf("midpoint after %#04x not representable in float32", h)
		}
		for _, x := range []float32{float32(v), mid,
			math.Nextafter32(float32(v), inf32), math.Nextafter32(float32(v), 0),
			math.Nextafter32(mid, inf32), math.Nextafter32(mid, 0)} {
			checkBF16(t, x)
			checkBF16(t, -x)
		}
	}
	for _, c := range []struct {
		bits uint32
		want uint16
	}{
		{0x3f808000, 0x3f80}, // tie, even below
		{0x3f818000, 0x3f82}, // tie, odd below: up
		{0x3f808001, 0x3f81},
		{0x7f7fffff, 0x7f80}, // largest float32 rounds to Inf
		{0x7f7f7fff, 0x7f7f},
		{0x7f7f8000, 0x7f80}, // tie at the top: to even = Inf
		{0x80000000, 0x8000},
		{0x00008000, 0x0000}, {0x00018000, 0x0002}, {0x00008001, 0x0001},
		{0x7f800000, 0x7f80}, {0xff800000, 0xff80},
	} {
		if got := F32ToBF16(math.Float32frombits(c.bits)); got != c.want {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", c.bits, got, c.want)
		}
	}
}

func TestF32ToBF16Random(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 1<<20; i++ {
		x := math.Float32frombits(rng.Uint32())
		if math.IsNaN(float64(x)) {
			continue
		}
		checkBF16(t, x)
	}
}

func TestF32ToBF16NaN(t *testing.T) {
	for _, b := range []uint32{0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0x7f80ffff} {
		h := F32ToBF16(math.Float32frombits(b))
		if h&0x7f80 != 0x7f80 || h&0x7f == 0 || uint32(h>>15) != b>>31 {
			t.Errorf("F32ToBF16(NaN %#08x) = %#04x, want a NaN with the same sign", b, h)
		}
	}
}
