package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/tensor"
)

// The float64 references against the CPU backend (an independent
// implementation) at small shapes with partial tiles.
func TestReferencesMatchCPUBackend(t *testing.T) {
	b := cpu.New()
	rng := rand.New(rand.NewPCG(7, 8))
	up := func(ts *tensorSpec) backend.Tensor {
		return b.Upload(&tensor.Host{Shape: tensor.Shape(ts.Shape), Data: ts.data})
	}
	check := func(name string, y backend.Tensor, ref []float64) {
		t.Helper()
		h, err := b.ReadBack(y)
		if err != nil {
			t.Fatal(err)
		}
		scale := 0.0
		for _, v := range ref {
			scale = max(scale, math.Abs(v))
		}
		if d := maxRelDiff(h.Data, ref, scale); !(d < 1e-5) {
			t.Errorf("%s: CPU backend vs float64 reference: max diff %.3g of max|ref| %.3g", name, d, scale)
		} else {
			t.Logf("%s: max diff %.2g of max|ref|", name, d)
		}
	}

	x, w, bias := seeded(rng, 1, "x", false, 37, 45), seeded(rng, 0.2, "w", true, 29, 45), seeded(rng, 0.1, "b", true, 29)
	check("linear 37×45·(29×45)ᵀ+b", b.MatMul(up(x), up(w), up(bias), backend.MatMulOpts{TransB: true}),
		refLinear(x.data, w.data, bias.data, 37, 45, 29))

	cx, cw, cb := seeded(rng, 1, "x", false, 1, 5, 7, 6), seeded(rng, 0.2, "w", true, 11, 5, 3, 3), seeded(rng, 0.1, "b", true, 11)
	check("conv3x3 5→11 at 7×6", b.Conv2D(up(cx), up(cw), up(cb), backend.Conv2DOpts{Padding: 1}),
		refConv3x3(cx.data, cw.data, cb.data, 5, 11, 7, 6))

	q, k, v := seeded(rng, 1, "q", false, 1, 13, 24), seeded(rng, 1, "k", false, 1, 9, 24), seeded(rng, 1, "v", false, 1, 9, 24)
	check("attention 3 heads×8, 13×9", b.Attention(up(q), up(k), up(v), nil, backend.AttentionOpts{Heads: 3}),
		refAttention(q.data, k.data, v.data, 13, 9, 3, 8))

	gx, gg, gb := seeded(rng, 1, "x", false, 1, 12, 5, 3), seeded(rng, 0.2, "gamma", true, 12), seeded(rng, 0.1, "beta", true, 12)
	check("groupnorm 4 groups + SiLU", b.GroupNorm(up(gx), up(gg), up(gb), 4, 1e-5, true),
		refGroupNormSiLU(gx.data, gg.data, gb.data, 12, 15, 4, 1e-5))
}

// pbField is one decoded protobuf field.
type pbField struct {
	num   int
	wire  int
	value uint64 // varint or fixed32
	bytes []byte // length-delimited
}

// decodePB splits a protobuf message into its fields (a test-only decoder
// of the wire format, written from the protobuf encoding spec).
func decodePB(t *testing.T, b []byte) []pbField {
	t.Helper()
	var fs []pbField
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			t.Fatalf("bad key varint")
		}
		b = b[n:]
		f := pbField{num: int(key >> 3), wire: int(key & 7)}
		switch f.wire {
		case 0:
			f.value, n = binary.Uvarint(b)
			b = b[n:]
		case 2:
			l, n := binary.Uvarint(b)
			f.bytes = b[n : n+int(l)]
			b = b[n+int(l):]
		case 5:
			f.value = uint64(binary.LittleEndian.Uint32(b))
			b = b[4:]
		default:
			t.Fatalf("unexpected wire type %d", f.wire)
		}
		fs = append(fs, f)
	}
	return fs
}

func fieldsOf(fs []pbField, num int) []pbField {
	var out []pbField
	for _, f := range fs {
		if f.num == num {
			out = append(out, f)
		}
	}
	return out
}

// The ONNX models decode, per onnx.proto, to the graphs the page runs:
// IR version, opsets, node order and attributes, initializer sizes, input
// and output shapes.
func TestONNXModels(t *testing.T) {
	cases := allCases(1)
	byName := map[string]*benchCase{}
	for _, c := range cases {
		byName[c.Name] = c
	}
	type want struct {
		kase, model string
		ops         []string
		inputs      []string
	}
	for _, w := range []want{
		{"matmul_1000x330x310", "ort", []string{"Gemm"}, []string{"x"}},
		{"conv3x3_4x320_32x32", "ort", []string{"Conv"}, []string{"x"}},
		{"attn_cross_8x40_1024x77", "ort", []string{"Reshape", "Transpose", "Reshape", "Transpose", "Reshape", "Transpose", "MatMul", "Mul", "Softmax", "MatMul", "Transpose", "Reshape"}, []string{"q", "k", "v"}},
		{"attn_cross_8x40_1024x77", "ort-mha", []string{"MultiHeadAttention"}, []string{"q", "k", "v"}},
		{"groupnorm32_silu_320x32x32", "ort", []string{"Reshape", "InstanceNormalization", "Reshape", "Mul", "Add", "Sigmoid", "Mul"}, []string{"x"}},
	} {
		c := byName[w.kase]
		m := decodePB(t, c.models[w.model])
		if ir := fieldsOf(m, 1); len(ir) != 1 || ir[0].value != 8 {
			t.Errorf("%s/%s: ir_version %v, want 8", w.kase, w.model, ir)
		}
		var opsets []string
		for _, o := range fieldsOf(m, 8) {
			f := decodePB(t, o.bytes)
			dom := ""
			if d := fieldsOf(f, 1); len(d) > 0 {
				dom = string(d[0].bytes)
			}
			opsets = append(opsets, fmt.Sprintf("%s:%d", dom, fieldsOf(f, 2)[0].value))
		}
		if strings.Join(opsets, " ") != ":17 com.microsoft:1" {
			t.Errorf("%s/%s: opsets %v", w.kase, w.model, opsets)
		}
		g := decodePB(t, fieldsOf(m, 7)[0].bytes)
		var ops []string
		for _, n := range fieldsOf(g, 1) {
			nf := decodePB(t, n.bytes)
			ops = append(ops, string(fieldsOf(nf, 4)[0].bytes))
			if op := string(fieldsOf(nf, 4)[0].bytes); op == "Gemm" {
				a := decodePB(t, fieldsOf(nf, 5)[0].bytes)
				if string(fieldsOf(a, 1)[0].bytes) != "transB" || fieldsOf(a, 3)[0].value != 1 || fieldsOf(a, 20)[0].value != attrInt {
					t.Errorf("Gemm attribute %v, want transB=1 (INT)", a)
				}
			}
			if op := string(fieldsOf(nf, 4)[0].bytes); op == "MultiHeadAttention" && string(fieldsOf(nf, 7)[0].bytes) != "com.microsoft" {
				t.Errorf("MultiHeadAttention outside com.microsoft")
			}
		}
		if !slices.Equal(ops, w.ops) {
			t.Errorf("%s/%s: ops %v, want %v", w.kase, w.model, ops, w.ops)
		}
		// Weights: raw_data of 4 bytes per element of dims.
		for _, init := range fieldsOf(g, 5) {
			tf := decodePB(t, init.bytes)
			n := 1
			for _, d := range fieldsOf(tf, 1) {
				n *= int(d.value)
			}
			size := 4
			if fieldsOf(tf, 2)[0].value == onnxInt64 {
				size = 8
			}
			if got := len(fieldsOf(tf, 9)[0].bytes); got != n*size {
				t.Errorf("%s/%s: initializer %s: %d raw bytes, want %d", w.kase, w.model, fieldsOf(tf, 8)[0].bytes, got, n*size)
			}
		}
		var inputs []string
		for _, in := range fieldsOf(g, 11) {
			inputs = append(inputs, string(fieldsOf(decodePB(t, in.bytes), 1)[0].bytes))
		}
		if !slices.Equal(inputs, w.inputs) {
			t.Errorf("%s/%s: graph inputs %v, want %v", w.kase, w.model, inputs, w.inputs)
		}
		// The output's shape: ValueInfo.type.tensor_type.shape.dim.dim_value.
		out := decodePB(t, fieldsOf(g, 12)[0].bytes)
		tt := decodePB(t, fieldsOf(decodePB(t, fieldsOf(out, 2)[0].bytes), 1)[0].bytes)
		var dims []int
		for _, d := range fieldsOf(decodePB(t, fieldsOf(tt, 2)[0].bytes), 1) {
			dims = append(dims, int(fieldsOf(decodePB(t, d.bytes), 1)[0].value))
		}
		if !slices.Equal(dims, c.OutShape) {
			t.Errorf("%s/%s: output dims %v, want %v", w.kase, w.model, dims, c.OutShape)
		}
	}
}

// A wrong output is reported as wrong, and the ratio uses the faster
// correct other engine.
func TestSummaryUsesFastestCorrectEngine(t *testing.T) {
	c := &benchCase{Name: "k", Engines: []string{"ours", "tfjs", "ort", "ort-mha"}, ref: []float64{1, -2, 4}}
	outs := map[string][]float32{
		"ours": {1, -2, 4}, "tfjs": {1, -2, 4.0001}, "ort": {1, -2, 4}, "ort-mha": {1, 2, 4},
	}
	tm := timing{Times: map[string][]float64{"ours": {30, 10, 20}, "tfjs": {40, 40, 40}, "ort": {50, 50, 50}, "ort-mha": {5, 5, 5}}}
	rs := evaluate(c, outs, tm)
	if rs[3].status() != "WRONG" || rs[1].status() != "ok" {
		t.Fatalf("statuses %q %q, want WRONG, ok", rs[3].status(), rs[1].status())
	}
	s := summarize(c, rs)
	if s.ours != "20.00" || s.tfjs != "40.00" || s.ort != "50.00" || s.ratio != "0.50" {
		t.Errorf("summary %+v, want ours 20.00 tfjs 40.00 ort 50.00 ratio 0.50", s)
	}
}
