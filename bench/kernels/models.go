package main

import (
	"math"
	"slices"
)

// The ONNX graphs ORT-web runs for each case, written the way an exporter
// (torch.onnx) writes the same PyTorch modules. Weights are initializers;
// activations are graph inputs.

func toI64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(v)
	}
	return out
}

// addWeights adds the case's weights as initializers and its activations
// as graph inputs.
func addWeights(g *onnxGraph, c *benchCase, weightShape func(t *tensorSpec) []int) {
	for _, t := range c.Inputs {
		if t.Weight {
			shape := t.Shape
			if weightShape != nil {
				shape = weightShape(t)
			}
			g.initF32(t.Name, shape, t.data)
		} else {
			g.input(t.Name, t.Shape...)
		}
	}
}

// onnxLinear is Gemm(x, w, b, transB=1): torch.nn.Linear's export.
func onnxLinear(c *benchCase) []byte {
	g := &onnxGraph{name: c.Name}
	addWeights(g, c, nil)
	g.node("Gemm", "", []string{"x", "w", "b"}, []string{"y"}, intAttr("transB", 1))
	g.output("y", c.OutShape...)
	return g.model()
}

// onnxConv is Conv(x, w, b) with 3×3 kernel, padding 1: torch.nn.Conv2d's
// export.
func onnxConv(c *benchCase) []byte {
	g := &onnxGraph{name: c.Name}
	addWeights(g, c, nil)
	g.node("Conv", "", []string{"x", "w", "b"}, []string{"y"},
		intsAttr("kernel_shape", 3, 3), intsAttr("pads", 1, 1, 1, 1), intsAttr("strides", 1, 1))
	g.output("y", c.OutShape...)
	return g.model()
}

// onnxAttention is attention as separate ops, the way diffusers' attention
// processor exports without a fused kernel: split heads (Reshape +
// Transpose), MatMul q·kᵀ, Mul by 1/√d, Softmax, MatMul by v, merge heads.
func onnxAttention(c *benchCase) []byte {
	g := &onnxGraph{name: c.Name}
	addWeights(g, c, nil)
	s, l, dm := c.Inputs[0].Shape[1], c.Inputs[1].Shape[1], c.Inputs[0].Shape[2]
	h := c.Heads
	d := dm / h
	g.initI64("q_heads", 1, int64(s), int64(h), int64(d))
	g.initI64("kv_heads", 1, int64(l), int64(h), int64(d))
	g.initI64("merged", 1, int64(s), int64(dm))
	g.initF32("scale", nil, []float32{float32(1 / math.Sqrt(float64(d)))})
	g.node("Reshape", "", []string{"q", "q_heads"}, []string{"q4"})
	g.node("Transpose", "", []string{"q4"}, []string{"qh"}, intsAttr("perm", 0, 2, 1, 3))
	g.node("Reshape", "", []string{"k", "kv_heads"}, []string{"k4"})
	g.node("Transpose", "", []string{"k4"}, []string{"kt"}, intsAttr("perm", 0, 2, 3, 1))
	g.node("Reshape", "", []string{"v", "kv_heads"}, []string{"v4"})
	g.node("Transpose", "", []string{"v4"}, []string{"vh"}, intsAttr("perm", 0, 2, 1, 3))
	g.node("MatMul", "", []string{"qh", "kt"}, []string{"scores"})
	g.node("Mul", "", []string{"scores", "scale"}, []string{"scaled"})
	g.node("Softmax", "", []string{"scaled"}, []string{"probs"}, intAttr("axis", -1))
	g.node("MatMul", "", []string{"probs", "vh"}, []string{"oh"})
	g.node("Transpose", "", []string{"oh"}, []string{"o4"}, intsAttr("perm", 0, 2, 1, 3))
	g.node("Reshape", "", []string{"o4", "merged"}, []string{"y"})
	g.output("y", c.OutShape...)
	return g.model()
}

// onnxMHA is ONNX Runtime's fused com.microsoft MultiHeadAttention
// (query [B,S,D], key and value [B,L,D], num_heads; scale 1/√d by
// default).
func onnxMHA(c *benchCase) []byte {
	g := &onnxGraph{name: c.Name + "_mha"}
	addWeights(g, c, nil)
	g.node("MultiHeadAttention", "com.microsoft", []string{"q", "k", "v"}, []string{"y"}, intAttr("num_heads", int64(c.Heads)))
	g.output("y", c.OutShape...)
	return g.model()
}

// onnxGroupNormSiLU is GroupNorm + SiLU as torch.onnx exports
// torch.nn.GroupNorm at opset 17: Reshape to [1, groups, −1],
// InstanceNormalization (scale 1, bias 0), Reshape back, Mul γ, Add β;
// then SiLU as Sigmoid and Mul.
func onnxGroupNormSiLU(c *benchCase) []byte {
	g := &onnxGraph{name: c.Name}
	ch := c.Inputs[0].Shape[1]
	addWeights(g, c, func(t *tensorSpec) []int { return []int{ch, 1, 1} })
	ones := make([]float32, c.Groups)
	for i := range ones {
		ones[i] = 1
	}
	g.initF32("in_scale", []int{c.Groups}, ones)
	g.initF32("in_bias", []int{c.Groups}, make([]float32, c.Groups))
	g.initI64("grouped", 1, int64(c.Groups), -1)
	g.initI64("restored", toI64(slices.Clone(c.Inputs[0].Shape))...)
	g.node("Reshape", "", []string{"x", "grouped"}, []string{"xg"})
	g.node("InstanceNormalization", "", []string{"xg", "in_scale", "in_bias"}, []string{"ng"}, floatAttr("epsilon", c.Eps))
	g.node("Reshape", "", []string{"ng", "restored"}, []string{"n"})
	g.node("Mul", "", []string{"n", "gamma"}, []string{"ns"})
	g.node("Add", "", []string{"ns", "beta"}, []string{"t"})
	g.node("Sigmoid", "", []string{"t"}, []string{"sig"})
	g.node("Mul", "", []string{"t", "sig"}, []string{"y"})
	g.output("y", c.OutShape...)
	return g.model()
}
