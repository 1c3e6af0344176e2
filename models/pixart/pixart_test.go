package pixart

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// tol is the largest error allowed relative to an output's largest
// magnitude: float32 goldens and float64 re-runs of these modules differ
// by about 1e-6 of it (golden README), and the CPU backend accumulates in
// float64.
const tol = 1e-4

func loadModel(t *testing.T, b backend.Backend, rel ...string) *Model {
	t.Helper()
	c, err := hub.OpenComponent(golden.Dir(t, rel...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	m, err := Load(b, c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func floats(h *tensor.Host) []float64 {
	out := make([]float64, len(h.Data))
	for i, v := range h.Data {
		out[i] = float64(v)
	}
	return out
}

// runCase runs one case of io.safetensors and compares out.sample.
func runCase(t *testing.T, b backend.Backend, m *Model, io map[string]*tensor.Host, name string, opt ForwardOpts) {
	t.Helper()
	x := b.Upload(io[name+".in.hidden_states"])
	ctx := b.Upload(io[name+".in.encoder_hidden_states"])
	defer nn.Free(b, x, ctx)
	opt.EncoderMask = io[name+".in.encoder_attention_mask"]
	out, err := m.Forward(b, x, floats(io[name+".in.timestep"]), ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	got := golden.ReadBack(t, b, out)
	b.Free(out)
	golden.AssertClose(t, name, got, io[name+".out.sample"], tol)
}

// TestGolden runs pixart_tiny: a batch of two 8×8 latents with a partly
// masked caption at timesteps 999 and 500, and an 8×12 latent whose 4×6
// patch grid needs the positional embedding recomputed.
func TestGolden(t *testing.T) {
	b := cpu.New()
	m := loadModel(t, b, "golden", "pixart_tiny")
	defer m.Release(b)
	io := golden.Tensors(t, golden.Dir(t, "golden", "pixart_tiny", "io.safetensors"))
	runCase(t, b, m, io, "sq", ForwardOpts{})
	runCase(t, b, m, io, "rect", ForwardOpts{})
	// The positional embedding of the last grid stays on the device;
	// nothing else may.
	live := b.Memory().Live
	runCase(t, b, m, io, "rect", ForwardOpts{})
	if after := b.Memory().Live; after != live {
		t.Errorf("live bytes %d after the forward passes, %d before: intermediates leak", after, live)
	}
}

// TestGoldenAdditionalConditions runs pixart_tiny_addcond, whose timestep
// embedding adds the resolution and aspect-ratio embeddings.
func TestGoldenAdditionalConditions(t *testing.T) {
	b := cpu.New()
	m := loadModel(t, b, "golden", "pixart_tiny_addcond")
	defer m.Release(b)
	if !m.Config.AdditionalConditions() {
		t.Fatal("pixart_tiny_addcond: use_additional_conditions not read from config.json")
	}
	io := golden.Tensors(t, golden.Dir(t, "golden", "pixart_tiny_addcond", "io.safetensors"))
	runCase(t, b, m, io, "sq", ForwardOpts{
		Resolution:  floats(io["sq.in.resolution"]),
		AspectRatio: floats(io["sq.in.aspect_ratio"]),
	})
	// Without the size conditions the model refuses to run.
	x := b.Upload(io["sq.in.hidden_states"])
	defer b.Free(x)
	if _, err := m.Forward(b, x, []float64{1, 2}, nil, ForwardOpts{}); err == nil {
		t.Error("Forward without resolution and aspect ratio: no error")
	}
}

// TestMaskMatters checks that the caption mask reaches the
// cross-attention: without it the output moves away from the golden.
func TestMaskMatters(t *testing.T) {
	b := cpu.New()
	m := loadModel(t, b, "golden", "pixart_tiny")
	defer m.Release(b)
	io := golden.Tensors(t, golden.Dir(t, "golden", "pixart_tiny", "io.safetensors"))
	x := b.Upload(io["rect.in.hidden_states"])
	ctx := b.Upload(io["rect.in.encoder_hidden_states"])
	defer nn.Free(b, x, ctx)
	out, err := m.Forward(b, x, []float64{250}, ctx, ForwardOpts{})
	if err != nil {
		t.Fatal(err)
	}
	got := golden.ReadBack(t, b, out)
	b.Free(out)
	if _, rel := golden.Diff(got, io["rect.out.sample"]); rel < 1e-3 {
		t.Errorf("output without the mask is within %.2g of the golden: the mask has no effect", rel)
	}
}

// TestSinCosPosEmbed checks get_2d_sincos_pos_embed against the formula
// evaluated independently for a few entries of a non-square grid with
// interpolation: the first half encodes the column, the second the row.
func TestSinCosPosEmbed(t *testing.T) {
	const dim, gh, gw, base, interp = 16, 3, 5, 4, 2.0
	e := SinCosPosEmbed(dim, gh, gw, base, interp)
	if !e.Shape.Equal(tensor.Shape{gh * gw, dim}) {
		t.Fatalf("shape %v", e.Shape)
	}
	for _, pos := range [][2]int{{0, 0}, {1, 4}, {2, 3}} {
		y, x := pos[0], pos[1]
		px := float64(x) / (float64(gw) / base) / interp
		py := float64(y) / (float64(gh) / base) / interp
		row := e.Data[(y*gw+x)*dim:][:dim]
		for i := 0; i < dim/4; i++ {
			w := math.Pow(10000, -float64(i)/float64(dim/4))
			want := []float64{math.Sin(px * w), math.Cos(px * w), math.Sin(py * w), math.Cos(py * w)}
			got := []float32{row[i], row[dim/4+i], row[dim/2+i], row[3*dim/4+i]}
			for k := range want {
				if math.Abs(float64(got[k])-want[k]) > 1e-6 {
					t.Errorf("(%d,%d) channel %d part %d: %g, want %g", y, x, i, k, got[k], want[k])
				}
			}
		}
	}
}

// TestReleaseCrossAttention checks that released cross-attention weights
// make a computing pass fail, and that Params drops them.
func TestReleaseCrossAttention(t *testing.T) {
	b := cpu.New()
	m := loadModel(t, b, "golden", "pixart_tiny")
	defer m.Release(b)
	n := len(m.Params())
	m.ReleaseCrossAttention(b)
	if got := len(m.Params()); got != n-8*len(m.Blocks) {
		t.Errorf("%d params after releasing cross-attention, want %d", got, n-8*len(m.Blocks))
	}
	io := golden.Tensors(t, golden.Dir(t, "golden", "pixart_tiny", "io.safetensors"))
	x := b.Upload(io["rect.in.hidden_states"])
	ctx := b.Upload(io["rect.in.encoder_hidden_states"])
	defer nn.Free(b, x, ctx)
	if _, err := m.Forward(b, x, []float64{250}, ctx, ForwardOpts{}); err == nil {
		t.Error("Forward with released cross-attention: no error")
	}
}
