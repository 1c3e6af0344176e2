package pipeline

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/tensor"
)

// recordedSimilarities computes, independently of the pipeline, the
// cosine similarity of the unconditional and conditional halves of every
// step.NN.unet_out recorded in a run file.
func recordedSimilarities(t *testing.T, gold map[string]*tensor.Host, steps int) []float64 {
	t.Helper()
	sims := make([]float64, steps)
	for i := range sims {
		out := gold[fmt.Sprintf("step.%02d.unet_out", i)]
		if out == nil || out.Shape[0] != 2 {
			t.Fatalf("step.%02d.unet_out missing or not a guidance batch", i)
		}
		n := len(out.Data) / 2
		var uc, uu, cc float64
		for j := 0; j < n; j++ {
			u, c := float64(out.Data[j]), float64(out.Data[n+j])
			uc += u * c
			uu += u * u
			cc += c * c
		}
		sims[i] = uc / (math.Sqrt(uu) * math.Sqrt(cc))
	}
	return sims
}

// runAdaptive generates req with threshold γ̄ and returns the latents after
// each step, the result and the similarities Progress reported.
func runAdaptive(t *testing.T, p *Pipeline, req Request, threshold float64) ([]*tensor.Host, *Result, []float64) {
	t.Helper()
	req.AdaptiveGuidance = threshold
	req.Decoder = DecodeNone
	var steps []*tensor.Host
	var sims []float64
	req.Progress = func(pr Progress) {
		steps = append(steps, golden.ReadBack(t, p.b, pr.Latents))
		sims = append(sims, pr.Similarity)
	}
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return steps, res, sims
}

// TestAdaptiveGuidance checks Adaptive Guidance on runs/ddim_baseline:
// with γ̄ = 1 the run is the plain one; with a γ̄ placed between the
// recorded similarities it stops guidance after the first step whose
// similarity exceeds γ̄, the latents up to that step equal the plain
// run's and the later ones do not.
func TestAdaptiveGuidance(t *testing.T) {
	const name = "ddim_baseline"
	r := readRun(t, name)
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
	p := loadRunPipeline(t, r)
	req := requestFor(t, r, gold["init.latents"])
	want := recordedSimilarities(t, gold, r.UNetEvaluations)
	t.Logf("recorded similarities %.6f", want)

	plain, plainRes, _ := runAdaptive(t, p, req, 0)
	never, neverRes, sims := runAdaptive(t, p, req, 1.0)
	if neverRes.AdaptiveGuidanceStep != 0 {
		t.Errorf("γ̄ = 1 stopped guidance at step %d", neverRes.AdaptiveGuidanceStep)
	}
	for i := range never {
		if abs, _ := golden.Diff(never[i], plain[i]); abs != 0 {
			t.Errorf("γ̄ = 1: step %d latents differ from the plain run by %.3g", i, abs)
		}
		if d := math.Abs(sims[i] - want[i]); d > 1e-4 {
			t.Errorf("step %d similarity %.7f, recorded unet_out gives %.7f", i, sims[i], want[i])
		}
	}
	if abs, _ := golden.Diff(neverRes.Latents, plainRes.Latents); abs != 0 {
		t.Errorf("γ̄ = 1: final latents differ from the plain run by %.3g", abs)
	}

	// A threshold midway between step k's similarity and the largest one
	// before it, for the first k ≥ 2 where that gap is clear.
	k, threshold := -1, 0.0
	for i := 2; i < len(want)-2 && k < 0; i++ {
		prevMax := want[0]
		for _, s := range want[1:i] {
			prevMax = math.Max(prevMax, s)
		}
		if want[i]-prevMax > 1e-3 {
			k, threshold = i, (want[i]+prevMax)/2
		}
	}
	if k < 0 {
		t.Fatalf("no step's similarity rises clearly above the earlier ones: %v", want)
	}
	steps, res, _ := runAdaptive(t, p, req, threshold)
	t.Logf("γ̄ = %.6f: guidance stopped after step %d (expected %d)", threshold, res.AdaptiveGuidanceStep, k+1)
	if res.AdaptiveGuidanceStep != k+1 {
		t.Fatalf("guidance stopped after step %d; the recorded similarities first exceed %.6f at step %d", res.AdaptiveGuidanceStep, threshold, k+1)
	}
	for i := 0; i <= k; i++ {
		if abs, _ := golden.Diff(steps[i], plain[i]); abs != 0 {
			t.Errorf("step %d (guided) latents differ from the plain run by %.3g", i, abs)
		}
		golden.AssertClose(t, fmt.Sprintf("step %d latents vs golden", i), steps[i], gold[fmt.Sprintf("step.%02d.latents", i)], 1e-3)
	}
	if _, rel := golden.Diff(steps[k+1], plain[k+1]); rel < 1e-4 {
		t.Errorf("step %d ran without guidance but its latents are within %.3g of the plain run", k+1, rel)
	}
}

// TestAdaptiveGuidanceChecks covers the settings Adaptive Guidance
// refuses: a threshold outside (0, 1], the combination with T-GATE and a
// pipeline other than SD 1.x/2.x.
func TestAdaptiveGuidanceChecks(t *testing.T) {
	for _, tc := range []struct {
		threshold float64
		tgate     bool
	}{{-0.5, false}, {1.5, false}, {math.NaN(), false}, {0.9, true}} {
		if _, err := newAdaptiveGuidance(tc.threshold, StableDiffusion, true, tc.tgate); err == nil {
			t.Errorf("threshold %g, T-GATE %v: no error", tc.threshold, tc.tgate)
		}
	}
	if a, err := newAdaptiveGuidance(0.9, StableDiffusion, false, false); a != nil || err != nil {
		t.Errorf("without guidance: %v, %v; want no controller and no error", a, err)
	}
	if _, err := newAdaptiveGuidance(0.9, StableDiffusionXL, true, false); err == nil {
		t.Errorf("the SD-XL pipeline accepted adaptive guidance")
	}
}
