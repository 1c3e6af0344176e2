package unet

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

// TestTimestepSinusoidPublished checks the values diffusers' own test
// (tests/models/test_layers_utils.py, spec §3.2) publishes for
// get_timestep_embedding(arange(128), 64)[23:26, 47:50].
func TestTimestepSinusoidPublished(t *testing.T) {
	ts := make([]float64, 128)
	for i := range ts {
		ts[i] = float64(i)
	}
	cases := []struct {
		flip  bool
		shift float64
		want  []float64
	}{
		{true, 0, []float64{0.3019, 0.2280, 0.1716, 0.3146, 0.2377, 0.1790, 0.3272, 0.2474, 0.1864}},
		{false, 1, []float64{0.9646, 0.9804, 0.9892, 0.9615, 0.9787, 0.9882, 0.9582, 0.9769, 0.9872}},
	}
	for _, c := range cases {
		e := TimestepSinusoid(ts, 64, c.flip, c.shift)
		k := 0
		for r := 23; r < 26; r++ {
			for col := 47; col < 50; col++ {
				got := float64(e.Data[r*64+col])
				if math.Abs(got-c.want[k]) > 5e-5 {
					t.Errorf("flip %v shift %v [%d,%d] = %.5f, want %.4f", c.flip, c.shift, r, col, got, c.want[k])
				}
				k++
			}
		}
	}
}

// TestTimestepSinusoidFloat64 compares every entry, including fractional
// timesteps and an odd width, with the formula evaluated in float64. The
// float32 rounding of t·freq bounds the difference by about 1e-4 at
// t ≈ 1000.
func TestTimestepSinusoidFloat64(t *testing.T) {
	ts := []float64{0, 1, 500.5, 981, 999}
	for _, dim := range []int{32, 33} {
		for _, flip := range []bool{true, false} {
			e := TimestepSinusoid(ts, dim, flip, 0)
			half := dim / 2
			for r, tv := range ts {
				for i := 0; i < half; i++ {
					arg := tv * math.Exp(-math.Log(10000)*float64(i)/float64(half))
					s, c := math.Sin(arg), math.Cos(arg)
					first, second := s, c
					if flip {
						first, second = c, s
					}
					if d := math.Abs(float64(e.Data[r*dim+i]) - first); d > 2e-4 {
						t.Fatalf("dim %d flip %v t %v col %d: off by %g", dim, flip, tv, i, d)
					}
					if d := math.Abs(float64(e.Data[r*dim+half+i]) - second); d > 2e-4 {
						t.Fatalf("dim %d flip %v t %v col %d: off by %g", dim, flip, tv, half+i, d)
					}
				}
				if dim%2 == 1 && e.Data[r*dim+dim-1] != 0 {
					t.Errorf("odd width: last column is %v, want 0", e.Data[r*dim+dim-1])
				}
			}
		}
	}
}

// TestGuidanceScaleEmbeddingGolden compares the LCM guidance embedding of
// w = [7, 3] with the one the diffusers pipeline computed (lcm golden).
func TestGuidanceScaleEmbeddingGolden(t *testing.T) {
	io := golden.Tensors(t, golden.Dir(t, "golden", "lcm_tiny_pipeline", "unet", "io.safetensors"))
	w := io["t999.in.guidance_w"]
	got := GuidanceScaleEmbedding([]float64{float64(w.Data[0]), float64(w.Data[1])}, 16)
	golden.AssertClose(t, "timestep_cond", got, io["t999.in.timestep_cond"], 1e-6)

	// Independent float64 evaluation, and the odd-width zero pad.
	e := GuidanceScaleEmbedding([]float64{0.5}, 9)
	for i := 0; i < 4; i++ {
		arg := 500 * math.Exp(-math.Log(10000)/3*float64(i))
		if d := math.Abs(float64(e.Data[i]) - math.Sin(arg)); d > 1e-4 {
			t.Errorf("sin column %d off by %g", i, d)
		}
		if d := math.Abs(float64(e.Data[4+i]) - math.Cos(arg)); d > 1e-4 {
			t.Errorf("cos column %d off by %g", i, d)
		}
	}
	if e.Data[8] != 0 {
		t.Errorf("odd width: last column %v, want 0", e.Data[8])
	}
}

// TestFMA32 compares the single-rounding float32 multiply-add with the
// exact value computed in big.Float, on random operands and on sums built
// to fall exactly halfway between two float32 values.
func TestFMA32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(a, b, c float32) {
		exact := new(big.Float).SetPrec(200).SetFloat64(float64(a))
		exact.Mul(exact, new(big.Float).SetPrec(200).SetFloat64(float64(b)))
		exact.Add(exact, new(big.Float).SetPrec(200).SetFloat64(float64(c)))
		want, _ := exact.Float32() // rounds to nearest even
		if got := fma32(a, b, c); got != want {
			t.Fatalf("fma32(%v, %v, %v) = %v, want %v", a, b, c, got, want)
		}
	}
	for i := 0; i < 20000; i++ {
		a := float32(r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10)))
		b := float32(r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10)))
		c := float32(r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10)))
		check(a, b, c)
	}
	// Sums whose float64 rounding lands exactly on a float32 midpoint, with
	// the discarded part deciding the direction:
	// −2^-24·(1−2^-23)·(1+2^-23) + (1+2^-23) = 1 + 2^-24 + 2^-70 rounds
	// up to 1 + 2^-23 (a plain float32(float64 sum) gives 1), and the
	// mirrored sum 1 + 2^-24 − 2^-70 rounds down to 1.
	check(-0x1p-24*(1-0x1p-23), 1+0x1p-23, 1+0x1p-23)
	if got := fma32(-0x1p-24*(1-0x1p-23), 1+0x1p-23, 1+0x1p-23); got != 1+0x1p-23 {
		t.Errorf("tie broken the wrong way: %v", got)
	}
	check(0x1p-24*(1-0x1p-23), 1+0x1p-23, 1)
}

// TestExpf32 checks the reproduction of PyTorch's float32 exp against the
// correctly rounded value: at most one ulp apart, and equal for most x.
func TestExpf32(t *testing.T) {
	same, n := 0, 0
	for x := float32(-20); x < 20; x += 0.001 {
		got := expf32(x)
		want := float32(math.Exp(float64(x)))
		if got != want && math.Nextafter32(got, want) != want {
			t.Fatalf("expf32(%v) = %v, correctly rounded %v: more than an ulp apart", x, got, want)
		}
		if got == want {
			same++
		}
		n++
	}
	if same < n*9/10 {
		t.Errorf("only %d of %d values correctly rounded", same, n)
	}
	if expf32(-200) != 0 || !math.IsInf(float64(expf32(200)), 1) || expf32(0) != 1 {
		t.Error("range limits")
	}
}
