package backendtest

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

func testRoundTrip(t *testing.T, s *suite) {
	shapes := [][]int{{}, {2, 3, 4}, {1, 257}}
	for _, n := range edgeSizes {
		shapes = append(shapes, []int{n})
	}
	for _, sh := range shapes {
		s.run(t, name("%v", tensor.Shape(sh)), numel(sh), func(e *env) {
			h := e.randn(1, sh...)
			x := e.in(h)
			if x.DType() != tensor.F32 {
				e.t.Errorf("Upload: dtype %v, want F32", x.DType())
			}
			if !x.Shape().Equal(h.Shape) {
				e.t.Errorf("Upload: shape %v, want %v", x.Shape(), h.Shape)
			}
			want := arr(h)
			// The device copy must not alias the host slice...
			for i := range h.Data {
				h.Data[i] = -7
			}
			back, err := e.b.ReadBack(x)
			if err != nil {
				e.t.Fatalf("ReadBack: %v", err)
			}
			// ...nor the slice ReadBack returned.
			for i := range back.Data {
				back.Data[i] = 9
			}
			got, err := e.b.ReadBack(x)
			if err != nil {
				e.t.Fatalf("ReadBack: %v", err)
			}
			e.compareHost("Upload/ReadBack", got, want)
		})
	}
}

// compareHost checks a host tensor against want exactly.
func (e *env) compareHost(what string, got *tensor.Host, want *array) {
	e.t.Helper()
	if !got.Shape.Equal(tensor.Shape(want.shape)) || len(got.Data) != len(want.data) {
		e.t.Fatalf("%s: shape %v with %d values, want %v", what, got.Shape, len(got.Data), tensor.Shape(want.shape))
	}
	for i, w := range want.data {
		if float64(got.Data[i]) != w {
			e.t.Fatalf("%s: element %d %v is %v, want %v", what, i, unravel(i, want.shape), got.Data[i], w)
		}
	}
}

func testUploadRaw(t *testing.T, s *suite) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		for _, sh := range [][]int{{1}, {3, 4}, {257}, {2, 65}} {
			s.run(t, name("%v_%v", dt, tensor.Shape(sh)), numel(sh), func(e *env) {
				h := e.randn(3, sh...)
				x, w := e.inAs(h, dt)
				if !x.Shape().Equal(h.Shape) {
					e.t.Errorf("UploadRaw: shape %v, want %v", x.Shape(), h.Shape)
				}
				got, err := e.b.ReadBack(x)
				if err != nil {
					e.t.Fatalf("ReadBack: %v", err)
				}
				e.compareHost(name("UploadRaw %v", dt), got, arr(w))
			})
		}
		// Values at the edges of each encoding: signed zero, subnormals,
		// the largest finite values, values needing rounding.
		s.run(t, name("%v_special", dt), 12, func(e *env) {
			vals := []float32{0, float32(math.Copysign(0, -1)), 1, -2.5, 65504, -65504, 6.1035156e-05, 5.9604645e-08, 3.0517578e-05, 1e38, -3.3895314e38, 0.1}
			h := tensor.FromData(vals, 3, 4)
			x, w := e.inAs(h, dt)
			got, err := e.b.ReadBack(x)
			if err != nil {
				e.t.Fatalf("ReadBack: %v", err)
			}
			want := arr(w)
			if dt == tensor.F16 {
				// Beyond F16's range: the encoding holds ±Inf.
				if !math.IsInf(float64(got.Data[9]), 1) || !math.IsInf(float64(got.Data[10]), -1) {
					e.t.Errorf("UploadRaw F16: overflowed values read back as %v, %v, want +Inf, -Inf", got.Data[9], got.Data[10])
				}
				want.data[9], want.data[10] = 0, 0
				got.Data[9], got.Data[10] = 0, 0
			}
			e.compareHost(name("UploadRaw %v special values", dt), got, want)
			if math.Signbit(float64(got.Data[1])) != true {
				e.t.Errorf("UploadRaw %v: -0 read back as %v", dt, got.Data[1])
			}
		})
	}
}

func testMemory(t *testing.T, s *suite) {
	s.run(t, "LiveAndPeak", 3000, func(e *env) {
		b := e.b
		peakOK := func(when string) backend.MemStats {
			m := b.Memory()
			if m.Peak < m.Live {
				e.t.Errorf("%s: Peak %d < Live %d", when, m.Peak, m.Live)
			}
			if m.Live < 0 {
				e.t.Errorf("%s: Live %d < 0", when, m.Live)
			}
			return m
		}
		m0 := peakOK("start")
		h := e.randn(1, 1000)
		x := b.Upload(h)
		m1 := peakOK("after Upload")
		if m1.Live < m0.Live+4000 {
			e.t.Errorf("Upload of 1000 F32 values: Live went from %d to %d, want an increase of at least 4000", m0.Live, m1.Live)
		}
		v := b.Reshape(x, 10, -1)
		m2 := peakOK("after Reshape")
		if m2.Live != m1.Live {
			e.t.Errorf("Reshape (a view) changed Live from %d to %d", m1.Live, m2.Live)
		}
		y := b.Unary(backend.Neg, v)
		m3 := peakOK("after Unary")
		if m3.Live < m2.Live+4000 {
			e.t.Errorf("Unary on 1000 values: Live went from %d to %d, want an increase of at least 4000", m2.Live, m3.Live)
		}
		b.Free(y)
		m4 := peakOK("after Free of the result")
		if m4.Live != m2.Live {
			e.t.Errorf("Free of the Unary result: Live %d, want %d as before the op", m4.Live, m2.Live)
		}
		b.Free(v)
		m5 := peakOK("after Free of the view")
		if m5.Live != m4.Live {
			e.t.Errorf("Free of a view changed Live from %d to %d", m4.Live, m5.Live)
		}
		back, err := b.ReadBack(x)
		if err != nil {
			e.t.Fatalf("ReadBack after freeing a view of the tensor: %v", err)
		}
		e.compareHost("tensor after freeing its view", back, arr(h))
		b.Free(x)
		m6 := peakOK("after Free")
		if m6.Live != m0.Live {
			e.t.Errorf("after freeing everything: Live %d, want %d as at the start", m6.Live, m0.Live)
		}
		if m6.Peak < m3.Live {
			e.t.Errorf("Peak %d is below an earlier Live %d", m6.Peak, m3.Live)
		}
		if r, ok := b.(backend.PeakResetter); ok {
			r.ResetPeak()
			m7 := peakOK("after ResetPeak")
			if m7.Peak != m7.Live {
				e.t.Errorf("after ResetPeak: Peak %d, want Live %d", m7.Peak, m7.Live)
			}
			z := b.Upload(e.randn(1, 500))
			b.Free(z)
			m8 := peakOK("after Upload and Free")
			if m8.Peak < m7.Live+2000 {
				e.t.Errorf("Peak %d after a 2000-byte tensor came and went, want at least %d", m8.Peak, m7.Live+2000)
			}
		}
	})
}

// testViewLifetime checks the reference counting of Free across Reshape
// views: the storage lives until the last handle to it is freed, in any
// order.
func testViewLifetime(t *testing.T, s *suite) {
	s.run(t, "FreeOriginalFirst", 3000, func(e *env) {
		b := e.b
		m0 := b.Memory()
		h := e.randn(1, 6, 100)
		x := b.Upload(h)
		v := b.Reshape(x, 600)
		w := b.Reshape(v, 3, 200)
		m1 := b.Memory()
		b.Free(x)
		if m := b.Memory(); m.Live != m1.Live {
			e.t.Errorf("freeing the original while views remain changed Live from %d to %d", m1.Live, m.Live)
		}
		got, err := b.ReadBack(v)
		if err != nil {
			e.t.Fatalf("ReadBack of a view after freeing the original: %v", err)
		}
		want := arr(h)
		want.shape = []int{600}
		e.compareHost("view after freeing the original", got, want)
		e.check("Neg of a view of a view after freeing the original", b.Unary(backend.Neg, w),
			refMap(&array{[]int{3, 200}, want.data}, func(x float64) float64 { return -x }), tolElementwise)
		mn := b.Memory() // the views and the Neg result are held
		b.Free(w)
		if m := b.Memory(); m.Live != mn.Live {
			e.t.Errorf("freeing one of two remaining views changed Live from %d to %d", mn.Live, m.Live)
		}
		b.Free(v)
		if m, want := b.Memory(), mn.Live-(m1.Live-m0.Live); m.Live != want {
			e.t.Errorf("freeing the last handle: Live %d, want %d (the uploaded tensor's %d bytes released)", m.Live, want, m1.Live-m0.Live)
		}
	})
}

func testReshape(t *testing.T, s *suite) {
	cases := []struct {
		from, to, want []int
	}{
		{[]int{2, 3, 4}, []int{6, -1}, []int{6, 4}},
		{[]int{2, 3, 4}, []int{-1}, []int{24}},
		{[]int{2, 3, 4}, []int{4, -1, 2}, []int{4, 3, 2}},
		{[]int{1, 257}, []int{257, 1}, []int{257, 1}},
		{[]int{64, 4}, []int{1, 1, 256}, []int{1, 1, 256}},
		{[]int{5}, []int{1, -1, 1}, []int{1, 5, 1}},
	}
	for _, c := range cases {
		s.run(t, name("%v_to_%v", tensor.Shape(c.from), tensor.Shape(c.to)), numel(c.from), func(e *env) {
			h := e.randn(1, c.from...)
			x := e.in(h)
			v := e.own(e.b.Reshape(x, c.to...))
			if !v.Shape().Equal(tensor.Shape(c.want)) {
				e.t.Fatalf("Reshape %v to %v: shape %v, want %v", h.Shape, c.to, v.Shape(), tensor.Shape(c.want))
			}
			got, err := e.b.ReadBack(v)
			if err != nil {
				e.t.Fatalf("ReadBack: %v", err)
			}
			want := arr(h)
			want.shape = c.want
			e.compareHost("Reshape", got, want)
			// A view is usable as an op input, and a view of a view works.
			w := e.own(e.b.Reshape(v, -1))
			e.check("Square of a reshaped view", e.b.Unary(backend.Square, w), refMap(&array{[]int{numel(c.from)}, want.data}, func(v float64) float64 { return v * v }), tolElementwise)
		})
	}
	s.run(t, "F16", 12, func(e *env) {
		x, w := e.inAs(e.randn(1, 3, 4), tensor.F16)
		v := e.own(e.b.Reshape(x, 4, 3))
		if v.DType() != tensor.F16 {
			e.t.Errorf("Reshape of an F16 tensor reports %v", v.DType())
		}
		got, err := e.b.ReadBack(v)
		if err != nil {
			e.t.Fatalf("ReadBack: %v", err)
		}
		want := arr(w)
		want.shape = []int{4, 3}
		e.compareHost("Reshape F16", got, want)
	})
}

func testPermute(t *testing.T, s *suite) {
	cases := []struct {
		shape, perm []int
	}{
		{[]int{63, 65}, []int{1, 0}},
		{[]int{257, 3}, []int{1, 0}},
		{[]int{1, 256}, []int{1, 0}},
		{[]int{3, 4, 5}, []int{0, 1, 2}},
		{[]int{3, 4, 5}, []int{0, 2, 1}},
		{[]int{3, 4, 5}, []int{1, 0, 2}},
		{[]int{3, 4, 5}, []int{1, 2, 0}},
		{[]int{3, 4, 5}, []int{2, 0, 1}},
		{[]int{3, 4, 5}, []int{2, 1, 0}},
		{[]int{2, 3, 4, 5}, []int{0, 2, 1, 3}}, // [B, N, H, D] → [B, H, N, D]
		{[]int{2, 3, 4, 5}, []int{0, 2, 3, 1}}, // NCHW → NHWC
		{[]int{2, 3, 4, 5}, []int{0, 3, 1, 2}}, // NHWC → NCHW
		{[]int{2, 3, 4, 5}, []int{3, 2, 1, 0}},
		{[]int{1, 65, 2, 3}, []int{2, 0, 3, 1}},
		{[]int{2, 0, 3}, []int{2, 0, 1}},
		{[]int{2, 65, 64, 5}, []int{0, 2, 3, 1}},
	}
	for _, c := range cases {
		s.run(t, name("%v_%v", tensor.Shape(c.shape), c.perm), numel(c.shape), func(e *env) {
			h := e.randn(1, c.shape...)
			got := e.b.Permute(e.in(h), c.perm...)
			e.check(name("Permute %v %v", h.Shape, c.perm), got, refPermute(arr(h), c.perm), tolExact)
		})
	}
}

func testConcat(t *testing.T, s *suite) {
	cases := []struct {
		axis   int
		shapes [][]int
	}{
		{0, [][]int{{2, 3}, {1, 3}}},
		{1, [][]int{{2, 3, 4}, {2, 5, 4}}},
		{2, [][]int{{2, 3, 4}, {2, 3, 1}}},
		{-1, [][]int{{3, 4}, {3, 1}, {3, 65}}},
		{-2, [][]int{{2, 3, 4}, {2, 1, 4}}},
		{-1, [][]int{{3, 0}, {3, 2}}},
		{0, [][]int{{5, 7}}},
		{1, [][]int{{64, 1}, {64, 63}, {64, 1}}},
		{1, [][]int{{2, 128, 2}, {2, 129, 2}}},
		{0, [][]int{{1, 257}, {3, 257}, {1, 257}, {2, 257}}},
	}
	for _, c := range cases {
		work := 0
		for _, sh := range c.shapes {
			work += numel(sh)
		}
		s.run(t, name("axis%d_%v", c.axis, c.shapes), work, func(e *env) {
			ts := make([]backend.Tensor, len(c.shapes))
			xs := make([]*array, len(c.shapes))
			for i, sh := range c.shapes {
				h := e.randn(1, sh...)
				ts[i], xs[i] = e.in(h), arr(h)
			}
			axis := c.axis
			if axis < 0 {
				axis += len(c.shapes[0])
			}
			got := e.b.Concat(c.axis, ts...)
			e.check(name("Concat axis %d %v", c.axis, c.shapes), got, refConcat(axis, xs...), tolExact)
		})
	}
}

func testSlice(t *testing.T, s *suite) {
	cases := []struct {
		shape            []int
		axis, start, end int
	}{
		{[]int{5, 7}, 1, 2, 5},
		{[]int{5, 7}, 0, 1, 4},
		{[]int{5, 7}, -1, 0, 7},
		{[]int{5, 7}, 1, 3, 3},
		{[]int{3, 257}, 1, 1, 256},
		{[]int{3, 257}, -2, 2, 3},
		{[]int{2, 3, 4, 5}, 2, 1, 3},
		{[]int{257}, 0, 255, 257},
		{[]int{2, 130, 3}, 1, 64, 129},
	}
	for _, c := range cases {
		s.run(t, name("%v_axis%d_%d:%d", tensor.Shape(c.shape), c.axis, c.start, c.end), numel(c.shape), func(e *env) {
			h := e.randn(1, c.shape...)
			axis := c.axis
			if axis < 0 {
				axis += len(c.shape)
			}
			got := e.b.Slice(e.in(h), c.axis, c.start, c.end)
			e.check(name("Slice %v axis %d [%d,%d)", h.Shape, c.axis, c.start, c.end), got, refSlice(arr(h), axis, c.start, c.end), tolExact)
		})
	}
}

func testSplit(t *testing.T, s *suite) {
	cases := []struct {
		shape []int
		axis  int
		sizes []int // nil: Chunk into n
		n     int
	}{
		{[]int{4, 6}, 1, []int{1, 2, 3}, 0},
		{[]int{5, 2}, 0, []int{2, 0, 3}, 0},
		{[]int{2, 3, 65}, -1, []int{64, 1}, 0},
		{[]int{4, 6}, 0, nil, 2},
		{[]int{2, 9}, -1, nil, 3},
		{[]int{2, 4, 3, 3}, 1, nil, 4},
	}
	for _, c := range cases {
		s.run(t, name("%v_axis%d_%v_%d", tensor.Shape(c.shape), c.axis, c.sizes, c.n), numel(c.shape), func(e *env) {
			h := e.randn(1, c.shape...)
			x := e.in(h)
			axis := c.axis
			if axis < 0 {
				axis += len(c.shape)
			}
			var parts []backend.Tensor
			sizes := c.sizes
			if sizes == nil {
				parts = backend.Chunk(e.b, x, c.axis, c.n)
				for range c.n {
					sizes = append(sizes, c.shape[axis]/c.n)
				}
			} else {
				parts = backend.Split(e.b, x, c.axis, sizes...)
			}
			if len(parts) != len(sizes) {
				e.t.Fatalf("%d pieces, want %d", len(parts), len(sizes))
			}
			start := 0
			for i, p := range parts {
				e.check(name("piece %d", i), p, refSlice(arr(h), axis, start, start+sizes[i]), tolExact)
				start += sizes[i]
			}
		})
	}
}

func testResizeNearest(t *testing.T, s *suite) {
	cases := []struct {
		shape      []int
		outH, outW int
	}{
		{[]int{1, 2, 3, 4}, 6, 8},   // ×2
		{[]int{1, 1, 5, 9}, 10, 18}, // ×2, odd sizes
		{[]int{2, 3, 3, 5}, 5, 9},   // explicit odd output size
		{[]int{1, 2, 8, 6}, 3, 4},   // down
		{[]int{1, 1, 1, 1}, 3, 2},
		{[]int{1, 3, 4, 4}, 4, 4}, // same size
		{[]int{1, 1, 7, 3}, 5, 5}, // down in H, up in W
		{[]int{1, 1, 63, 65}, 64, 257},
		{[]int{1, 1, 3, 256}, 7, 255},
		{[]int{2, 3, 40, 40}, 80, 80},
	}
	for _, c := range cases {
		s.run(t, name("%v_to_%dx%d", tensor.Shape(c.shape), c.outH, c.outW), numel(c.shape)+c.shape[0]*c.shape[1]*c.outH*c.outW, func(e *env) {
			h := e.randn(1, c.shape...)
			got := e.b.ResizeNearest(e.in(h), c.outH, c.outW)
			e.check(name("ResizeNearest %v to %dx%d", h.Shape, c.outH, c.outW), got, refResizeNearest(arr(h), c.outH, c.outW), tolExact)
		})
	}
}

func testGather(t *testing.T, s *suite) {
	cases := []struct {
		dt  tensor.DType
		V   int
		D   int
		ids []int32
	}{
		{tensor.F32, 10, 4, []int32{0, 9, 3, 3}},
		{tensor.F16, 257, 5, []int32{256, 0, 128, 1, 255}},
		{tensor.BF16, 5, 65, []int32{4, 4, 0}},
		{tensor.F32, 1, 1, []int32{0, 0, 0}},
		{tensor.F32, 3, 256, []int32{2, 1}},
	}
	for _, c := range cases {
		s.run(t, name("%v_%dx%d_%d_ids", c.dt, c.V, c.D, len(c.ids)), c.V*c.D, func(e *env) {
			table, w := e.inAs(e.randn(1, c.V, c.D), c.dt)
			got := e.b.Gather(table, c.ids)
			e.check(name("Gather %v [%d,%d]", c.dt, c.V, c.D), got, refGather(arr(w), c.ids), tolExact)
		})
	}
}
