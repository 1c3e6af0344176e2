package main

import (
	"fmt"
	"strings"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/pipeline"
)

// warnHelp is what generate -h says about the warnings below.
const warnHelp = `Settings that would do nothing still run, each with a WARNING line on stderr: T-GATE
flags with --tgate off, self-attention flags with v1, a gate step not below the step count
(the gate is never passed), v2 settings under which self-attention is never reused (the image
is then v1's), an empty prompt (the model draws with no text to follow), a guidance scale below
0 (Stable Diffusion then runs without guidance, as at 1), --guidance-rescale without guidance
and --taesd without --decoder taesd.`

// generateFlags are the command-line values settingWarnings looks at.
type generateFlags struct {
	set      map[string]bool // the flags given on the command line
	prompt   string
	guidance optFloat
	rescale  float64
	decoder  string
}

// settingWarnings lists the settings of a run that would silently do
// nothing, one warning each (see warnHelp).
func settingWarnings(r *runPlan, g generateFlags) []string {
	var w []string
	gc := r.gate
	switch gc.Mode {
	case gate.Off:
		for _, n := range []string{"gate-step", "sp-interval", "fi-interval", "warm-up"} {
			if g.set[n] {
				w = append(w, fmt.Sprintf("--%s is ignored: T-GATE is off (add --tgate v1 or v2)", n))
			}
		}
	case gate.V1:
		for _, n := range []string{"sp-interval", "fi-interval", "warm-up"} {
			if g.set[n] {
				w = append(w, fmt.Sprintf("--%s is ignored: T-GATE v1 never caches self-attention (use --tgate v2)", n))
			}
		}
	}
	if gc.Mode != gate.Off && !gc.Auto.Enabled() && !plansDo(r.plans, func(p gate.StepPlan) bool { return p.Cross == gate.Reuse }) {
		s := fmt.Sprintf("T-GATE's gate step %d is not below the %d steps: the gate is never passed, so cross-attention is never reused", gc.GateStep, r.steps)
		if r.cfg {
			s += " and the guidance batch runs at every step"
		}
		w = append(w, s+fmt.Sprintf(" (a --gate-step below %d gates)", r.steps))
	}
	if gc.Mode == gate.V2 && !plansDo(r.plans, func(p gate.StepPlan) bool { return p.Self == gate.Reuse }) {
		w = append(w, "T-GATE v2 never reuses self-attention with these settings: "+selfReuseProblem(gc, r.steps)+
			"; the image is the same as with --tgate v1")
	}
	if strings.TrimSpace(g.prompt) == "" {
		w = append(w, "the prompt is empty: the model draws an image with no text to follow (give --prompt TEXT)")
	}
	if g.guidance.set && g.guidance.v < 0 {
		if r.kind == pipeline.LatentConsistency {
			w = append(w, fmt.Sprintf("--guidance %g is below 0: the LCM's guidance embedding gets a negative strength, w = g − 1 = %g", g.guidance.v, g.guidance.v-1))
		} else {
			w = append(w, fmt.Sprintf("--guidance %g is below 0: Stable Diffusion guides only above 1, so this runs without guidance, as --guidance 1 does", g.guidance.v))
		}
	}
	if g.rescale != 0 && !r.cfg {
		w = append(w, "--guidance-rescale is ignored: it rescales classifier-free guidance, which this run does not use")
	}
	if g.set["taesd"] && g.decoder != "taesd" {
		w = append(w, "--taesd is ignored: it is read only with --decoder taesd")
	}
	return w
}

// plansDo reports whether any plan satisfies f.
func plansDo(plans []gate.StepPlan, f func(gate.StepPlan) bool) bool {
	for _, p := range plans {
		if f(p) {
			return true
		}
	}
	return false
}

// selfReuseProblem says, for the phase before the gate and the one after
// it, why T-GATE v2's schedule never reuses self-attention over steps
// steps. Before the gate, a step after the warm-up reuses self-attention
// unless --sp-interval divides its 0-based number; after the gate, unless
// --fi-interval does. Steps are named from 1, as the progress lines
// count them.
func selfReuseProblem(c gate.Config, steps int) string {
	var before string
	lo, hi := c.WarmUp+1, min(c.GateStep-2, steps-1) // 0-based steps that may reuse
	switch {
	case lo > hi:
		before = fmt.Sprintf("no step lies between the warm-up (--warm-up %d) and the gate (--gate-step %d)", c.WarmUp, c.GateStep)
	case c.SPInterval == 1:
		before = "--sp-interval 1 caches it at every step"
	default: // a single step, as two in a row cannot both be multiples
		before = fmt.Sprintf("the only step between the warm-up and the gate, step %d, is one --sp-interval %d caches at", lo+1, c.SPInterval)
	}
	var after string
	switch {
	case c.GateStep >= steps:
		after = "there is no step after the gate"
	case c.FIInterval == 1:
		after = "--fi-interval 1 caches it at every step (2 or more reuses it in between)"
	default: // a single step, as above
		after = fmt.Sprintf("the only step, step %d, is one --fi-interval %d caches at", c.GateStep+1, c.FIInterval)
	}
	return "before the gate, " + before + "; after it, " + after
}
