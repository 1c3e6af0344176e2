//go:build js && wasm

package webgpu

import (
	"fmt"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/tensor"
)

// upload puts h on b in dtype dt (F32, F16 or BF16, rounded).
func upload(b backend.Backend, h *tensor.Host, dt tensor.DType) backend.Tensor {
	if dt == tensor.F32 {
		return b.Upload(h)
	}
	r := &tensor.Raw{DType: dt, Shape: h.Shape.Clone(), Bytes: make([]byte, dt.Size()*len(h.Data))}
	tensor.EncodeFloat32(r.Bytes, h.Data, dt)
	return b.UploadRaw(r)
}

// gemmCase is one op compared with the CPU backend: run builds it on b
// from host inputs (uploading with up, which frees the upload afterwards).
type gemmCase struct {
	name string
	run  func(b backend.Backend, up func(*tensor.Host, tensor.DType) backend.Tensor) backend.Tensor
}

// checkGemm runs each case on a fresh CPU backend and on the shared
// WebGPU backend and compares them to tol of the output's magnitude.
func checkGemm(t *testing.T, cases []gemmCase, tol float64) {
	t.Helper()
	live := shared.Memory().Live
	ref := cpu.New()
	for _, c := range cases {
		on := func(b backend.Backend) *tensor.Host {
			var ins []backend.Tensor
			out := c.run(b, func(h *tensor.Host, dt tensor.DType) backend.Tensor {
				x := upload(b, h, dt)
				ins = append(ins, x)
				return x
			})
			h := readBack(t, b, out)
			b.Free(out)
			for _, x := range ins {
				b.Free(x)
			}
			return h
		}
		want := on(ref)
		got := on(shared)
		if err := shared.Err(); err != nil {
			t.Fatalf("%s: webgpu error: %v", c.name, err)
		}
		if !got.Shape.Equal(want.Shape) {
			t.Errorf("%s: webgpu shape %v, want %v", c.name, got.Shape, want.Shape)
			continue
		}
		if abs, rel, mag := diff(got, want); !(rel <= tol) {
			t.Errorf("%s %v: max abs error %.3g, relative %.3g of max |want| %.3g > %.0e", c.name, want.Shape, abs, rel, mag, tol)
		}
	}
	if m := shared.Memory().Live; m != live {
		t.Errorf("webgpu: %d bytes live after the cases, %d before", m, live)
	}
}

// TestMatMulTileEdges runs matmuls whose M, N and K are each one below,
// at and one above multiples of the kernel's output tile (gemmTile) and
// K step (gemmTK), including sizes below 4 (a thread's partial vec4) and
// a K that is not a multiple of 16, in every transpose combination, with
// F32, F16 and BF16 weights, bias and a broadcast batch. Short M (1–5,
// 65, 77) takes the half-size tile of matmulWG, the others the full one.
func TestMatMulTileEdges(t *testing.T) {
	var cases []gemmCase
	seed := uint64(100)
	add := func(batch []int, bBatch []int, m, n, k int, ta, tb bool, dt tensor.DType, bias bool) {
		seed++
		s := seed
		as := append(append([]int{}, batch...), m, k)
		if ta {
			as = append(append([]int{}, batch...), k, m)
		}
		bs := append(append([]int{}, bBatch...), k, n)
		if tb {
			bs = append(append([]int{}, bBatch...), n, k)
		}
		name := fmt.Sprintf("matmul %v·%v ta=%v tb=%v %v bias=%v", as, bs, ta, tb, dt, bias)
		cases = append(cases, gemmCase{name, func(b backend.Backend, up func(*tensor.Host, tensor.DType) backend.Tensor) backend.Tensor {
			a := up(randn(s, 1, as...), tensor.F32)
			w := up(randn(s+1000, 1, bs...), dt)
			var bt backend.Tensor
			if bias {
				bt = up(randn(s+2000, 1, n), dt)
			}
			return b.MatMul(a, w, bt, backend.MatMulOpts{TransA: ta, TransB: tb})
		}})
	}
	T, K := gemmTile, gemmTK
	for _, mnk := range [][3]int{
		{T - 1, T + 1, K + 1}, {T + 1, T - 1, K - 1}, {2*T + 3, T + 2, 2*K + 5},
		{1, 1, 1}, {3, 5, 7}, {T, T, K}, {5, 2*T + 1, 45}, {77, 33, 40},
	} {
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			add(nil, nil, mnk[0], mnk[1], mnk[2], tr[0], tr[1], tensor.F32, false)
		}
	}
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		add([]int{1}, nil, T+3, 3*T-1, 2*K+3, false, true, dt, true) // a Linear
		add([]int{2}, nil, 7, 9, 11, false, false, dt, true)
	}
	add([]int{2, 3}, []int{1, 3}, T+1, 6, K+3, false, false, tensor.F32, false) // b broadcast over a's first batch dim
	add([]int{2, 3}, []int{2, 3}, 5, T+1, 9, true, true, tensor.F32, true)
	checkGemm(t, cases, 2e-6)
}

// TestConvTileEdges runs convolutions whose output channels, output
// positions and filter rows (Cin·kh·kw) are partial tiles of conv2d.wgsl,
// with strides, paddings, non-square filters, output rows narrower than
// a thread's four positions (so a vec4 of positions spans several rows),
// a batch of three, and F16 and BF16 filters.
func TestConvTileEdges(t *testing.T) {
	var cases []gemmCase
	seed := uint64(500)
	add := func(bn, cin, h, w, cout, kh, kw, stride, pad int, dt tensor.DType, bias bool) {
		seed++
		s := seed
		name := fmt.Sprintf("conv x[%d,%d,%d,%d] w[%d,%d,%d,%d] s%d p%d %v bias=%v", bn, cin, h, w, cout, cin, kh, kw, stride, pad, dt, bias)
		cases = append(cases, gemmCase{name, func(b backend.Backend, up func(*tensor.Host, tensor.DType) backend.Tensor) backend.Tensor {
			x := up(randn(s, 1, bn, cin, h, w), tensor.F32)
			wt := up(randn(s+1000, 1, cout, cin, kh, kw), dt)
			var bt backend.Tensor
			if bias {
				bt = up(randn(s+2000, 1, cout), dt)
			}
			return b.Conv2D(x, wt, bt, backend.Conv2DOpts{Stride: stride, Padding: pad})
		}})
	}
	T := gemmTile
	add(1, 4, 8, 12, T+1, 3, 3, 1, 1, tensor.F32, true)  // conv_in: K = 36
	add(1, 5, 7, 9, T-1, 3, 3, 1, 1, tensor.F32, true)   // K = 45, 63 positions in rows of 9
	add(2, 7, 11, 6, 3, 3, 3, 2, 1, tensor.F32, false)   // stride 2, rows of 3 positions
	add(1, 3, 5, 1, 5, 3, 1, 1, 1, tensor.F32, true)     // one-wide rows
	add(3, 2, 3, 3, 2*T+1, 1, 1, 1, 0, tensor.F32, true) // 1×1, 9 positions
	add(1, 6, 9, 10, 9, 2, 3, 1, 0, tensor.F32, true)    // non-square filter, no padding
	add(1, 11, 13, 13, 17, 3, 3, 2, 1, tensor.F16, true) // downsampler-like
	add(1, 9, 6, 7, T+5, 3, 3, 1, 1, tensor.BF16, true)  // K = 81
	add(2, 40, 8, 8, 40, 3, 3, 1, 1, tensor.F16, true)   // K = 360 over 12 steps
	add(1, 3, 2, 2, 4, 5, 5, 1, 2, tensor.F32, false)    // filter larger than the image
	checkGemm(t, cases, 2e-6)
}

// nearConst returns shape's values c + sigma·N(0,1) per element: a
// variance of about sigma², which tests set near the norms' eps.
func nearConst(seed uint64, c, sigma float64, shape ...int) *tensor.Host {
	h := randn(seed, sigma, shape...)
	for i := range h.Data {
		h.Data[i] += float32(c)
	}
	return h
}

// TestNormNearEps runs group and layer norms over inputs whose variance
// is near eps (1e-6 against 1e-5, and 1e-5 against 1e-6), where
// 1/(√var + eps) in place of 1/√(var + eps) is off by several times, and
// over constant groups (variance 0, so only eps keeps the result finite).
func TestNormNearEps(t *testing.T) {
	var cases []gemmCase
	for i, c := range []struct {
		sigma float64
		eps   float32
	}{{1e-3, 1e-5}, {3e-3, 1e-6}, {0, 1e-5}} {
		s := uint64(900 + i)
		cases = append(cases,
			gemmCase{fmt.Sprintf("groupnorm σ=%g eps=%g", c.sigma, c.eps), func(b backend.Backend, up func(*tensor.Host, tensor.DType) backend.Tensor) backend.Tensor {
				x := up(nearConst(s, 0.5, c.sigma, 2, 8, 5, 7), tensor.F32)
				g := up(randn(s+1, 1, 8), tensor.F16)
				be := up(randn(s+2, 1, 8), tensor.F16)
				return b.GroupNorm(x, g, be, 4, c.eps, true)
			}},
			gemmCase{fmt.Sprintf("layernorm σ=%g eps=%g", c.sigma, c.eps), func(b backend.Backend, up func(*tensor.Host, tensor.DType) backend.Tensor) backend.Tensor {
				x := up(nearConst(s+3, -2, c.sigma, 3, 5, 40), tensor.F32)
				g := up(randn(s+4, 1, 40), tensor.F32)
				be := up(randn(s+5, 1, 40), tensor.F32)
				return b.LayerNorm(x, g, be, c.eps)
			}})
	}
	checkGemm(t, cases, 1e-4)
}
