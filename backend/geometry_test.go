package backend

import (
	"strings"
	"testing"

	"github.com/tgate-web/tgate/tensor"
)

func TestMatMulShape(t *testing.T) {
	g, err := MatMulShape(tensor.Shape{2, 3, 5, 7}, tensor.Shape{3, 11, 7}, tensor.Shape{11}, MatMulOpts{TransB: true})
	if err != nil {
		t.Fatal(err)
	}
	if g.M != 5 || g.N != 11 || g.K != 7 || !g.Out.Equal(tensor.Shape{2, 3, 5, 11}) || !g.BBatch.Equal(tensor.Shape{3}) {
		t.Errorf("%+v", g)
	}
	for _, c := range []struct {
		a, b, bias tensor.Shape
		opt        MatMulOpts
		want       string
	}{
		{tensor.Shape{5}, tensor.Shape{5, 2}, nil, MatMulOpts{}, "at least 2 dimensions"},
		{tensor.Shape{4, 5}, tensor.Shape{4, 2}, nil, MatMulOpts{}, "inner dimensions differ: a [4,5], b [4,2]"},
		{tensor.Shape{4, 5}, tensor.Shape{4, 2}, nil, MatMulOpts{TransA: true}, ""},
		{tensor.Shape{2, 4, 5}, tensor.Shape{3, 5, 2}, nil, MatMulOpts{}, "do not broadcast"},
		{tensor.Shape{4, 5}, tensor.Shape{2, 5, 2}, nil, MatMulOpts{}, "more batch dimensions"},
		{tensor.Shape{4, 5}, tensor.Shape{5, 2}, tensor.Shape{3}, MatMulOpts{}, "bias size is not N"},
	} {
		_, err := MatMulShape(c.a, c.b, c.bias, c.opt)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("MatMulShape(%v, %v, %v, %+v) = %v, want %q", c.a, c.b, c.bias, c.opt, err, c.want)
		}
	}
}

func TestConv2DShape(t *testing.T) {
	// PyTorch: out = floor((n + 2p − k)/s) + 1; a stride-2 3×3 conv with
	// padding 1 halves rounding up.
	g, err := Conv2DShape(tensor.Shape{1, 3, 9, 10}, tensor.Shape{8, 3, 3, 3}, nil, Conv2DOpts{Stride: 2, Padding: 1})
	if err != nil || !g.Out().Equal(tensor.Shape{1, 8, 5, 5}) {
		t.Errorf("%v %v", g.Out(), err)
	}
	if _, err := Conv2DShape(tensor.Shape{1, 3, 9, 10}, tensor.Shape{8, 4, 3, 3}, nil, Conv2DOpts{}); err == nil || !strings.Contains(err.Error(), "input channels differ") {
		t.Errorf("channel mismatch: %v", err)
	}
	if _, err := Conv2DShape(tensor.Shape{1, 3, 2, 2}, tensor.Shape{8, 3, 5, 5}, nil, Conv2DOpts{}); err == nil || !strings.Contains(err.Error(), "kernel larger") {
		t.Errorf("kernel larger than input: %v", err)
	}
}

func TestAttentionShape(t *testing.T) {
	g, err := AttentionShape(tensor.Shape{2, 5, 12}, tensor.Shape{2, 7, 12}, tensor.Shape{2, 7, 6}, tensor.Shape{2, 1, 5, 7}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if g.D != 4 || g.Dv != 2 || g.BiasBatchStride != 35 || g.BiasHeadStride != 0 || !g.Out().Equal(tensor.Shape{2, 5, 6}) {
		t.Errorf("%+v", g)
	}
	if _, err := AttentionShape(tensor.Shape{2, 5, 12}, tensor.Shape{2, 7, 12}, tensor.Shape{2, 7, 6}, tensor.Shape{5, 7}, 3); err == nil || !strings.Contains(err.Error(), "bias must be") {
		t.Errorf("rank-2 bias: %v", err)
	}
}

func TestBroadcastAndReshape(t *testing.T) {
	s, err := BroadcastShape(tensor.Shape{2, 1, 4}, tensor.Shape{3, 1})
	if err != nil || !s.Equal(tensor.Shape{2, 3, 4}) {
		t.Errorf("%v %v", s, err)
	}
	if _, err := BroadcastShape(tensor.Shape{2, 3}, tensor.Shape{4}); err == nil {
		t.Error("[2,3] with [4] broadcast")
	}
	r, err := ReshapeShape(tensor.Shape{2, 3, 4}, []int{4, -1})
	if err != nil || !r.Equal(tensor.Shape{4, 6}) {
		t.Errorf("%v %v", r, err)
	}
	if _, err := ReshapeShape(tensor.Shape{2, 3}, []int{4, -1}); err == nil {
		t.Error("[2,3] to [4,-1] inferred a dimension")
	}
}
