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

// sdShapes are the SD-like GEMM shapes cpu/bench/compare.py measures
// against NumPy: mm_M_K_N is x[M,K]·W[N,K]ᵀ + b; conv_Cin_Cout_H_k is a
// k×k convolution (padding k/2) of [1,Cin,H,H] to Cout channels, a GEMM
// of Cout×(Cin·k·k)·(Cin·k·k)×H².
var sdShapes = []string{
	"mm_1024_320_320",
	"mm_4096_320_1280",
	"mm_4096_1280_320",
	"mm_77_768_768",
	"mm_4096_40_4096",
	"mm_4096_4096_40",
	"mm_4096_40_77",
	"mm_4096_77_40",
	"conv_320_320_32_3",
	"conv_640_640_16_3",
	"conv_4_320_64_3",
	"conv_1280_1280_8_3",
}

// BenchmarkSDShapes reports GMAC/s at sdShapes (run by cpu/bench/compare.py).
func BenchmarkSDShapes(b *testing.B) {
	for _, s := range sdShapes {
		var kind string
		var p [4]int
		if s[:3] == "mm_" {
			kind = "mm"
			fmt.Sscanf(s, "mm_%d_%d_%d", &p[0], &p[1], &p[2])
		} else {
			kind = "conv"
			fmt.Sscanf(s, "conv_%d_%d_%d_%d", &p[0], &p[1], &p[2], &p[3])
		}
		b.Run(s, func(b *testing.B) {
			be := New()
			rng := rand.New(rand.NewSource(1))
			var run func() backend.Tensor
			var macs float64
			if kind == "mm" {
				M, K, N := p[0], p[1], p[2]
				x := be.Upload(randHost(rng, M, K))
				w := be.Upload(randHost(rng, N, K))
				bias := be.Upload(randHost(rng, N))
				run = func() backend.Tensor { return be.MatMul(x, w, bias, backend.MatMulOpts{TransB: true}) }
				macs = float64(M * K * N)
			} else {
				Cin, Cout, H, k := p[0], p[1], p[2], p[3]
				x := be.Upload(randHost(rng, 1, Cin, H, H))
				w := be.Upload(randHost(rng, Cout, Cin, k, k))
				bias := be.Upload(randHost(rng, Cout))
				run = func() backend.Tensor { return be.Conv2D(x, w, bias, backend.Conv2DOpts{Stride: 1, Padding: k / 2}) }
				macs = float64(Cout * H * H * Cin * k * k)
			}
			be.Free(run())
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				be.Free(run())
			}
			b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}
