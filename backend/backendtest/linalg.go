package backendtest

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

const (
	f32  = tensor.F32
	f16  = tensor.F16
	bf16 = tensor.BF16
)

// float32Min is -math.MaxFloat32, the additive mask transformers uses
// (torch.finfo(float32).min).
const float32Min = -math.MaxFloat32

func testMatMul(t *testing.T, s *suite) {
	type mm struct {
		aBatch, bBatch []int
		M, K, N        int
		transA, transB bool
		bias           bool
		bDT, biasDT    tensor.DType
	}
	cases := []mm{
		{M: 1, K: 1, N: 1},
		{M: 3, K: 4, N: 5, bias: true},
		{M: 5, K: 3, N: 4, transA: true},
		{M: 4, K: 5, N: 3, transB: true, bias: true},
		{M: 3, K: 5, N: 4, transA: true, transB: true, bias: true},
		{M: 257, K: 5, N: 3, bias: true},
		{M: 3, K: 257, N: 5},
		{M: 5, K: 3, N: 257, transB: true, bias: true},
		{M: 255, K: 4, N: 1, transA: true},
		{M: 1, K: 255, N: 4, transB: true, bias: true},
		{M: 4, K: 1, N: 256, bias: true},
		{M: 256, K: 3, N: 5, transA: true, transB: true},
		{M: 1, K: 256, N: 1},
		{M: 1, K: 64, N: 65, transB: true, bias: true},
		{M: 65, K: 63, N: 1},
		{M: 63, K: 1, N: 64, transA: true},
		{M: 63, K: 64, N: 65, bias: true},
		{M: 65, K: 63, N: 64, transA: true, transB: true},
		{M: 64, K: 65, N: 63, transB: true, bias: true},
		{M: 255, K: 256, N: 257, transB: true, bias: true},
		{M: 64, K: 256, N: 257, bias: true},
		{M: 256, K: 257, N: 63, transA: true},
		// Batches: a batched with b shared, both batched, b with fewer
		// leading dimensions than a.
		{aBatch: []int{2, 3}, M: 5, K: 4, N: 6, bias: true},
		{aBatch: []int{2}, bBatch: []int{2}, M: 5, K: 4, N: 6, transA: true},
		{aBatch: []int{2, 3}, bBatch: []int{3}, M: 5, K: 4, N: 6, transB: true, bias: true},
		{aBatch: []int{4}, bBatch: []int{4}, M: 65, K: 64, N: 63},
		{aBatch: []int{3}, M: 1, K: 257, N: 3, transB: true, bias: true},
		// Weights and biases in their checkpoint encodings.
		{M: 5, K: 64, N: 65, transB: true, bias: true, bDT: f16, biasDT: f16},
		{M: 63, K: 65, N: 3, transB: true, bias: true, bDT: bf16, biasDT: bf16},
		{M: 4, K: 5, N: 257, bias: true, bDT: f16},
		{M: 3, K: 257, N: 4, transB: true, bias: true, bDT: bf16, biasDT: f16},
		{aBatch: []int{2}, M: 3, K: 7, N: 5, transB: true, bias: true, bDT: f16, biasDT: bf16},
		{aBatch: []int{2}, bBatch: []int{2}, M: 4, K: 6, N: 3, bDT: bf16},
		// Every tile edge partial in M, N and K at once: sizes that are
		// not multiples of 2, 3 or 16 (so of no power-of-two GPU tile nor
		// the CPU kernel's 6×16), within SmallMaxWork...
		{M: 37, K: 67, N: 43, bias: true},
		{M: 43, K: 37, N: 67, transA: true, transB: true, bias: true},
		{M: 67, K: 43, N: 37, transB: true},
		// ...and larger ones that also cut the CPU's cache blocks (48 rows,
		// 256 columns, K blocks of 256) and the GPU's bigger tiles short.
		{M: 101, K: 261, N: 263, transB: true, bias: true},
		{M: 263, K: 517, N: 53, transA: true, bias: true},
		{aBatch: []int{3}, bBatch: []int{3}, M: 53, K: 259, N: 101},
		// Model-shaped with K not a multiple of 16: attention over heads of
		// 40 (scores against 77 text tokens, and probabilities times
		// values), and a Linear layer fed by a 77-token sequence.
		{aBatch: []int{2}, bBatch: []int{2}, M: 16, K: 40, N: 77, transB: true},
		{aBatch: []int{2}, bBatch: []int{2}, M: 16, K: 77, N: 40},
		{aBatch: []int{2, 8}, bBatch: []int{2, 8}, M: 64, K: 40, N: 77, transB: true},
		{aBatch: []int{2, 8}, bBatch: []int{2, 8}, M: 64, K: 77, N: 40},
		{M: 40, K: 77, N: 40, transA: true, transB: true, bias: true},
		{M: 1024, K: 40, N: 320, transB: true, bias: true, bDT: f16, biasDT: f16},
	}
	for _, c := range cases {
		nm := name("M%d_K%d_N%d", c.M, c.K, c.N)
		if len(c.aBatch) > 0 {
			nm += name("_a%v", tensor.Shape(c.aBatch))
		}
		if len(c.bBatch) > 0 {
			nm += name("_b%v", tensor.Shape(c.bBatch))
		}
		if c.transA {
			nm += "_TA"
		}
		if c.transB {
			nm += "_TB"
		}
		if c.bias {
			nm += "_bias"
		}
		if c.bDT != f32 || c.biasDT != f32 {
			nm += name("_%v_%v", c.bDT, c.biasDT)
		}
		s.run(t, nm, max(numel(c.aBatch), 1)*c.M*c.K*c.N, func(e *env) {
			ash := append(append([]int(nil), c.aBatch...), c.M, c.K)
			if c.transA {
				ash = append(append([]int(nil), c.aBatch...), c.K, c.M)
			}
			bsh := append(append([]int(nil), c.bBatch...), c.K, c.N)
			if c.transB {
				bsh = append(append([]int(nil), c.bBatch...), c.N, c.K)
			}
			ah := e.randn(1, ash...)
			a := e.in(ah)
			b, bh := e.inAs(e.randn(1, bsh...), c.bDT)
			var bias backend.Tensor
			var biasRef *array
			if c.bias {
				var h *tensor.Host
				bias, h = e.inAs(e.randn(1, c.N), c.biasDT)
				biasRef = arr(h)
			}
			got := e.b.MatMul(a, b, bias, backend.MatMulOpts{TransA: c.transA, TransB: c.transB})
			e.check("MatMul", got, refMatMul(arr(ah), arr(bh), biasRef, c.transA, c.transB), tolReduction)
		})
	}
}

func testConv2D(t *testing.T, s *suite) {
	type conv struct {
		B, Cin, H, W, Cout, kh, kw int
		stride, pad                int
		bias                       bool
		wDT, biasDT                tensor.DType
	}
	cases := []conv{
		{B: 1, Cin: 1, H: 1, W: 1, Cout: 1, kh: 3, kw: 3, stride: 1, pad: 1, bias: true},
		{B: 1, Cin: 3, H: 5, W: 9, Cout: 4, kh: 3, kw: 3, stride: 1, pad: 1, bias: true},
		{B: 2, Cin: 4, H: 7, W: 5, Cout: 3, kh: 3, kw: 3, stride: 2, pad: 1},
		{B: 1, Cin: 3, H: 8, W: 8, Cout: 4, kh: 3, kw: 3, stride: 2, pad: 0, bias: true},
		{B: 1, Cin: 5, H: 4, W: 4, Cout: 6, kh: 1, kw: 1, pad: 0, bias: true},
		{B: 2, Cin: 3, H: 5, W: 7, Cout: 2, kh: 1, kw: 1, stride: 2, pad: 0},
		{B: 1, Cin: 2, H: 65, W: 3, Cout: 3, kh: 3, kw: 3, stride: 1, pad: 1, bias: true},
		{B: 1, Cin: 2, H: 3, W: 63, Cout: 5, kh: 3, kw: 3, stride: 1, pad: 1},
		{B: 1, Cin: 65, H: 3, W: 3, Cout: 5, kh: 3, kw: 3, stride: 1, pad: 1, bias: true},
		{B: 1, Cin: 256, H: 1, W: 1, Cout: 257, kh: 1, kw: 1, bias: true},
		{B: 1, Cin: 5, H: 16, W: 16, Cout: 64, kh: 3, kw: 3, stride: 1, pad: 1, bias: true},
		{B: 1, Cin: 3, H: 5, W: 5, Cout: 2, kh: 3, kw: 1, stride: 1, pad: 1, bias: true},
		{B: 1, Cin: 64, H: 8, W: 8, Cout: 64, kh: 3, kw: 3, stride: 1, pad: 1, bias: true},
		{B: 2, Cin: 32, H: 17, W: 15, Cout: 16, kh: 3, kw: 3, stride: 2, pad: 1, bias: true},
		{B: 1, Cin: 8, H: 5, W: 5, Cout: 4, kh: 3, kw: 3, stride: 1, pad: 1, bias: true, wDT: f16, biasDT: f16},
		{B: 1, Cin: 4, H: 6, W: 7, Cout: 3, kh: 3, kw: 3, stride: 2, pad: 1, bias: true, wDT: bf16},
		{B: 1, Cin: 16, H: 4, W: 4, Cout: 8, kh: 1, kw: 1, wDT: f16},
		// Every tile edge partial: output channels (M), positions (N) and
		// Cin·kh·kw (K) all odd multiples of nothing a tile uses, within
		// SmallMaxWork (K 54, 19 channels, 11×11 positions)...
		{B: 1, Cin: 6, H: 11, W: 11, Cout: 19, kh: 3, kw: 3, stride: 1, pad: 1, bias: true},
		{B: 2, Cin: 5, H: 13, W: 9, Cout: 11, kh: 3, kw: 3, stride: 2, pad: 1},
		// ...and past the CPU's blocks (48 channels, 128 positions, K
		// blocks of 256): K 261, 53 channels, 169 and 2·49 positions.
		{B: 1, Cin: 29, H: 13, W: 13, Cout: 53, kh: 3, kw: 3, stride: 1, pad: 1, bias: true},
		{B: 2, Cin: 29, H: 13, W: 13, Cout: 53, kh: 3, kw: 3, stride: 2, pad: 1, bias: true, wDT: f16},
		{B: 1, Cin: 263, H: 11, W: 13, Cout: 37, kh: 1, kw: 1, bias: true},
		// Model-shaped with K not a multiple of 16: the UNet's conv_in
		// (4 latent channels, K 36) and a VAE-like 3-channel input (K 27).
		{B: 1, Cin: 4, H: 8, W: 8, Cout: 32, kh: 3, kw: 3, stride: 1, pad: 1, bias: true},
		{B: 2, Cin: 4, H: 32, W: 32, Cout: 320, kh: 3, kw: 3, stride: 1, pad: 1, bias: true, wDT: f16, biasDT: f16},
		{B: 1, Cin: 3, H: 17, W: 15, Cout: 40, kh: 3, kw: 3, stride: 1, pad: 1, bias: true},
	}
	for _, c := range cases {
		stride := max(c.stride, 1)
		Ho, Wo := (c.H+2*c.pad-c.kh)/stride+1, (c.W+2*c.pad-c.kw)/stride+1
		work := c.B * c.Cout * Ho * Wo * c.Cin * c.kh * c.kw
		nm := name("x%v_w%v_s%d_p%d", tensor.Shape{c.B, c.Cin, c.H, c.W}, tensor.Shape{c.Cout, c.Cin, c.kh, c.kw}, stride, c.pad)
		if c.bias {
			nm += "_bias"
		}
		if c.wDT != f32 || c.biasDT != f32 {
			nm += name("_%v_%v", c.wDT, c.biasDT)
		}
		s.run(t, nm, work, func(e *env) {
			xh := e.randn(1, c.B, c.Cin, c.H, c.W)
			x := e.in(xh)
			w, wh := e.inAs(e.randn(1/math.Sqrt(float64(c.Cin*c.kh*c.kw)), c.Cout, c.Cin, c.kh, c.kw), c.wDT)
			var bias backend.Tensor
			var biasRef *array
			if c.bias {
				var h *tensor.Host
				bias, h = e.inAs(e.randn(1, c.Cout), c.biasDT)
				biasRef = arr(h)
			}
			got := e.b.Conv2D(x, w, bias, backend.Conv2DOpts{Stride: c.stride, Padding: c.pad})
			e.check("Conv2D", got, refConv2D(arr(xh), arr(wh), biasRef, stride, c.pad), tolReduction)
		})
	}
}

func testAttention(t *testing.T, s *suite) {
	const (
		noBias   = iota
		bias11   // [1, 1, Nq, Nk]
		biasBH   // [B, H, Nq, Nk]
		biasB1   // [B, 1, Nq, Nk]
		bias1H   // [1, H, Nq, Nk]
		causal11 // [1, 1, Nq, Nk]: 0 on and below the diagonal, float32 min above
		causalB1 // [B, 1, Nq, Nk] causal mask plus a random bias
		keyPad1H // [1, H, Nq, Nk]: random bias, float32 min on the last keys (T5)
	)
	type att struct {
		B, H, Nq, Nk, D, Dv int
		bias                int
		scale               float32
	}
	cases := []att{
		{B: 1, H: 1, Nq: 1, Nk: 1, D: 4, Dv: 4},
		{B: 2, H: 2, Nq: 5, Nk: 3, D: 4, Dv: 4},
		{B: 1, H: 4, Nq: 63, Nk: 65, D: 8, Dv: 8, bias: bias11},
		{B: 2, H: 3, Nq: 4, Nk: 7, D: 5, Dv: 3, bias: biasBH},
		{B: 2, H: 2, Nq: 3, Nk: 5, D: 4, Dv: 4, bias: biasB1},
		{B: 1, H: 3, Nq: 5, Nk: 4, D: 4, Dv: 4, bias: bias1H, scale: 1},
		{B: 1, H: 2, Nq: 64, Nk: 64, D: 16, Dv: 16, bias: causal11},
		{B: 2, H: 1, Nq: 5, Nk: 5, D: 8, Dv: 8, bias: causalB1, scale: 0.3},
		{B: 1, H: 2, Nq: 6, Nk: 9, D: 4, Dv: 4, bias: keyPad1H, scale: 1},
		{B: 1, H: 1, Nq: 255, Nk: 1, D: 4, Dv: 4},
		{B: 1, H: 2, Nq: 1, Nk: 256, D: 32, Dv: 32, bias: bias11},
		{B: 1, H: 1, Nq: 3, Nk: 257, D: 3, Dv: 5},
		{B: 1, H: 8, Nq: 77, Nk: 77, D: 8, Dv: 8, bias: causal11},
		{B: 1, H: 1, Nq: 257, Nk: 257, D: 64, Dv: 64},
	}
	for _, c := range cases {
		nm := name("B%d_H%d_Nq%d_Nk%d_D%d_Dv%d", c.B, c.H, c.Nq, c.Nk, c.D, c.Dv)
		nm += [...]string{"", "_bias11", "_biasBH", "_biasB1", "_bias1H", "_causal", "_causalB1", "_keypad"}[c.bias]
		if c.scale != 0 {
			nm += name("_scale%g", c.scale)
		}
		work := c.B * c.H * c.Nq * c.Nk * (c.D + c.Dv)
		s.run(t, nm, work, func(e *env) {
			qh := e.randn(1, c.B, c.Nq, c.H*c.D)
			kh := e.randn(1, c.B, c.Nk, c.H*c.D)
			vh := e.randn(1, c.B, c.Nk, c.H*c.Dv)
			var bh *tensor.Host
			switch c.bias {
			case bias11, causal11:
				bh = e.randn(1, 1, 1, c.Nq, c.Nk)
			case biasBH:
				bh = e.randn(1, c.B, c.H, c.Nq, c.Nk)
			case biasB1, causalB1:
				bh = e.randn(1, c.B, 1, c.Nq, c.Nk)
			case bias1H, keyPad1H:
				bh = e.randn(1, 1, c.H, c.Nq, c.Nk)
			}
			if c.bias == causal11 || c.bias == causalB1 || c.bias == keyPad1H {
				rows := numel(bh.Shape) / c.Nk
				for r := 0; r < rows; r++ {
					i := r % c.Nq
					for j := 0; j < c.Nk; j++ {
						v := &bh.Data[r*c.Nk+j]
						switch {
						case c.bias == causal11 && j <= i:
							*v = 0
						case c.bias == keyPad1H && j < c.Nk-3:
						case j > i || c.bias == keyPad1H:
							*v = float32Min
						}
					}
				}
			}
			var bias backend.Tensor
			if bh != nil {
				bias = e.in(bh)
			}
			got := e.b.Attention(e.in(qh), e.in(kh), e.in(vh), bias, backend.AttentionOpts{Heads: c.H, Scale: c.scale})
			e.check("Attention", got, refAttention(arr(qh), arr(kh), arr(vh), arr(bh), c.H, float64(c.scale)), tolReduction)
		})
	}
}
