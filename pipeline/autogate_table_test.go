package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/macs"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// TestAutoGateTable compares the auto gate with fixed gates on
// runs/ddim_baseline's request (tiny SD 1.5, DDIM, 10 steps, 32×32,
// guidance 7.5; T-GATE v1): the final latents' distance from the ungated
// run and the UNet MACs saved (macs.Count on the same folder's configs).
// It checks that an auto run costs exactly what the fixed gate it chose
// costs and lands on the same latents, that later gates stay closer to
// the ungated run than the earliest one, and logs the table of
// docs/deepcache.md.
func TestAutoGateTable(t *testing.T) {
	const name = "ddim_baseline"
	r := readRun(t, name)
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
	p := loadRunPipeline(t, r)
	req := requestFor(t, r, gold["init.latents"])
	req.Decoder = DecodeNone
	model, err := macs.Load(golden.Dir(t, "golden", strings.TrimPrefix(r.PipelineFolder, "shared/")))
	if err != nil {
		t.Fatal(err)
	}
	countMACs := func(g gate.Config) int64 {
		s := macs.Spec{Steps: 10, Width: 32, Height: 32, Guidance: true, Gate: g, Scheduler: sched.DDIM,
			WeightDType: tensor.F32, ActDType: tensor.F32, Resident: true}
		if g.Mode == gate.Off {
			s.Gate.GateStep = 10
		}
		rep, err := macs.Count(model, s)
		if err != nil {
			t.Fatal(err)
		}
		return rep.CalflopsMACs()
	}
	gen := func(g gate.Config) *Result {
		q := req
		q.Gate = g
		res, err := p.Generate(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	base := gen(gate.Config{})
	baseMACs := countMACs(gate.Config{})
	var lines []string
	row := func(label string, gs int, res *Result) (rel float64) {
		_, rel = golden.Diff(res.Latents, base.Latents)
		m := countMACs(gate.Config{Mode: gate.V1, GateStep: gs})
		lines = append(lines, fmt.Sprintf("| %s | %d | %.3g | %.1f%% |", label, gs, rel, 100*(1-float64(m)/float64(baseMACs))))
		return rel
	}
	fixed := map[int]*Result{}
	var first, last float64
	for gs := 2; gs <= 9; gs++ {
		fixed[gs] = gen(gate.Config{Mode: gate.V1, GateStep: gs})
		rel := row(fmt.Sprintf("fixed gate %d", gs), gs, fixed[gs])
		if gs == 2 {
			first = rel
		}
		last = rel
	}
	if last >= first {
		t.Errorf("gate 9 is %.3g from the ungated run, gate 2 %.3g: a later gate should stay closer", last, first)
	}
	for _, th := range []float64{0.1, 0.05, 0.02, 0.01} {
		res := gen(gate.Config{Mode: gate.V1, Auto: gate.Auto{Threshold: th}})
		gs := res.Gate.GateStep
		if gs < 3 || gs > 9 {
			t.Fatalf("threshold %g: gate step %d outside the table", th, gs)
		}
		row(fmt.Sprintf("auto, threshold %g", th), gs, res)
		if abs, _ := golden.Diff(res.Latents, fixed[gs].Latents); abs != 0 {
			t.Errorf("threshold %g: auto run differs from the fixed gate %d by %.3g", th, gs, abs)
		}
	}
	t.Logf("ungated: %d MACs\n| run | gate step | final latents vs ungated (relative max abs) | MACs saved |\n|---|---|---|---|\n%s",
		baseMACs, strings.Join(lines, "\n"))
}
