package pipeline

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// crossRecorder computes every attention module and keeps each
// cross-attention output on the host.
type crossRecorder struct {
	b   backend.Backend
	out map[string]*tensor.Host
}

func (r *crossRecorder) Attention(key string, kind nn.AttnKind, compute func() backend.Tensor) (backend.Tensor, bool) {
	o := compute()
	if kind == nn.CrossAttn {
		h, err := r.b.ReadBack(o)
		if err != nil {
			panic(err)
		}
		r.out[key] = h
	}
	return o, true
}

// referenceChanges feeds the tiny UNet the guidance batches recorded in
// runs/ddim_baseline (step.NN.unet_sample, step.NN.t and the text
// embeddings) and returns, for every step k ≥ 1, the mean over the
// cross-attention modules of ‖A_k − A_{k−1}‖ / ‖A_{k−1}‖, computed here in
// float64 (entry 0 is NaN).
func referenceChanges(t *testing.T, p *Pipeline, gold map[string]*tensor.Host, steps int) []float64 {
	t.Helper()
	b := p.b
	neg, pos := gold["text.negative_prompt_embeds"], gold["text.prompt_embeds"]
	both := append(append([]float32(nil), neg.Data...), pos.Data...)
	ctx := b.Upload(tensor.FromData(both, 2, neg.Shape[1], neg.Shape[2]))
	defer b.Free(ctx)
	var prev map[string]*tensor.Host
	changes := []float64{math.NaN()}
	for i := 0; i < steps; i++ {
		rec := &crossRecorder{b: b, out: map[string]*tensor.Host{}}
		x := b.Upload(gold[fmt.Sprintf("step.%02d.unet_sample", i)])
		ts := float64(gold[fmt.Sprintf("step.%02d.t", i)].Data[0])
		out, err := p.UNet.Forward(b, x, []float64{ts}, ctx, unet.ForwardOpts{Hook: rec})
		b.Free(x)
		if err != nil {
			t.Fatal(err)
		}
		b.Free(out)
		if prev != nil {
			var sum float64
			for key, cur := range rec.out {
				var d, n float64
				for j, v := range cur.Data {
					w := float64(prev[key].Data[j])
					d += (float64(v) - w) * (float64(v) - w)
					n += w * w
				}
				sum += math.Sqrt(d) / math.Sqrt(n)
			}
			changes = append(changes, sum/float64(len(rec.out)))
		}
		prev = rec.out
	}
	return changes
}

// expectedAutoGate applies the auto gate's rule to the measurements r:
// before step c the gate step becomes c+1 when c+1 ≥ floor and r[c−1] is
// under the threshold, or when c+1 reaches the ceiling.
func expectedAutoGate(r []float64, threshold float64, floor, ceiling int) int {
	for c := 0; c < len(r); c++ {
		if c+1 >= ceiling {
			return ceiling
		}
		if c+1 >= floor && c >= 1 && r[c-1] < threshold {
			return c + 1
		}
	}
	return 0
}

// TestAutoGate runs T-GATE v1 with the auto gate on runs/ddim_baseline's
// pipeline: the gate step it reports follows the rule applied to the
// relative changes computed independently from the recorded UNet inputs,
// for a threshold between two measurements, under a floor and under a
// ceiling; and each auto run equals the fixed-gate run at that step.
func TestAutoGate(t *testing.T) {
	const name = "ddim_baseline"
	r := readRun(t, name)
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
	p := loadRunPipeline(t, r)
	req := requestFor(t, r, gold["init.latents"])
	req.Decoder = DecodeNone
	changes := referenceChanges(t, p, gold, r.UNetEvaluations)
	t.Logf("reference relative changes %.5f", changes)

	// A threshold between r[k] and the smallest earlier measurement,
	// placing the decision at step k+1 (gate step k+2).
	k := -1
	threshold := 0.0
	for i := 2; i < len(changes)-3 && k < 0; i++ {
		lo := math.Inf(1)
		for _, c := range changes[1:i] {
			lo = math.Min(lo, c)
		}
		if lo-changes[i] > 1e-3*lo {
			k, threshold = i, (lo+changes[i])/2
		}
	}
	if k < 0 {
		t.Fatalf("no measurement drops clearly below the earlier ones: %v", changes)
	}
	n := r.UNetEvaluations
	for _, tc := range []struct {
		name             string
		threshold        float64
		floor, ceiling   int
		expectedGateStep int
	}{
		{"threshold", threshold, 0, 0, expectedAutoGate(changes, threshold, 0, n+1)},
		{"floor", 1e9, 6, 0, 6},
		{"ceiling", 1e-9, 0, 5, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if want := expectedAutoGate(changes, tc.threshold, tc.floor, ceilingOr(tc.ceiling, n+1)); want != tc.expectedGateStep {
				t.Fatalf("rule gives %d, case expects %d", want, tc.expectedGateStep)
			}
			auto := req
			auto.Gate = gate.Config{Mode: gate.V1, Auto: gate.Auto{Threshold: tc.threshold, MinStep: tc.floor, MaxStep: tc.ceiling}}
			res, err := p.Generate(context.Background(), auto)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("threshold %.5g, floor %d, ceiling %d: gated at %d", tc.threshold, tc.floor, tc.ceiling, res.Gate.GateStep)
			if res.Gate.GateStep != tc.expectedGateStep {
				t.Fatalf("auto gate closed at %d; the independent measurements give %d", res.Gate.GateStep, tc.expectedGateStep)
			}
			fixed := req
			fixed.Gate = gate.Config{Mode: gate.V1, GateStep: tc.expectedGateStep}
			want, err := p.Generate(context.Background(), fixed)
			if err != nil {
				t.Fatal(err)
			}
			if abs, _ := golden.Diff(res.Latents, want.Latents); abs != 0 {
				t.Errorf("auto run differs from the fixed gate %d by %.3g", tc.expectedGateStep, abs)
			}
		})
	}
}

func ceilingOr(c, def int) int {
	if c > 0 {
		return c
	}
	return def
}
