package pipeline

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
)

// TestSDXLTGateDeepCacheParity reproduces runs/sdxl_tgate_deepcache_a
// (TgateSDXLDeepCacheLoader: T-GATE gate 5 with sp = fi = 1, warm-up 0,
// DeepCache interval 3, branch 0, Euler): the forced refreshes at steps 4
// and 5, every step's latents and the final latents.
func TestSDXLTGateDeepCacheParity(t *testing.T) {
	const name = "sdxl_tgate_deepcache_a"
	schedule := deepCacheSchedule(t, name)
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
	// The run's call spells the defaulted T-GATE arguments as text, so it
	// is written out here rather than read through runFile.
	p := loadRunPipeline(t, &runFile{PipelineFolder: "shared/sdxl_tiny_pipeline"})
	if p.Kind != StableDiffusionXL {
		t.Fatalf("kind %v", p.Kind)
	}
	req := Request{
		Prompt: "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k",
		Steps:  10, Guidance: 5.0, Width: 32, Height: 32,
		Latents: gold["init.latents"],
		Gate:    gate.Config{Mode: gate.V2, GateStep: 5, SPInterval: 1, FIInterval: 1, WarmUp: 0},
	}
	steps, res, partial := runDeepCache(t, p, req, DeepCache{Interval: 3, Branch: 0})
	if len(steps) != len(schedule) {
		t.Fatalf("%d evaluations, the run has %d", len(steps), len(schedule))
	}
	for i, h := range steps {
		if want := schedule[i] == "partial"; partial[i] != want {
			t.Errorf("step %d: partial %v, the loader's schedule says %q", i, partial[i], schedule[i])
		}
		abs, rel := golden.Diff(h, gold[fmt.Sprintf("step.%02d.latents", i)])
		t.Logf("step %02d (%s) latents: max abs %.3g, relative %.3g", i, schedule[i], abs, rel)
		if rel > 1e-3 {
			t.Errorf("step %02d latents differ: max abs %.3g, relative %.3g", i, abs, rel)
		}
	}
	golden.AssertClose(t, "final.latents", res.Latents, gold["final.latents"], 1e-3)
	base := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "sdxl_euler_baseline.safetensors"))
	if _, rel := golden.Diff(gold["final.latents"], base["final.latents"]); rel < 1e-2 {
		t.Errorf("golden %s is within %.3g of sdxl_euler_baseline", name, rel)
	}
}
