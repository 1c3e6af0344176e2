package main

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// tensorSpec is one input of a case: its name (the ONNX graph's input or
// initializer name too), shape, whether it is a weight (an initializer in
// the ONNX model; uploaded once by every engine either way) and its
// seeded data.
type tensorSpec struct {
	Name   string `json:"name"`
	Shape  []int  `json:"shape"`
	Weight bool   `json:"weight"`
	data   []float32
}

// benchCase is one kernel at one shape, run by every engine on the same
// inputs. Kind selects the operation: "linear" (x[M,K]·w[N,K]ᵀ + b),
// "conv" (3×3, padding 1, + bias, NCHW), "attention" (multi-head
// softmax(q·kᵀ/√d)·v over [1,S,heads·d] rows) and "groupnorm" (GroupNorm
// + SiLU, NCHW).
type benchCase struct {
	Name     string        `json:"name"`
	Kind     string        `json:"kind"`
	Desc     string        `json:"desc"`
	Heads    int           `json:"heads,omitempty"`
	Groups   int           `json:"groups,omitempty"`
	Eps      float32       `json:"eps,omitempty"`
	Inputs   []*tensorSpec `json:"inputs"`
	OutShape []int         `json:"outShape"`
	// Engines lists the engines that run the case: "ours", "tfjs", "ort"
	// and, for attention, "ort-mha" (ORT's fused MultiHeadAttention) and,
	// for cross-attention, "ort-mha-cpu" (the same graph on ORT's wasm
	// CPU EP: a correctness check, not part of the comparison).
	Engines []string `json:"engines"`
	FLOPs   float64  `json:"flops"`

	ref    []float64         // the float64 reference output
	models map[string][]byte // ONNX model per ORT engine
}

// input returns the named input's data.
func (c *benchCase) input(name string) []float32 {
	for _, t := range c.Inputs {
		if t.Name == name {
			return t.data
		}
	}
	panic(fmt.Sprintf("case %s has no input %q", c.Name, name))
}

// seeded fills a tensor with N(0, std²) values from rng.
func seeded(rng *rand.Rand, std float64, name string, weight bool, shape ...int) *tensorSpec {
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(rng.NormFloat64() * std)
	}
	return &tensorSpec{Name: name, Shape: shape, Weight: weight, data: data}
}

// allCases returns the benchmark's cases at SD 1.5-like shapes, inputs
// seeded from seed: the Linear and 3×3 conv of issue 10's table, a matmul
// and a conv whose K (330, 36) is not a multiple of the matmul kernels'
// K step of 16 and whose M and N are not multiples of their 64 tile,
// self-attention of 8 heads × 40 over 1024 tokens (SD 1.5's first
// transformer at a 32×32 latent), cross-attention against 77 text
// tokens, and GroupNorm(32) + SiLU over 320 channels at 32×32.
func allCases(seed uint64) []*benchCase {
	var cs []*benchCase
	add := func(c *benchCase) {
		rng := rand.New(rand.NewPCG(seed, uint64(len(cs))))
		build(c, rng)
		cs = append(cs, c)
	}
	linear := func(m, k, n int, desc string) {
		add(&benchCase{Name: fmt.Sprintf("matmul_%dx%dx%d", m, k, n), Kind: "linear", Desc: desc,
			Inputs:   []*tensorSpec{{Name: "x", Shape: []int{m, k}}, {Name: "w", Shape: []int{n, k}, Weight: true}, {Name: "b", Shape: []int{n}, Weight: true}},
			OutShape: []int{m, n}, FLOPs: 2 * float64(m*k*n)})
	}
	conv := func(cin, cout, hw int, desc string) {
		add(&benchCase{Name: fmt.Sprintf("conv3x3_%dx%d_%dx%d", cin, cout, hw, hw), Kind: "conv", Desc: desc,
			Inputs:   []*tensorSpec{{Name: "x", Shape: []int{1, cin, hw, hw}}, {Name: "w", Shape: []int{cout, cin, 3, 3}, Weight: true}, {Name: "b", Shape: []int{cout}, Weight: true}},
			OutShape: []int{1, cout, hw, hw}, FLOPs: 2 * float64(cout*cin*9*hw*hw)})
	}
	attention := func(name string, s, l, heads, d int, desc string) {
		add(&benchCase{Name: name, Kind: "attention", Desc: desc, Heads: heads,
			Inputs:   []*tensorSpec{{Name: "q", Shape: []int{1, s, heads * d}}, {Name: "k", Shape: []int{1, l, heads * d}}, {Name: "v", Shape: []int{1, l, heads * d}}},
			OutShape: []int{1, s, heads * d}, FLOPs: 4 * float64(s*l*heads*d)})
	}
	linear(1024, 320, 320, "Linear 1024 tokens 320→320 + bias (issue 10's table)")
	linear(1000, 330, 310, "Linear, M, N and K all partial tiles (K 330)")
	linear(77, 768, 320, "Linear of the 77 text tokens 768→320 (cross-attention k/v)")
	conv(320, 320, 16, "3×3 conv 320→320 at 16×16 + bias (issue 10's table)")
	conv(4, 320, 32, "3×3 conv_in 4→320 at 32×32 (K 36)")
	attention("attn_self_8x40_1024", 1024, 1024, 8, 40, "self-attention 8 heads × 40, 1024×1024 tokens")
	attention("attn_cross_8x40_1024x77", 1024, 77, 8, 40, "cross-attention 8 heads × 40, 1024 queries × 77 keys")
	add(&benchCase{Name: "groupnorm32_silu_320x32x32", Kind: "groupnorm", Desc: "GroupNorm(32) + SiLU over [1,320,32,32]",
		Groups: 32, Eps: 1e-5,
		Inputs:   []*tensorSpec{{Name: "x", Shape: []int{1, 320, 32, 32}}, {Name: "gamma", Shape: []int{320}, Weight: true}, {Name: "beta", Shape: []int{320}, Weight: true}},
		OutShape: []int{1, 320, 32, 32}, FLOPs: 8 * 320 * 32 * 32})
	return cs
}

// build fills a case's inputs with seeded data, computes its float64
// reference and writes its ONNX models.
func build(c *benchCase, rng *rand.Rand) {
	for i, t := range c.Inputs {
		std := 1.0
		switch {
		case c.Kind == "linear" && t.Name == "w":
			std = 1 / math.Sqrt(float64(t.Shape[1]))
		case c.Kind == "conv" && t.Name == "w":
			std = 1 / math.Sqrt(float64(t.Shape[1]*9))
		case t.Name == "b" || t.Name == "beta":
			std = 0.1
		case t.Name == "gamma":
			std = 0.2
		}
		c.Inputs[i] = seeded(rng, std, t.Name, t.Weight, t.Shape...)
		if t.Name == "gamma" {
			for j := range c.Inputs[i].data {
				c.Inputs[i].data[j] += 1
			}
		}
	}
	c.Engines = []string{"ours", "tfjs", "ort"}
	c.models = map[string][]byte{}
	switch c.Kind {
	case "linear":
		c.ref = refLinear(c.input("x"), c.input("w"), c.input("b"), c.OutShape[0], c.Inputs[0].Shape[1], c.OutShape[1])
		c.models["ort"] = onnxLinear(c)
	case "conv":
		x, w := c.Inputs[0], c.Inputs[1]
		c.ref = refConv3x3(x.data, w.data, c.input("b"), x.Shape[1], w.Shape[0], x.Shape[2], x.Shape[3])
		c.models["ort"] = onnxConv(c)
	case "attention":
		q, k := c.Inputs[0], c.Inputs[1]
		c.ref = refAttention(q.data, k.data, c.input("v"), q.Shape[1], k.Shape[1], c.Heads, q.Shape[2]/c.Heads)
		c.models["ort"] = onnxAttention(c)
		c.models["ort-mha"] = onnxMHA(c)
		c.Engines = append(c.Engines, "ort-mha")
		if k.Shape[1] <= 77 {
			// The fused graph on ORT's CPU kernels too, to tell a wrong
			// graph from a wrong WebGPU kernel (cheap at 77 keys only).
			c.Engines = append(c.Engines, "ort-mha-cpu")
		}
	case "groupnorm":
		x := c.Inputs[0]
		c.ref = refGroupNormSiLU(x.data, c.input("gamma"), c.input("beta"), x.Shape[1], x.Shape[2]*x.Shape[3], c.Groups, float64(c.Eps))
		c.models["ort"] = onnxGroupNormSiLU(c)
	default:
		panic("unknown kind " + c.Kind)
	}
}
