package cpu

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

func randHost(rng *rand.Rand, shape ...int) *tensor.Host {
	h := tensor.New(shape...)
	for i := range h.Data {
		h.Data[i] = float32(rng.NormFloat64())
	}
	return h
}

// BenchmarkMatMul measures x·Wᵀ + b (a Linear layer) at a few sizes and
// reports the multiply-add rate.
func BenchmarkMatMul(b *testing.B) {
	for _, c := range []struct{ M, K, N int }{{64, 64, 64}, {256, 320, 320}, {1024, 320, 1280}, {77, 768, 768}} {
		b.Run(fmt.Sprintf("M%d_K%d_N%d", c.M, c.K, c.N), func(b *testing.B) {
			be := New()
			rng := rand.New(rand.NewSource(1))
			x := be.Upload(randHost(rng, c.M, c.K))
			w := be.Upload(randHost(rng, c.N, c.K))
			bias := be.Upload(randHost(rng, c.N))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				be.Free(be.MatMul(x, w, bias, backend.MatMulOpts{TransB: true}))
			}
			b.ReportMetric(float64(c.M*c.K*c.N)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}

// BenchmarkConv2D measures 3×3 and 1×1 convolutions with padding 1 and 0.
func BenchmarkConv2D(b *testing.B) {
	for _, c := range []struct{ Cin, Cout, H, k, pad, stride int }{
		{64, 64, 32, 3, 1, 1},
		{4, 32, 32, 3, 1, 1},
		{128, 128, 16, 3, 1, 2},
		{320, 320, 8, 3, 1, 1},
		{64, 128, 32, 1, 0, 1},
	} {
		b.Run(fmt.Sprintf("Cin%d_Cout%d_%dx%d_k%d_s%d", c.Cin, c.Cout, c.H, c.H, c.k, c.stride), func(b *testing.B) {
			be := New()
			rng := rand.New(rand.NewSource(1))
			x := be.Upload(randHost(rng, 1, c.Cin, c.H, c.H))
			w := be.Upload(randHost(rng, c.Cout, c.Cin, c.k, c.k))
			bias := be.Upload(randHost(rng, c.Cout))
			ho := (c.H+2*c.pad-c.k)/c.stride + 1
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				be.Free(be.Conv2D(x, w, bias, backend.Conv2DOpts{Stride: c.stride, Padding: c.pad}))
			}
			macs := float64(c.Cout * ho * ho * c.Cin * c.k * c.k)
			b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}
