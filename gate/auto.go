package gate

import (
	"fmt"
	"math"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// Auto closes the gate by itself once cross-attention has converged,
// instead of at a fixed GateStep.
//
// After every denoiser evaluation k before the gate, the gate measures
// the relative change of each cross-attention module's output between
// evaluations k−1 and k,
//
//	r_k = mean over modules of ‖A_k − A_{k−1}‖₂ / ‖A_{k−1}‖₂
//
// (float64 on the host, over every element of the module's output,
// guidance batch included; modules not computed at both evaluations, such
// as those DeepCache skips, are left out). Before evaluation i, at
// schedule step c = i − num_warmup_steps, the gate step becomes c+1 (so
// step c fills the cache exactly as a fixed gate_step c+1 does) when
// c+1 ≥ MinStep and the latest measurement r_{i−1} is below Threshold, or
// when c+1 reaches MaxStep. The plan is therefore a pure function of the
// measurements: a run whose auto gate closed at G is step for step the
// fixed-gate run with GateStep G. The earliest possible gate step is 3
// (r needs two evaluations, the decision one more).
type Auto struct {
	// Threshold on the mean relative change; 0 turns the auto gate off.
	Threshold float64
	// MinStep and MaxStep are the floor and ceiling of the gate step
	// (MaxStep 0 means the last step: the gate may then never close).
	MinStep, MaxStep int
}

// DefaultAutoThreshold is the threshold the CLI and the JavaScript API use
// when none is given: on the tiny SD 1.5 reference pipeline it gates where
// a fixed gate 5 of 10 does (docs/deepcache.md).
const DefaultAutoThreshold = 0.05

// Enabled reports whether the auto gate decides the gate step.
func (a Auto) Enabled() bool { return a.Threshold > 0 }

// Validate reports settings the auto gate cannot use.
func (a Auto) Validate() error {
	if !a.Enabled() {
		if a.Threshold < 0 || math.IsNaN(a.Threshold) {
			return fmt.Errorf("T-GATE auto gate threshold %g must be positive (0 turns it off)", a.Threshold)
		}
		return nil
	}
	if a.MinStep < 0 || a.MaxStep < 0 {
		return fmt.Errorf("T-GATE auto gate: step bounds [%d, %d] must not be negative", a.MinStep, a.MaxStep)
	}
	if a.MaxStep > 0 && a.MinStep > a.MaxStep {
		return fmt.Errorf("T-GATE auto gate: floor %d is above the ceiling %d", a.MinStep, a.MaxStep)
	}
	return nil
}

// ceiling is the gate step used until the gate decides: MaxStep, or past
// the last step when MaxStep is 0.
func (a Auto) ceiling(loop Loop) int {
	if a.MaxStep > 0 {
		return a.MaxStep
	}
	return loop.Timesteps - loop.WarmupSteps() + 1
}

// autoState is the auto gate's measurements and decision.
type autoState struct {
	cfg Auto
	// gateStep is the decided gate step, 0 while undecided.
	gateStep int
	// prev holds each cross-attention module's last output on the host,
	// with the evaluation that produced it.
	prev     map[string][]float32
	prevStep map[string]int
	// sum and n accumulate the current evaluation's ratios.
	sum float64
	n   int
	// changes[k] is r_k (NaN when nothing was measured).
	changes []float64
}

func newAutoState(cfg Auto) *autoState {
	return &autoState{cfg: cfg, prev: map[string][]float32{}, prevStep: map[string]int{}}
}

// autoBegin closes the measurement of evaluation i−1 and, before
// evaluation i, decides whether step i fills the cache (gate step
// i − num_warmup_steps + 1); on a decision the plans are rebuilt.
func (g *Gate) autoBegin(i int) {
	a := g.auto
	if a == nil || a.gateStep > 0 {
		return
	}
	for len(a.changes) < i {
		r := math.NaN()
		if len(a.changes) == i-1 && a.n > 0 {
			r = a.sum / float64(a.n)
		}
		a.changes = append(a.changes, r)
	}
	a.sum, a.n = 0, 0
	c := i - g.loop.WarmupSteps()
	gs := c + 1
	last := math.NaN()
	if i > 0 {
		last = a.changes[i-1]
	}
	switch {
	case gs >= a.cfg.ceiling(g.loop):
		a.gateStep = a.cfg.ceiling(g.loop)
	case gs >= a.cfg.MinStep && last < a.cfg.Threshold:
		a.gateStep = gs
	default:
		return
	}
	// The measurements stop here: free the host copies.
	a.prev, a.prevStep = nil, nil
	cfg := g.cfg
	cfg.GateStep = a.gateStep
	plans, err := Plans(cfg, g.loop)
	if err != nil {
		g.fail(err)
		return
	}
	g.plans = plans
}

// autoObserve measures a computed cross-attention output of the current
// evaluation against the module's output at the previous one.
func (g *Gate) autoObserve(key string, kind nn.AttnKind, out backend.Tensor) {
	a := g.auto
	if a == nil || a.gateStep > 0 || kind != nn.CrossAttn {
		return
	}
	h, err := g.b.ReadBack(out)
	if err != nil {
		g.fail(fmt.Errorf("T-GATE auto gate: reading %s: %w", key, err))
		return
	}
	if p, ok := a.prev[key]; ok && a.prevStep[key] == g.step-1 && len(p) == len(h.Data) {
		a.sum += relativeChange(h.Data, p)
		a.n++
	}
	a.prev[key] = h.Data
	a.prevStep[key] = g.step
}

// relativeChange is ‖cur − prev‖₂ / ‖prev‖₂ in float64 (+Inf when prev
// is zero and cur is not, 0 when both are).
func relativeChange(cur, prev []float32) float64 {
	var d, p float64
	for i := range cur {
		x, y := float64(cur[i]), float64(prev[i])
		d += (x - y) * (x - y)
		p += y * y
	}
	if p == 0 {
		if d == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return math.Sqrt(d / p)
}

// GateStep returns the gate step in force: the configured one, the auto
// gate's decision, or 0 while the auto gate is undecided (and for Off).
func (g *Gate) GateStep() int {
	switch {
	case g.cfg.Mode == Off:
		return 0
	case g.auto != nil:
		return g.auto.gateStep
	}
	return g.cfg.GateStep
}

// Changes returns the auto gate's measurements r_k, one per evaluation
// measured so far (NaN where nothing was measured); nil without the auto
// gate.
func (g *Gate) Changes() []float64 {
	if g.auto == nil {
		return nil
	}
	return append([]float64(nil), g.auto.changes...)
}
