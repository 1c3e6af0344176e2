//go:build js && wasm

package webgpu

import (
	"fmt"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// TestQuantizedWeights runs MatMul and Conv2D with weights quantised to 8
// bits per row (QuantizeRows on each backend) against the CPU backend,
// across tile edges, row lengths that are not a multiple of four (so rows
// share words) and F32, F16 and BF16 sources, with and without a
// zero row. It also checks the quantised weight's GPU size.
func TestQuantizedWeights(t *testing.T) {
	var cases []gemmCase
	seed := uint64(900)
	q := func(b backend.Backend, w backend.Tensor) backend.Tensor {
		return b.(backend.Quantizer).QuantizeRows(w)
	}
	T := gemmTile
	for _, c := range []struct {
		m, k, n int
		dt      tensor.DType
	}{{5, 7, 3, tensor.F32}, {T + 1, 45, T - 1, tensor.F16}, {33, 320, 2*T + 3, tensor.F16}, {9, 13, 17, tensor.BF16}} {
		seed++
		s, c := seed, c
		cases = append(cases, gemmCase{fmt.Sprintf("matmul %dx%d·(%dx%d)ᵀ 8-bit from %v", c.m, c.k, c.n, c.k, c.dt),
			func(b backend.Backend, up func(*tensor.Host, tensor.DType) backend.Tensor) backend.Tensor {
				x := up(randn(s, 1, 2, c.m, c.k), tensor.F32)
				wh := randn(s+1000, 0.2, c.n, c.k)
				for j := 0; j < c.k; j++ { // row 1 all zeros: scale 1
					wh.Data[c.k+j] = 0
				}
				wq := q(b, up(wh, c.dt))
				out := b.MatMul(x, wq, up(randn(s+2000, 1, c.n), tensor.F32), backend.MatMulOpts{TransB: true})
				b.Free(wq)
				return out
			}})
	}
	for _, c := range []struct{ cin, h, w, cout, kh int }{{3, 7, 9, 5, 3}, {9, 6, 7, T + 5, 3}, {40, 8, 8, 40, 3}, {6, 5, 5, 7, 1}} {
		seed++
		s, c := seed, c
		cases = append(cases, gemmCase{fmt.Sprintf("conv x[1,%d,%d,%d] w[%d,%d,%d,%d] 8-bit", c.cin, c.h, c.w, c.cout, c.cin, c.kh, c.kh),
			func(b backend.Backend, up func(*tensor.Host, tensor.DType) backend.Tensor) backend.Tensor {
				x := up(randn(s, 1, 1, c.cin, c.h, c.w), tensor.F32)
				wq := q(b, up(randn(s+1000, 0.3, c.cout, c.cin, c.kh, c.kh), tensor.F16))
				out := b.Conv2D(x, wq, up(randn(s+2000, 1, c.cout), tensor.F16), backend.Conv2DOpts{Padding: c.kh / 2})
				b.Free(wq)
				return out
			}})
	}
	checkGemm(t, cases, 2e-6)

	// The quantised copy holds a byte per element plus a scale per row.
	before := shared.Memory().Live
	w := upload(shared, randn(1, 1, 256, 1024), tensor.F16)
	wq := shared.QuantizeRows(w)
	shared.Free(w)
	if got, max := shared.Memory().Live-before, int64(256*1024+4*256); got > max {
		t.Errorf("an 8-bit [256, 1024] weight holds %d bytes on the GPU, want at most %d", got, max)
	}
	if wq.DType() != tensor.I8 {
		t.Errorf("QuantizeRows gave dtype %v, want I8", wq.DType())
	}
	shared.Free(wq)
}
