package rng

import (
	"encoding/json"
	"github.com/tgate-web/tgate/internal/fma"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

// The first outputs of MT19937 seeded with 5489 (the reference
// implementation's default seed), from mt19937ar.c / C++ std::mt19937;
// the 10000th output is 4123659995 (C++11 [rand.predef]).
func TestMT19937Reference(t *testing.T) {
	m := NewMT19937(5489)
	want := []uint32{3499211612, 581869302, 3890346734, 3586334585, 545404204}
	for i, w := range want {
		if got := m.Uint32(); got != w {
			t.Fatalf("output %d = %d, want %d", i, got, w)
		}
	}
	m.Seed(5489)
	var v uint32
	for i := 0; i < 10000; i++ {
		v = m.Uint32()
	}
	if v != 4123659995 {
		t.Fatalf("10000th output = %d, want 4123659995", v)
	}
}

// exactF32 asserts bit equality of float32 draws with goldens printed from
// float32 values.
func exactF32(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	if len(got) < len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i, w := range want {
		if got[i] != float32(w) {
			t.Errorf("%s[%d] = %.9g, want %.9g", what, i, got[i], float32(w))
		}
	}
}

func TestTorchRand(t *testing.T) {
	g := loadRNGGoldens(t)
	exactF32(t, "rand(5)", NewTorch(0).Rand(5), g.Rand5)
}

func TestTorchRandnSmall(t *testing.T) {
	g := loadRNGGoldens(t)
	// n < 16: the double Box-Muller path with the cached sin sample.
	exactF32(t, "randn(5)", NewTorch(0).Randn(5), g.Randn5)
}

func TestTorchRandn16(t *testing.T) {
	g := loadRNGGoldens(t)
	exactF32(t, "randn(16)", NewTorch(0).Randn(16), g.Randn16)
}

// checkSummary compares a draw with the goldens' first/last values (bit for
// bit) and its sum and absolute sum. A single value off by one ulp moves the
// sums by about 1e-7, far above the 1e-9 tolerance, so the sums check every
// element, not just the printed ones.
func checkSummary(t *testing.T, what string, got []float32, want summary) {
	t.Helper()
	exactF32(t, what+" first8", got[:8], want.First8)
	exactF32(t, what+" last4", got[len(got)-4:], want.Last4)
	var sum, abs float64
	for _, v := range got {
		sum += float64(v)
		abs += math.Abs(float64(v))
	}
	if math.Abs(sum-want.Sum) > 1e-9*math.Max(1, math.Abs(want.Sum)) {
		t.Errorf("%s sum = %.12f, want %.12f", what, sum, want.Sum)
	}
	if math.Abs(abs-want.AbsSum) > 1e-9*want.AbsSum {
		t.Errorf("%s abs sum = %.12f, want %.12f", what, abs, want.AbsSum)
	}
}

func TestTorchRandnLatentShapes(t *testing.T) {
	g := loadRNGGoldens(t)
	checkSummary(t, "seed42 randn(1,4,8,8)", NewTorch(42).Randn(1*4*8*8), g.Seed42)
	checkSummary(t, "seed0 randn(1,4,64,64)", NewTorch(0).Randn(1*4*64*64), g.Seed0Big)
}

// Every text-to-image golden run's init.latents is randn([1,4,16,16]) from
// torch.Generator().manual_seed(42); all 1024 values must match bit for bit.
// (The img2img and inpainting runs start from an encoded image instead.)
func TestTorchRandnInitLatents(t *testing.T) {
	runs, err := filepath.Glob(filepath.Join(golden.Dir(t, "golden", "runs"), "*.safetensors"))
	if err != nil || len(runs) == 0 {
		t.Fatalf("no golden runs found (%v)", err)
	}
	for _, path := range runs {
		if editingRun(t, strings.TrimSuffix(path, ".safetensors")+".json") {
			continue
		}
		want, ok := golden.Tensors(t, path)["init.latents"]
		if !ok {
			t.Fatalf("%s: no tensor \"init.latents\"", path)
		}
		n := want.Shape.Numel()
		got := NewTorch(42).Randn(n)
		bad := 0
		for i := range want.Data {
			if got[i] != want.Data[i] {
				if bad < 3 {
					t.Errorf("%s: init.latents[%d] = %.9g, want %.9g", filepath.Base(path), i, got[i], want.Data[i])
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d values differ", filepath.Base(path), bad, n)
		}
	}
}

// The generator is a stream: drawing the same total in pieces continues the
// MT19937 sequence, and a second randn after a ≥16 draw starts from the
// next unused output (diffusers draws latents, then per-step noise).
func TestTorchStreamContinues(t *testing.T) {
	a := NewTorch(7)
	first := a.Randn(32)
	second := a.Randn(32)
	b := NewTorch(7)
	both := b.Randn(64)
	// Blocks of 16 are independent given their uniforms, and 32+32 draws
	// the same 64 uniforms as one call of 64.
	for i := 0; i < 32; i++ {
		if first[i] != both[i] || second[i] != both[32+i] {
			t.Fatalf("stream split differs at %d", i)
		}
	}
	// A 20-element draw consumes 20 + 16 outputs (the re-drawn tail).
	c := NewTorch(7)
	c.Randn(20)
	d := NewTorch(7)
	for i := 0; i < 36; i++ {
		d.Random()
	}
	if c.Random() != d.Random() {
		t.Fatal("randn(20) did not consume 36 outputs")
	}
}

// The tail rule: for n % 16 != 0 the last 16 values come from 16 fresh
// uniforms, so they equal randn(16) of a generator advanced by n outputs.
func TestTorchRandnTail(t *testing.T) {
	got := NewTorch(3).Randn(20)
	ref := NewTorch(3)
	for i := 0; i < 20; i++ {
		ref.Random()
	}
	tail := ref.Randn(16)
	for i := 0; i < 16; i++ {
		if got[4+i] != tail[i] {
			t.Fatalf("tail value %d = %v, want %v", i, got[4+i], tail[i])
		}
	}
	head := NewTorch(3).Randn(16)
	for i := 0; i < 4; i++ {
		if got[i] != head[i] {
			t.Fatalf("head value %d = %v, want %v", i, got[i], head[i])
		}
	}
}

// ManualSeed drops the cached Box-Muller sample, like CPUGeneratorImpl's
// set_current_seed.
func TestTorchManualSeedResetsCache(t *testing.T) {
	g := NewTorch(0)
	g.Randn(1) // leaves a cached sample
	g.ManualSeed(0)
	exactF32(t, "randn(5) after reseed", g.Randn(5), loadRNGGoldens(t).Randn5)
}

// The float32 kernels agree with an independent float64 Box-Muller on the
// same uniforms to float32 precision.
func TestTorchKernelsMatchFloat64(t *testing.T) {
	for _, k := range []NormalKernel{KernelAVX2, KernelScalar} {
		g := NewTorch(11)
		g.Kernel = k
		got := g.Randn(4096)
		u := NewTorch(11)
		for b := 0; b < 4096; b += 16 {
			var d [16]float64
			for i := range d {
				d[i] = float64(u.Random()&(1<<24-1)) / (1 << 24)
			}
			for j := 0; j < 8; j++ {
				r := math.Sqrt(-2 * math.Log(1-d[j]))
				th := 2 * math.Pi * d[j+8]
				for i, want := range []float64{r * math.Cos(th), r * math.Sin(th)} {
					idx := b + j + 8*i
					if e := math.Abs(float64(got[idx]) - want); e > 4e-6*math.Max(1, math.Abs(want)) {
						t.Fatalf("%v: value %d = %v, float64 reference %v", k, idx, got[idx], want)
					}
				}
			}
		}
	}
}

func TestTorchRandnFloat64(t *testing.T) {
	// n < 16 uses the same double path as float32, without rounding.
	g := NewTorch(0).RandnFloat64(5)
	want := loadRNGGoldens(t).Randn5
	for i := range want {
		if float32(g[i]) != float32(want[i]) {
			t.Fatalf("randn(5, float64)[%d] = %v, want ≈ %v", i, g[i], want[i])
		}
	}
	// n ≥ 16: normal_fill<double> on 53-bit uniforms from random64().
	big := NewTorch(5).RandnFloat64(32)
	u := NewTorch(5)
	var d [32]float64
	for i := range d {
		d[i] = float64(u.Random64()&(1<<53-1)) / (1 << 53)
	}
	for b := 0; b < 32; b += 16 {
		for j := 0; j < 8; j++ {
			r := math.Sqrt(-2 * math.Log(1-d[b+j]))
			th := 2 * math.Pi * d[b+j+8]
			if big[b+j] != r*math.Cos(th) || big[b+j+8] != r*math.Sin(th) {
				t.Fatalf("randn(32, float64) block %d pair %d differs from Box-Muller", b/16, j)
			}
		}
	}
}

func TestNumpyStandardNormal(t *testing.T) {
	// np.random.RandomState(0).standard_normal(6) (SD_SEMANTICS §10).
	r := NewNumpyRandomState(0)
	want0 := []float64{1.76405235, 0.40015721, 0.97873798, 2.24089320, 1.86755799, -0.97727788}
	for i, w := range want0 {
		if got := r.Gauss(); math.Abs(got-w) > 5e-9 {
			t.Errorf("seed 0 draw %d = %.9f, want %.8f", i, got, w)
		}
	}
	g := loadRNGGoldens(t)
	all := NewNumpyRandomState(12345).StandardNormal(10000)
	last := all[len(all)-5:]
	for i, w := range g.NumpyLast {
		if math.Abs(last[i]-w) > 1e-15*math.Max(1, math.Abs(w)) {
			t.Errorf("seed 12345 randn(10000)[%d] = %.17g, want %.17g", 9995+i, last[i], w)
		}
	}
}

// fma32 rounds once: check against exact rational arithmetic on the float64
// components for random operands, including midpoint cases built on purpose.
func TestFMA32(t *testing.T) {
	g := NewTorch(99)
	for i := 0; i < 20000; i++ {
		a := math.Float32frombits(g.Random()&0x3fffffff | 0x30000000)
		b := math.Float32frombits(g.Random()&0x3fffffff | 0x30000000)
		c := math.Float32frombits(g.Random()&0x3fffffff | 0x30000000)
		if g.Random()&1 == 1 {
			c = -c
		}
		got := fma.F32(a, b, c)
		want := refFMA32(a, b, c)
		if got != want {
			t.Fatalf("fma.F32(%v,%v,%v) = %v, want %v", a, b, c, got, want)
		}
	}
	// A midpoint that a float64 FMA would double-round: a·b = 1 + 2⁻²⁴
	// (halfway between float32 neighbours of 1) and c tiny negative.
	a := float32(1 + 1.0/(1<<12))
	b := float32(1 + 1.0/(1<<12))
	// a·b = 1 + 2⁻¹¹ + 2⁻²⁴: exactly a float32 midpoint plus 2⁻¹¹.
	for _, c := range []float32{1.0 / (1 << 30) / (1 << 30), -1.0 / (1 << 30) / (1 << 30)} {
		if got, want := fma.F32(a, b, c), refFMA32(a, b, c); got != want {
			t.Fatalf("midpoint%+g: fma32 = %v, want %v", c, got, want)
		}
	}
	if up := fma.F32(a, b, 1.0/(1<<30)/(1<<30)); up != math.Nextafter32(float32(1+1.0/(1<<11)), 2) {
		t.Fatalf("midpoint plus a tiny term rounded to %v, want the upper neighbour", up)
	}
}

// refFMA32 computes round-to-nearest-even of a·b + c with math/big.
func refFMA32(a, b, c float32) float32 {
	return bigFMA32(a, b, c)
}

// editingRun reports whether a run file records an image-editing pipeline
// (img2img, inpainting), whose latents do not start from the seed's randn.
func editingRun(t *testing.T, path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		Class string `json:"pipeline_class"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return strings.Contains(head.Class, "Img2Img") || strings.Contains(head.Class, "Inpaint")
}
