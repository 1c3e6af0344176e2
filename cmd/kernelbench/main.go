//go:build js && wasm

// Command kernelbench times the WebGPU backend's main kernels at Stable
// Diffusion-like shapes scaled down (so that a software adapter finishes
// in seconds) and prints time and GFLOP/s per kernel. It is a wasm program
// run in headless Chromium by cmd/wasmtest:
//
//	GOOS=js GOARCH=wasm go build -o bin/kernelbench.wasm ./cmd/kernelbench
//	bin/wasmtest bin/kernelbench.wasm [-iters N] [-scale S]
//
// -scale multiplies the spatial and token sizes (1 = the default small
// shapes; 4 is close to SD 1.5 at 512 px for the attention and 3×3 conv).
// -run keeps the kernels whose name matches a regular expression. Each run
// is timed to the queue's completion and the median is printed.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
	"github.com/tgate-web/tgate/webgpu"
)

type bench struct {
	name  string
	flops float64 // floating-point operations of one run
	run   func() backend.Tensor
}

func main() {
	iters := flag.Int("iters", 3, "timed runs per kernel")
	scale := flag.Int("scale", 1, "size multiplier for spatial and token dimensions")
	run := flag.String("run", "", "only the kernels whose name matches this regular expression")
	flag.Parse()
	filter, err := regexp.Compile(*run)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kernelbench:", err)
		os.Exit(2)
	}

	b, err := webgpu.New(webgpu.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kernelbench:", err)
		os.Exit(1)
	}
	fmt.Printf("adapter: %s\n", b.AdapterInfo())
	rng := rand.New(rand.NewPCG(1, 2))
	upload := func(dt tensor.DType, shape ...int) backend.Tensor {
		h := tensor.New(shape...)
		for i := range h.Data {
			h.Data[i] = float32(rng.NormFloat64() * 0.1)
		}
		if dt == tensor.F32 {
			return b.Upload(h)
		}
		raw := make([]byte, len(h.Data)*dt.Size())
		tensor.EncodeFloat32(raw, h.Data, dt)
		return b.UploadRaw(&tensor.Raw{DType: dt, Shape: h.Shape, Bytes: raw})
	}

	s := *scale
	var benches []bench
	// Linear in a transformer block: tokens × 320 → 320 (SD 1.5 at 64×64
	// latents has 4096 tokens; scale 1 uses 256·s² tokens).
	tokens := 256 * s * s
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		x := upload(tensor.F32, 1, tokens, 320)
		w := upload(dt, 320, 320)
		bias := upload(dt, 320)
		benches = append(benches, bench{fmt.Sprintf("matmul %dx320·(320x320 %v)ᵀ+b", tokens, dt), 2 * float64(tokens) * 320 * 320,
			func() backend.Tensor { return b.MatMul(x, w, bias, backend.MatMulOpts{TransB: true}) }})
	}
	// 3×3 convolution of a ResNet block, 64 channels at 32·s × 32·s.
	hw := 32 * s
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		x := upload(tensor.F32, 1, 64, hw, hw)
		w := upload(dt, 64, 64, 3, 3)
		bias := upload(dt, 64)
		benches = append(benches, bench{fmt.Sprintf("conv3x3 64→64 %dx%d (%v)", hw, hw, dt), 2 * 64 * 64 * 9 * float64(hw*hw),
			func() backend.Tensor { return b.Conv2D(x, w, bias, backend.Conv2DOpts{Padding: 1}) }})
	}
	// The shapes of the kernel comparison with TF.js and ORT-web (issue
	// 10): a Linear of 1024 tokens (SD 1.5 at 32×32 latents), a 3×3 conv
	// of 320 channels at 16×16, and a matmul whose M, N and K are all
	// partial tiles.
	{
		x := upload(tensor.F32, 1, 1024, 320)
		w := upload(tensor.F32, 320, 320)
		bias := upload(tensor.F32, 320)
		benches = append(benches, bench{"matmul 1024x320·(320x320 F32)ᵀ+b", 2 * 1024 * 320 * 320,
			func() backend.Tensor { return b.MatMul(x, w, bias, backend.MatMulOpts{TransB: true}) }})
		x2 := upload(tensor.F32, 1, 1000, 330)
		w2 := upload(tensor.F16, 330, 310)
		benches = append(benches, bench{"matmul 1000x330·(330x310 F16)", 2 * 1000 * 330 * 310,
			func() backend.Tensor { return b.MatMul(x2, w2, nil, backend.MatMulOpts{}) }})
		xc := upload(tensor.F32, 1, 320, 16, 16)
		wc := upload(tensor.F32, 320, 320, 3, 3)
		bc := upload(tensor.F32, 320)
		benches = append(benches, bench{"conv3x3 320→320 16x16 (F32)+b", 2 * 320 * 320 * 9 * 256,
			func() backend.Tensor { return b.Conv2D(xc, wc, bc, backend.Conv2DOpts{Padding: 1}) }})
	}
	// Self-attention, 8 heads of 40 (SD 1.5's first block), 256·s² tokens.
	{
		q := upload(tensor.F32, 1, tokens, 320)
		k := upload(tensor.F32, 1, tokens, 320)
		v := upload(tensor.F32, 1, tokens, 320)
		benches = append(benches, bench{fmt.Sprintf("attention 8 heads×40, %d tokens", tokens), 2 * 2 * float64(tokens) * float64(tokens) * 320,
			func() backend.Tensor { return b.Attention(q, k, v, nil, backend.AttentionOpts{Heads: 8}) }})
	}
	// Cross-attention against 77 text tokens of 768 channels.
	{
		q := upload(tensor.F32, 1, tokens, 320)
		k := upload(tensor.F32, 1, 77, 320)
		v := upload(tensor.F32, 1, 77, 320)
		benches = append(benches, bench{fmt.Sprintf("cross-attention 8×40, %d×77", tokens), 2 * 2 * float64(tokens) * 77 * 320,
			func() backend.Tensor { return b.Attention(q, k, v, nil, backend.AttentionOpts{Heads: 8}) }})
	}
	// GroupNorm(32) + SiLU over 320 channels at 32·s × 32·s: about 8
	// operations per element (two reduction passes and the affine + SiLU).
	{
		x := upload(tensor.F32, 1, 320, hw, hw)
		g := upload(tensor.F16, 320)
		be := upload(tensor.F16, 320)
		benches = append(benches, bench{fmt.Sprintf("groupnorm32+silu 320x%dx%d", hw, hw), 8 * 320 * float64(hw*hw),
			func() backend.Tensor { return b.GroupNorm(x, g, be, 32, 1e-5, true) }})
	}

	sync := func() {
		if err := b.Sync(); err != nil {
			fmt.Fprintln(os.Stderr, "kernelbench:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("%-44s %12s %10s\n", "kernel", "ms/run", "GFLOP/s")
	for _, bc := range benches {
		if !filter.MatchString(bc.name) {
			continue
		}
		b.Free(bc.run()) // compile the pipeline and warm the pool
		sync()
		times := make([]float64, *iters)
		for i := range times {
			t0 := time.Now()
			b.Free(bc.run())
			sync()
			times[i] = time.Since(t0).Seconds()
		}
		slices.Sort(times)
		dt := times[len(times)/2]
		fmt.Printf("%-44s %12.2f %10.3f\n", bc.name, dt*1e3, bc.flops/dt/1e9)
	}
	st := b.Stats()
	fmt.Printf("dispatches %d, submits %d, Go→JS calls %d, pipelines %d\n", st.Dispatches, st.Submits, st.Crossings, st.Pipelines)
}
