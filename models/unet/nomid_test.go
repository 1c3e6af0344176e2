package unet

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/tensor"
)

// mapSource is an in-memory checkpoint of float32 weights.
type mapSource map[string]*tensor.Host

func (s mapSource) Lookup(name string) (tensor.DType, tensor.Shape, bool) {
	h, ok := s[name]
	if !ok {
		return 0, nil, false
	}
	return tensor.F32, h.Shape, true
}

func (s mapSource) Load(b backend.Backend, name string) (backend.Tensor, error) {
	return b.Upload(s[name]), nil
}

// randomWeights makes every weight cfg needs, initialised as the goldens
// are (norm scales 1 + 0.1·N, biases 0.05·N, others N/√fan_in).
func randomWeights(t *testing.T, cfg *Config, seed uint64) mapSource {
	t.Helper()
	m, err := NewDeclared(meter.New(), cfg, tensor.F32)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 7))
	src := mapSource{}
	for _, p := range m.Params() {
		h := tensor.New(p.Shape...)
		norm := strings.Contains(p.Name, "norm")
		scale := 1 / math.Sqrt(float64(p.Shape.Numel()/p.Shape[0]))
		for i := range h.Data {
			v := r.NormFloat64()
			switch {
			case norm && strings.HasSuffix(p.Name, ".weight"):
				v = 1 + 0.1*v
			case len(p.Shape) == 1:
				v *= 0.05
			default:
				v *= scale
			}
			h.Data[i] = float32(v)
		}
		src[p.Name] = h
	}
	return src
}

// TestNoMidBlock checks block-removed UNets (BK-SDM's mid_block_type null,
// per-block layer and transformer counts): a UNet whose mid block is the
// identity (every conv2 and proj_out in it zero, so each of its resnets
// and its transformer returns its input exactly) must give exactly the
// output of the same weights with no mid block. The skip bookkeeping
// differs between the two (without a mid block the first up layer
// concatenates the last skip with itself).
func TestNoMidBlock(t *testing.T) {
	cases := []struct {
		name, js string
		h, w     int
	}{
		{"bk-sdm-tiny layout", `{"block_out_channels": [16, 32, 32], "layers_per_block": 1, "norm_num_groups": 8,
			"attention_head_dim": 2, "cross_attention_dim": 16,
			"down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
			"up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}`, 8, 12},
		{"per-block lists, resize rule", `{"block_out_channels": [16, 32, 48], "layers_per_block": [1, 2, 1], "norm_num_groups": 8,
			"attention_head_dim": [2, 4, 4], "cross_attention_dim": 16, "transformer_layers_per_block": [1, 2, 3],
			"use_linear_projection": true,
			"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
			"up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]}`, 10, 14},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			withMid := mustParse(t, c.js)
			src := randomWeights(t, withMid, 11)
			for name, h := range src {
				if strings.HasPrefix(name, "mid_block.") &&
					(strings.Contains(name, ".conv2.") || strings.Contains(name, ".proj_out.")) {
					clear(h.Data)
				}
			}
			noMid := *withMid
			noMid.MidBlockType = nil

			b := cpu.New()
			a, err := New(b, src, withMid)
			if err != nil {
				t.Fatal(err)
			}
			n, err := New(b, src, &noMid)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range n.Params() {
				if strings.HasPrefix(p.Name, "mid_block.") {
					t.Fatalf("the model without a mid block bound %s", p.Name)
				}
			}

			r := rand.New(rand.NewPCG(3, 4))
			x := tensor.New(2, 4, c.h, c.w)
			ctxH := tensor.New(2, 5, 16)
			for _, h := range []*tensor.Host{x, ctxH} {
				for i := range h.Data {
					h.Data[i] = float32(r.NormFloat64())
				}
			}
			xt, ct := b.Upload(x), b.Upload(ctxH)
			live := b.Memory().Live
			run := func(m *Model) *tensor.Host {
				out, err := m.Forward(b, xt, []float64{999, 21}, ct, ForwardOpts{})
				if err != nil {
					t.Fatal(err)
				}
				h := golden.ReadBack(t, b, out)
				b.Free(out)
				return h
			}
			want, got := run(a), run(n)
			if !got.Shape.Equal(tensor.Shape{2, 4, c.h, c.w}) {
				t.Fatalf("output shape %v", got.Shape)
			}
			golden.AssertClose(t, "no mid block vs identity mid block", got, want, 0)
			if l := b.Memory().Live; l != live {
				t.Errorf("%d bytes leaked by the forward passes", l-live)
			}
		})
	}
}
