package unet

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/tensor"
)

// TestDeepCacheConsistency checks the DeepCache pass on deeper UNets than
// the pipeline goldens use (three blocks; per-block layer counts and the
// resize rule; with and without a mid block), for every branch id: a
// refresh step equals Forward bit for bit; a partial step given the same
// sample and timestep as the refresh also equals it bit for bit (the
// stored feature is what the full pass computes there, so any slip in
// the skip bookkeeping or the upsampler sizes shows); a partial step on a
// new input differs from Forward except where the branch caches nothing;
// nothing leaks once the cache is released.
func TestDeepCacheConsistency(t *testing.T) {
	cases := []struct {
		name, js string
		h, w     int
	}{
		{"sdxl-like layout", `{"block_out_channels": [16, 32, 32], "layers_per_block": 2, "norm_num_groups": 8,
			"attention_head_dim": 2, "cross_attention_dim": 16,
			"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
			"up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]}`, 8, 8},
		{"per-block lists, resize rule", `{"block_out_channels": [16, 32, 48], "layers_per_block": [1, 2, 1], "norm_num_groups": 8,
			"attention_head_dim": [2, 4, 4], "cross_attention_dim": 16, "transformer_layers_per_block": [1, 2, 3],
			"use_linear_projection": true,
			"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
			"up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]}`, 10, 14},
	}
	for _, c := range cases {
		for _, mid := range []bool{true, false} {
			name := c.name
			if !mid {
				name += ", no mid block"
			}
			t.Run(name, func(t *testing.T) {
				cfg := mustParse(t, c.js)
				src := randomWeights(t, cfg, 5)
				if !mid {
					cfg.MidBlockType = nil
					for k := range src {
						if strings.HasPrefix(k, "mid_block.") {
							delete(src, k)
						}
					}
				}
				b := cpu.New()
				m, err := New(b, src, cfg)
				if err != nil {
					t.Fatal(err)
				}
				r := rand.New(rand.NewPCG(8, 9))
				x1, x2 := tensor.New(2, 4, c.h, c.w), tensor.New(2, 4, c.h, c.w)
				ctxH := tensor.New(2, 5, 16)
				for _, h := range []*tensor.Host{x1, x2, ctxH} {
					for i := range h.Data {
						h.Data[i] = float32(r.NormFloat64())
					}
				}
				a1, a2, ct := b.Upload(x1), b.Upload(x2), b.Upload(ctxH)
				live := b.Memory().Live
				run := func(x backend.Tensor, ts float64, dc *DeepCache) *tensor.Host {
					out, err := m.Forward(b, x, []float64{ts}, ct, ForwardOpts{DeepCache: dc})
					if err != nil {
						t.Fatal(err)
					}
					h := golden.ReadBack(t, b, out)
					b.Free(out)
					return h
				}
				full1, full2 := run(a1, 901, nil), run(a2, 601, nil)
				for branch := 0; branch < 10; branch++ {
					dc, err := NewDeepCache(branch)
					if err != nil {
						t.Fatal(err)
					}
					dc.Refresh = true
					golden.AssertClose(t, "refresh vs Forward", run(a1, 901, dc), full1, 0)
					dc.Refresh = false
					golden.AssertClose(t, "partial on the refresh input vs Forward", run(a1, 901, dc), full1, 0)
					got := run(a2, 601, dc)
					abs, _ := golden.Diff(got, full2)
					if p := m.deepCachePlan(dc); p.none != (abs == 0) {
						t.Errorf("branch %d: partial step differs from Forward by %g; the plan caches nothing: %v", branch, abs, p.none)
					}
					dc.Release()
					if l := b.Memory().Live; l != live {
						t.Errorf("branch %d: %d bytes live after the cache's release", branch, l-live)
					}
				}
			})
		}
	}
}

// TestDeepCacheErrors checks that a partial step refuses to run with no
// stored feature or with a feature of another batch.
func TestDeepCacheErrors(t *testing.T) {
	cfg := mustParse(t, `{"block_out_channels": [16, 32], "layers_per_block": 1, "norm_num_groups": 8,
		"attention_head_dim": 2, "cross_attention_dim": 16,
		"down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}`)
	b := cpu.New()
	m, err := New(b, randomWeights(t, cfg, 1), cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, _ := NewDeepCache(0)
	dc.Refresh = false
	x2, x1 := b.Upload(tensor.New(2, 4, 8, 8)), b.Upload(tensor.New(1, 4, 8, 8))
	c2, c1 := b.Upload(tensor.New(2, 5, 16)), b.Upload(tensor.New(1, 5, 16))
	if _, err := m.Forward(b, x2, []float64{1}, c2, ForwardOpts{DeepCache: dc}); err == nil || !strings.Contains(err.Error(), "no stored feature") {
		t.Errorf("partial step without a feature: %v", err)
	}
	dc.Refresh = true
	out, err := m.Forward(b, x2, []float64{1}, c2, ForwardOpts{DeepCache: dc})
	if err != nil {
		t.Fatal(err)
	}
	b.Free(out)
	dc.Refresh = false
	if _, err := m.Forward(b, x1, []float64{1}, c1, ForwardOpts{DeepCache: dc}); err == nil || !strings.Contains(err.Error(), "batch") {
		t.Errorf("partial step on another batch: %v", err)
	}
	dc.Release()
	if _, err := NewDeepCache(-1); err == nil {
		t.Errorf("negative branch accepted")
	}
}
