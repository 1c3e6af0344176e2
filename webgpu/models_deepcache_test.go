//go:build js && wasm

package webgpu

import (
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// TestModelUNetDeepCache runs a DeepCache refresh step and then a partial
// step (the shallow branch on the stored feature, a new sample and
// timestep) of the SD 1.5-shaped test UNet on both backends, for a
// shallow and a deep branch, and compares both outputs.
func TestModelUNetDeepCache(t *testing.T) {
	cfg, err := unet.ParseConfig([]byte(unetSD15JSON))
	if err != nil {
		t.Fatal(err)
	}
	src := randomWeights(t, func(m *meter.Backend) ([]nn.Param, error) {
		u, err := unet.NewDeclared(m, cfg, tensor.F32)
		if err != nil {
			return nil, err
		}
		params := u.Params()
		for i, p := range params {
			if len(p.Shape) == 2 && (strings.HasSuffix(p.Name, ".proj_in.weight") || strings.HasSuffix(p.Name, ".proj_out.weight")) {
				params[i].Shape = tensor.Shape{p.Shape[0], p.Shape[1], 1, 1}
			}
		}
		return params, nil
	}, 23, tensor.F32)
	first, second := randn(5, 1, 2, 4, 8, 8), randn(6, 1, 2, 4, 8, 8)
	ctx := randn(7, 1, 2, 77, 32)
	for _, branch := range []int{0, 3} {
		gpu, ref := onBoth(t, func(b backend.Backend) []*tensor.Host {
			m, err := unet.New(b, src, cfg)
			if err != nil {
				t.Fatalf("%s: %v", b.Name(), err)
			}
			defer m.Release(b)
			dc, err := unet.NewDeepCache(branch)
			if err != nil {
				t.Fatal(err)
			}
			defer dc.Release()
			e := b.Upload(ctx)
			defer b.Free(e)
			var outs []*tensor.Host
			for i, s := range []*tensor.Host{first, second} {
				dc.Refresh = i == 0
				x := b.Upload(s)
				out, err := m.Forward(b, x, []float64{981 - 400*float64(i)}, e, unet.ForwardOpts{DeepCache: dc})
				b.Free(x)
				if err != nil {
					t.Fatalf("%s: %v", b.Name(), err)
				}
				outs = append(outs, readBack(t, b, out))
				b.Free(out)
			}
			return outs
		})
		compare(t, "deepcache refresh", gpu[0], ref[0], modelTol)
		compare(t, "deepcache partial", gpu[1], ref[1], modelTol)
	}
}
