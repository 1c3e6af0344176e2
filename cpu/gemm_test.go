package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"testing"

	"github.com/tgate-web/tgate/backend"
)

// TestGEMMErrorBound checks MatMul and Conv2D element by element against a
// float64 reference, each within a bound on float32 accumulation over one
// K block of gemmKC: |got − ref| ≤ 4e-6·Σ_k |a·b| + 1.2e-7·|ref|, at sizes
// that leave a partial micro-tile, cache block and K block in every
// dimension (and in place and packed A operands, with 1 and 2 workers).
func TestGEMMErrorBound(t *testing.T) {
	check := func(t *testing.T, got []float32, ref, abs []float64) {
		t.Helper()
		bad := 0
		for i, r := range ref {
			if d := math.Abs(float64(got[i]) - r); d > 4e-6*abs[i]+1.2e-7*math.Abs(r) || d != d {
				if bad++; bad <= 3 {
					t.Errorf("element %d: got %v, want %v (Σ|a·b| %v)", i, got[i], r, abs[i])
				}
			}
		}
	}
	for _, procs := range []int{1, 2} {
		old := runtime.GOMAXPROCS(procs)
		for _, c := range []struct {
			M, K, N      int
			transA, bias bool
		}{{1, 1, 1, false, true}, {5, 255, 17, false, false}, {97, 263, 271, false, true}, {55, 519, 33, true, true}, {301, 40, 77, false, false}, {7, 1031, 15, true, false}} {
			t.Run(fmt.Sprintf("MatMul_M%d_K%d_N%d_TA%v_P%d", c.M, c.K, c.N, c.transA, procs), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(c.M*c.K + c.N)))
				be := New()
				ah := randHost(rng, c.M, c.K)
				if c.transA {
					ah = randHost(rng, c.K, c.M)
				}
				wh := randHost(rng, c.N, c.K)
				bh := randHost(rng, c.N)
				var bias backend.Tensor
				if c.bias {
					bias = be.Upload(bh)
				}
				out := be.MatMul(be.Upload(ah), be.Upload(wh), bias, backend.MatMulOpts{TransA: c.transA, TransB: true})
				got := out.(*Tensor).data()
				ref, abs := make([]float64, c.M*c.N), make([]float64, c.M*c.N)
				for i := 0; i < c.M; i++ {
					for j := 0; j < c.N; j++ {
						var s, sa float64
						for k := 0; k < c.K; k++ {
							a := ah.Data[i*c.K+k]
							if c.transA {
								a = ah.Data[k*c.M+i]
							}
							p := float64(a) * float64(wh.Data[j*c.K+k])
							s += p
							sa += math.Abs(p)
						}
						if c.bias {
							s += float64(bh.Data[j])
						}
						ref[i*c.N+j], abs[i*c.N+j] = s, sa
					}
				}
				check(t, got, ref, abs)
			})
		}
		for _, c := range []struct{ B, Cin, H, W, Cout, k, stride, pad int }{
			{1, 29, 13, 13, 53, 3, 1, 1}, {2, 3, 19, 23, 7, 3, 2, 1}, {1, 300, 9, 11, 50, 1, 1, 0}, {1, 4, 17, 16, 20, 3, 1, 1},
		} {
			t.Run(fmt.Sprintf("Conv_%v_P%d", c, procs), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(c.Cin*c.Cout + c.H)))
				be := New()
				xh := randHost(rng, c.B, c.Cin, c.H, c.W)
				wh := randHost(rng, c.Cout, c.Cin, c.k, c.k)
				bh := randHost(rng, c.Cout)
				out := be.Conv2D(be.Upload(xh), be.Upload(wh), be.Upload(bh), backend.Conv2DOpts{Stride: c.stride, Padding: c.pad})
				got := out.(*Tensor).data()
				Ho, Wo := (c.H+2*c.pad-c.k)/c.stride+1, (c.W+2*c.pad-c.k)/c.stride+1
				ref, abs := make([]float64, len(got)), make([]float64, len(got))
				for b := 0; b < c.B; b++ {
					for co := 0; co < c.Cout; co++ {
						for oy := 0; oy < Ho; oy++ {
							for ox := 0; ox < Wo; ox++ {
								s, sa := float64(bh.Data[co]), 0.0
								for ci := 0; ci < c.Cin; ci++ {
									for ky := 0; ky < c.k; ky++ {
										for kx := 0; kx < c.k; kx++ {
											iy, ix := oy*c.stride-c.pad+ky, ox*c.stride-c.pad+kx
											if iy < 0 || iy >= c.H || ix < 0 || ix >= c.W {
												continue
											}
											p := float64(xh.Data[((b*c.Cin+ci)*c.H+iy)*c.W+ix]) * float64(wh.Data[((co*c.Cin+ci)*c.k+ky)*c.k+kx])
											s += p
											sa += math.Abs(p)
										}
									}
								}
								o := ((b*c.Cout+co)*Ho+oy)*Wo + ox
								ref[o], abs[o] = s, sa
							}
						}
					}
				}
				check(t, got, ref, abs)
			})
		}
		runtime.GOMAXPROCS(old)
	}
}
