package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/tensor"
)

// deepCacheSchedule reads the refresh/partial schedule the reference
// helper followed (runs/NAME.json, deepcache.schedule).
func deepCacheSchedule(t *testing.T, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(golden.Dir(t, "golden", "runs"), name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		DeepCache struct {
			SetParams struct {
				Interval int `json:"cache_interval"`
				Branch   int `json:"cache_branch_id"`
			} `json:"set_params"`
			Schedule []string `json:"schedule"`
		} `json:"deepcache"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s.json: %v", name, err)
	}
	if f.DeepCache.SetParams.Interval != 3 || f.DeepCache.SetParams.Branch != 0 {
		t.Fatalf("%s.json: set_params %+v; this test expects interval 3, branch 0", name, f.DeepCache.SetParams)
	}
	return f.DeepCache.Schedule
}

// runDeepCache generates the run's request with dc on the CPU backend and
// returns the latents after every step, the final latents and the
// partial-step flags Progress reported.
func runDeepCache(t *testing.T, p *Pipeline, req Request, dc DeepCache) ([]*tensor.Host, *Result, []bool) {
	t.Helper()
	req.DeepCache = dc
	req.Decoder = DecodeNone
	var steps []*tensor.Host
	var partial []bool
	req.Progress = func(pr Progress) {
		h, err := p.b.ReadBack(pr.Latents)
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, h)
		partial = append(partial, pr.DeepCachePartial)
	}
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return steps, res, partial
}

// TestDeepCacheParity reproduces runs/deepcache_ddim_i3_b0 (DDIM, interval
// 3, branch 0): the refresh/partial schedule, the latents after every step
// and the final latents.
func TestDeepCacheParity(t *testing.T) {
	const name = "deepcache_ddim_i3_b0"
	r := readRun(t, name)
	schedule := deepCacheSchedule(t, name)
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
	p := loadRunPipeline(t, r)
	before := p.b.Memory().Live
	steps, res, partial := runDeepCache(t, p, requestFor(t, r, gold["init.latents"]), DeepCache{Interval: 3, Branch: 0})
	if after := p.b.Memory().Live; after != before {
		t.Errorf("live device bytes %d after the run, %d before: the DeepCache feature (or another tensor) leaked", after, before)
	}
	if len(steps) != len(schedule) {
		t.Fatalf("%d evaluations, the run has %d", len(steps), len(schedule))
	}
	for i, h := range steps {
		if want := schedule[i] == "partial"; partial[i] != want {
			t.Errorf("step %d: partial %v, the helper's schedule says %q", i, partial[i], schedule[i])
		}
		abs, rel := golden.Diff(h, gold[fmt.Sprintf("step.%02d.latents", i)])
		t.Logf("step %02d (%s) latents: max abs %.3g, relative %.3g", i, schedule[i], abs, rel)
		if rel > 1e-3 {
			t.Errorf("step %02d latents differ: max abs %.3g, relative %.3g", i, abs, rel)
		}
	}
	if res.DeepCache.Refreshes != 4 || res.DeepCache.Partials != 6 {
		t.Errorf("DeepCache stats %+v; want 4 refreshes, 6 partial steps", res.DeepCache)
	}
	golden.AssertClose(t, "final.latents", res.Latents, gold["final.latents"], 1e-3)
	// DeepCache must be distinguishable from the plain run at this
	// tolerance.
	base := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "ddim_baseline.safetensors"))
	if _, rel := golden.Diff(gold["final.latents"], base["final.latents"]); rel < 1e-2 {
		t.Errorf("golden %s is within %.3g of ddim_baseline", name, rel)
	}
}

// TestDeepCacheBranches checks the statements of README-deepcache.md about
// the tiny SD 1.5 UNet: branch 2 equals branch 1 and branch 5 equals
// branch 4 bit for bit, branches 0, 1, 3 and 4 all differ, ids past the
// deepest block equal branch 4; and interval 1 equals the plain run.
func TestDeepCacheBranches(t *testing.T) {
	const name = "deepcache_ddim_i3_b0"
	r := readRun(t, name)
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
	p := loadRunPipeline(t, r)
	req := requestFor(t, r, gold["init.latents"])

	final := map[int]*tensor.Host{}
	for _, br := range []int{0, 1, 2, 3, 4, 5, 9} {
		_, res, _ := runDeepCache(t, p, req, DeepCache{Interval: 3, Branch: br})
		final[br] = res.Latents
	}
	same := func(a, b int) bool {
		abs, _ := golden.Diff(final[a], final[b])
		return abs == 0
	}
	for _, pair := range [][2]int{{2, 1}, {5, 4}, {9, 4}} {
		if !same(pair[0], pair[1]) {
			abs, _ := golden.Diff(final[pair[0]], final[pair[1]])
			t.Errorf("branch %d differs from branch %d by %.3g; the README says they are identical", pair[0], pair[1], abs)
		}
	}
	distinct := []int{0, 1, 3, 4}
	for i, a := range distinct {
		for _, b := range distinct[i+1:] {
			if same(a, b) {
				t.Errorf("branches %d and %d give identical latents", a, b)
			}
		}
	}

	plainSteps, plain, _ := runDeepCache(t, p, req, DeepCache{})
	for _, br := range []int{0, 3} {
		steps, res, partial := runDeepCache(t, p, req, DeepCache{Interval: 1, Branch: br})
		for i := range steps {
			if partial[i] {
				t.Errorf("interval 1, branch %d: step %d was partial", br, i)
			}
			if abs, _ := golden.Diff(steps[i], plainSteps[i]); abs != 0 {
				t.Errorf("interval 1, branch %d: step %d latents differ from the plain run by %.3g", br, i, abs)
			}
		}
		if abs, _ := golden.Diff(res.Latents, plain.Latents); abs != 0 {
			t.Errorf("interval 1, branch %d: final latents differ from the plain run by %.3g", br, abs)
		}
	}
	// The plain run itself matches the baseline golden.
	base := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "ddim_baseline.safetensors"))
	golden.AssertClose(t, "plain final.latents vs ddim_baseline", plain.Latents, base["final.latents"], 1e-3)
}

// TestTGateDeepCacheSD checks T-GATE + DeepCache on the SD 1.5 pipeline
// with the loader's composition rules (tgate/SDXL_DeepCache.py): steps
// gate_step−1 and gate_step are refreshes and the uniform schedule
// restarts at gate_step; with interval 1 the run equals T-GATE alone, bit
// for bit; with the gate past the last step it equals DeepCache alone.
func TestTGateDeepCacheSD(t *testing.T) {
	const name = "deepcache_ddim_i3_b0"
	r := readRun(t, name)
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
	p := loadRunPipeline(t, r)
	req := requestFor(t, r, gold["init.latents"])
	req.Gate = gate.Config{Mode: gate.V2, GateStep: 5, SPInterval: 1, FIInterval: 1}

	_, res, partial := runDeepCache(t, p, req, DeepCache{Interval: 3, Branch: 0})
	// The loader's schedule for 10 steps, gate 5, interval 3: refresh at
	// 0 and 3, forced at 4 and 5, then 8 (= 5 + 3).
	want := []bool{false, true, true, false, false, false, true, true, false, true}
	for i := range want {
		if partial[i] != want[i] {
			t.Errorf("step %d: partial %v, want %v", i, partial[i], want[i])
		}
	}
	if res.Gate.GateStep != 5 || res.Gate.CrossReused == 0 {
		t.Errorf("gate stats %+v: want gate step 5 with reused cross-attention", res.Gate)
	}

	_, tgateOnly, _ := runDeepCache(t, p, req, DeepCache{})
	_, every, _ := runDeepCache(t, p, req, DeepCache{Interval: 1, Branch: 0})
	if abs, _ := golden.Diff(every.Latents, tgateOnly.Latents); abs != 0 {
		t.Errorf("interval 1 with T-GATE differs from T-GATE alone by %.3g", abs)
	}
	if _, rel := golden.Diff(res.Latents, tgateOnly.Latents); rel < 1e-3 {
		t.Errorf("T-GATE + DeepCache is within %.3g of T-GATE alone", rel)
	}

	late := req
	late.Gate = gate.Config{Mode: gate.V2, GateStep: 100, SPInterval: 1, FIInterval: 1}
	_, lateRes, _ := runDeepCache(t, p, late, DeepCache{Interval: 3, Branch: 0})
	golden.AssertClose(t, "gate 100 + DeepCache vs deepcache_ddim_i3_b0", lateRes.Latents, gold["final.latents"], 1e-3)
}
