package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/sched"
)

// evalLabel places one denoiser evaluation in the user's count of steps:
// its step (from 1; 0 when the scheduler's layout is not known) and, for a
// scheduler's warm-up evaluations, what they are.
type evalLabel struct {
	step int
	note string
}

// prkEvals is the number of pseudo Runge-Kutta evaluations PNDM makes
// with skip_prk_steps false: four for each of its first three steps.
const prkEvals = 12

// evalLabels places the evals evaluations of a run of steps steps with
// scheduler name. Most schedulers evaluate once per step. PNDM with
// skip_prk_steps (Stable Diffusion's) evaluates its first step twice (the
// PLMS warm-up: the second evaluation redoes step 1 with the average of
// both); without it, each of its first three steps is a four-evaluation
// pseudo Runge-Kutta (PRK) step.
func evalLabels(name sched.Name, p sched.Params, steps, evals int) []evalLabel {
	l := make([]evalLabel, evals)
	switch {
	case evals == steps:
		for i := range l {
			l[i] = evalLabel{step: i + 1}
		}
	case name == sched.PNDM && p.SkipPRKSteps && evals == steps+1:
		l[0] = evalLabel{1, "PLMS warm-up, evaluation 1/2"}
		l[1] = evalLabel{1, "PLMS warm-up, evaluation 2/2"}
		for i := 2; i < evals; i++ {
			l[i] = evalLabel{step: i}
		}
	case name == sched.PNDM && !p.SkipPRKSteps && evals == steps+prkEvals-3:
		for i := range l {
			if i < prkEvals {
				l[i] = evalLabel{i/4 + 1, fmt.Sprintf("PRK warm-up, evaluation %d/4", i%4+1)}
			} else {
				l[i] = evalLabel{step: i - prkEvals + 4}
			}
		}
	}
	return l
}

// fmtTimestep writes a timestep with at most two decimals: integers as
// they are (801), the fractional timesteps of the Euler schedulers rounded
// (946.42).
func fmtTimestep(t float64) string {
	return strconv.FormatFloat(math.Round(t*100)/100, 'f', -1, 64)
}

// progress writes generate's per-evaluation lines and keeps each
// evaluation's plan for the summary.
type progress struct {
	labels []evalLabel
	steps  int
	tWidth int // the widest timestep, so that the columns line up
	mode   gate.Mode
	plans  []gate.StepPlan
}

func newProgress(r *runPlan) *progress {
	p := &progress{labels: evalLabels(r.scheduler, r.params, r.steps, len(r.timesteps)), steps: r.steps, mode: r.gate.Mode}
	for _, t := range r.timesteps {
		p.tWidth = max(p.tWidth, len(fmtTimestep(t)))
	}
	return p
}

// line records evaluation pr and returns its progress line, such as
// "step  1/10  t=801  cfg cross=compute self=compute  0.2s  (PLMS warm-up,
// evaluation 2/2)".
func (p *progress) line(pr pipeline.Progress) string {
	p.plans = append(p.plans, pr.Plan)
	i := pr.Step - 1
	var lb evalLabel
	if i >= 0 && i < len(p.labels) {
		lb = p.labels[i]
	}
	var b strings.Builder
	if lb.step > 0 {
		w := len(strconv.Itoa(p.steps))
		fmt.Fprintf(&b, "step %*d/%d", w, lb.step, p.steps)
	} else {
		w := len(strconv.Itoa(pr.Total))
		fmt.Fprintf(&b, "evaluation %*d/%d", w, pr.Step, pr.Total)
	}
	fmt.Fprintf(&b, "  t=%-*s  %s  %.1fs", p.tWidth, fmtTimestep(pr.Timestep), describePlan(pr.Plan, p.mode), pr.Elapsed.Seconds())
	if lb.note != "" {
		fmt.Fprintf(&b, "  (%s)", lb.note)
	}
	return b.String()
}

// describePlan summarises a step's plan for the progress line.
func describePlan(p gate.StepPlan, m gate.Mode) string {
	cfg := "cfg"
	if !p.CFG {
		cfg = "no-cfg"
	}
	if m == gate.Off {
		return cfg
	}
	return fmt.Sprintf("%s cross=%s self=%s", cfg, p.Cross, p.Self)
}

// gateSummary says what T-GATE skipped in a run whose evaluations
// followed plans, with s the gate's counts. The share of the attention
// work is measured against the same run without T-GATE, each attention
// module's evaluation weighted by its batch (two rows with the guidance
// batch, one without): what reuse saves and what dropping the guidance
// batch saves after the gate.
func gateSummary(m gate.Mode, s gate.Stats, plans []gate.StepPlan) string {
	evals := len(plans)
	cross, self := s.CrossComputed+s.CrossReused, s.SelfComputed+s.SelfReused
	counts := fmt.Sprintf("cross-attention reused %d of %d times", s.CrossReused, cross)
	if m == gate.V2 {
		counts += fmt.Sprintf(", self-attention %d of %d", s.SelfReused, self)
	}
	if evals == 0 || cross%evals != 0 || self%evals != 0 {
		return fmt.Sprintf("T-GATE %s: %s", m, counts)
	}
	perCross, perSelf := cross/evals, self/evals // modules per evaluation
	rows := func(p gate.StepPlan) int {
		if p.CFG {
			return 2
		}
		return 1
	}
	full := rows(plans[0]) // the batch of every evaluation without T-GATE
	var done, reusedCross, reusedSelf, single int
	for _, p := range plans {
		if p.Cross == gate.Reuse {
			reusedCross++
		} else {
			done += rows(p) * perCross
		}
		if p.Self == gate.Reuse {
			reusedSelf++
		} else {
			done += rows(p) * perSelf
		}
		if rows(p) < full {
			single++
		}
	}
	if reusedCross*perCross != s.CrossReused || reusedSelf*perSelf != s.SelfReused {
		// A module planned to reuse computed instead (nothing was stored):
		// the plans do not say which, so no share is given.
		return fmt.Sprintf("T-GATE %s: %s", m, counts)
	}
	all := evals * full * (perCross + perSelf)
	out := fmt.Sprintf("T-GATE %s skipped %.0f%% of the attention work: %s", m, 100*float64(all-done)/float64(all), counts)
	if full == 2 {
		out += fmt.Sprintf("; %d of %d evaluations ran without the guidance batch", single, evals)
	}
	return out
}
