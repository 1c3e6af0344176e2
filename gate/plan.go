// Package gate implements T-GATE (Zhang et al., "Cross-Attention Makes
// Inference Cumbersome in Text-to-Image Diffusion Models", arXiv 2404.02747,
// and its v2 with self-attention caching): a per-step plan that says, for
// every denoising step, whether classifier-free guidance runs and whether
// each attention module computes, caches or reuses its output, and an
// attention cache keyed by module that the denoiser consults through
// nn.AttentionHook.
//
// The schedule reproduces the original implementation
// (HaozheLiu-ST/T-GATE, tgate/tgate_utils.py::tgate_scheduler driven by
// the loop of tgate/SD.py):
//
//   - cur_step = i − num_warmup_steps, with num_warmup_steps =
//     len(timesteps) − num_inference_steps·order. The flags are
//     re-registered before the UNet call of step i only when
//     i == len(timesteps)−1 or (i+1 > num_warmup_steps and
//     (i+1) % order == 0); before the first update every flag is off.
//   - cur_step < gate_step−1: cross-attention is computed. Self-attention
//     is computed while cur_step < warm_up, cached at cur_step == warm_up,
//     and afterwards cached when cur_step % sp_interval == 0, reused
//     otherwise.
//   - cur_step == gate_step−1: cross- and self-attention are computed and
//     cached as the mean of the unconditional and conditional halves,
//     (uncond + cond)/2 (keep_shape False); the full batch is returned.
//   - cur_step > gate_step−1: cross-attention is reused; self-attention is
//     cached when cur_step % fi_interval == 0, reused otherwise.
//   - Classifier-free guidance (a batch of 2) runs while
//     i − num_warmup_steps < gate_step; afterwards the UNet runs with
//     batch 1 and its output is used directly.
//
// "Reuse" returns the module's stored output without computing anything;
// when nothing is stored yet the module is computed and nothing is stored.
package gate

import (
	"fmt"
	"strings"
)

// Mode selects how much of T-GATE runs.
type Mode int

const (
	// Off computes every attention module at every step.
	Off Mode = iota
	// V1 gates cross-attention and drops classifier-free guidance after
	// the gate; self-attention is always computed.
	V1
	// V2 is the original's full schedule: V1 plus self-attention caching
	// every sp_interval steps before the gate and every fi_interval steps
	// after it.
	V2
)

var modeNames = [...]string{"off", "v1", "v2"}

// ModeNames lists the accepted spellings of a Mode.
func ModeNames() []string { return append([]string(nil), modeNames[:]...) }

// String returns "off", "v1" or "v2".
func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode maps "off", "v1" or "v2" to a Mode.
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if strings.EqualFold(s, n) {
			return Mode(i), nil
		}
	}
	return Off, fmt.Errorf("unknown T-GATE mode %q (valid: %s)", s, strings.Join(modeNames[:], ", "))
}

// Config holds T-GATE's parameters (the keyword arguments of the original
// `pipe.tgate(...)`).
type Config struct {
	Mode Mode
	// GateStep is the number of denoising steps that compute
	// cross-attention; the cache is filled at step GateStep−1.
	GateStep int
	// SPInterval is the self-attention caching interval before the gate
	// (semantics-planning phase).
	SPInterval int
	// FIInterval is the self-attention caching interval after the gate
	// (fidelity-improving phase).
	FIInterval int
	// WarmUp is the number of initial steps whose self-attention is never
	// cached or reused.
	WarmUp int
	// Auto, when enabled, chooses the gate step from the measured
	// convergence of cross-attention (GateStep is then ignored).
	Auto Auto
}

// SDDefaults returns the paper's settings for Stable Diffusion 1.x/2.x
// (25 steps): gate 10, sp_interval 5, fi_interval 1, warm_up 2 (the
// defaults of tgate/SD.py).
func SDDefaults() Config {
	return Config{Mode: V2, GateStep: 10, SPInterval: 5, FIInterval: 1, WarmUp: 2}
}

// LCMDefaults returns the settings T-GATE's README and main.py use for
// latent consistency models (4 steps): gate_step 1, sp_interval 1,
// fi_interval 1, warm_up 0. The README allows gate_step 1 or 2.
func LCMDefaults() Config {
	return Config{Mode: V2, GateStep: 1, SPInterval: 1, FIInterval: 1, WarmUp: 0}
}

// Validate reports a parameter the schedule cannot use. Off accepts
// anything.
func (c Config) Validate() error {
	if c.Mode == Off {
		return nil
	}
	if c.Mode != V1 && c.Mode != V2 {
		return fmt.Errorf("unknown T-GATE mode %d (valid: %s)", int(c.Mode), strings.Join(modeNames[:], ", "))
	}
	if err := c.Auto.Validate(); err != nil {
		return err
	}
	if c.GateStep < 1 && !c.Auto.Enabled() {
		return fmt.Errorf("T-GATE gate step %d: must be at least 1 (the cross-attention cache is filled at step gate_step-1)", c.GateStep)
	}
	if c.Mode == V2 {
		if c.SPInterval < 1 {
			return fmt.Errorf("T-GATE sp_interval %d: must be at least 1", c.SPInterval)
		}
		if c.FIInterval < 1 {
			return fmt.Errorf("T-GATE fi_interval %d: must be at least 1", c.FIInterval)
		}
		if c.WarmUp < 0 {
			return fmt.Errorf("T-GATE warm_up %d: must not be negative", c.WarmUp)
		}
	}
	return nil
}

// Action is what an attention module does at one step.
type Action int

const (
	// Compute runs the module and stores nothing.
	Compute Action = iota
	// Cache runs the module and stores its output.
	Cache
	// CacheMean runs the module, returns its full output and stores the
	// mean of its unconditional and conditional batch halves.
	CacheMean
	// Reuse returns the stored output without running the module (or runs
	// it, storing nothing, when nothing is stored).
	Reuse
)

var actionNames = [...]string{"compute", "cache", "cache-mean", "reuse"}

func (a Action) String() string {
	if a >= 0 && int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// StepPlan is what one denoiser evaluation does.
type StepPlan struct {
	// CFG is true when the UNet runs on [uncond; cond] and the outputs are
	// combined by the guidance formula; false means batch 1 and the UNet
	// output is used directly.
	CFG bool
	// Cross and Self are the actions of the cross- and self-attention
	// modules.
	Cross, Self Action
	// CurStep is the step number the schedule used: i − num_warmup_steps.
	CurStep int
}

// Loop describes the denoising loop the plan is made for.
type Loop struct {
	// Timesteps is the number of denoiser evaluations (len(timesteps)).
	Timesteps int
	// Steps is num_inference_steps.
	Steps int
	// Order is the scheduler's order (1 for every scheduler here).
	Order int
	// CFG is true when the pipeline runs classifier-free guidance at all
	// (guidance > 1 and no guidance embedding).
	CFG bool
}

// WarmupSteps returns num_warmup_steps = len(timesteps) − steps·order, the
// evaluations before the scheduler's regular rhythm (1 for PNDM's PLMS
// warm-up, 0 otherwise).
func (l Loop) WarmupSteps() int {
	order := l.Order
	if order < 1 {
		order = 1
	}
	return l.Timesteps - l.Steps*order
}

// flags is one result of tgate_scheduler.
type flags struct {
	caCache, caReuse, saCache, saReuse, keepShape bool
}

// schedule is tgate_utils.py::tgate_scheduler.
func schedule(cur, gateStep, sp, fi, warmUp int) flags {
	switch {
	case cur < gateStep-1:
		f := flags{keepShape: true}
		switch {
		case cur < warmUp:
		case cur == warmUp:
			f.saCache = true
		case cur%sp == 0:
			f.saCache = true
		default:
			f.saReuse = true
		}
		return f
	case cur == gateStep-1:
		return flags{caCache: true, saCache: true}
	default:
		f := flags{caReuse: true, keepShape: true}
		if cur%fi == 0 {
			f.saCache = true
		} else {
			f.saReuse = true
		}
		return f
	}
}

// Plans returns the plan of every denoiser evaluation of loop under cfg.
func Plans(cfg Config, loop Loop) ([]StepPlan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if loop.Timesteps < 0 || loop.Steps < 0 {
		return nil, fmt.Errorf("T-GATE: negative step count (%d evaluations, %d steps)", loop.Timesteps, loop.Steps)
	}
	order := loop.Order
	if order < 1 {
		order = 1
	}
	nw := loop.WarmupSteps()
	if nw < 0 {
		return nil, fmt.Errorf("T-GATE: %d evaluations for %d steps of order %d", loop.Timesteps, loop.Steps, order)
	}
	sp, fi, warmUp := cfg.SPInterval, cfg.FIInterval, cfg.WarmUp
	if cfg.Mode == V1 { // self-attention flags are unused
		sp, fi, warmUp = 1, 1, 0
	}
	plans := make([]StepPlan, loop.Timesteps)
	cur := flags{keepShape: true} // registered before the loop: all off
	for i := range plans {
		p := StepPlan{CFG: loop.CFG, CurStep: i - nw}
		if cfg.Mode == Off {
			plans[i] = p
			continue
		}
		if i == loop.Timesteps-1 || (i+1 > nw && (i+1)%order == 0) {
			cur = schedule(i-nw, cfg.GateStep, sp, fi, warmUp)
		}
		p.CFG = loop.CFG && i-nw < cfg.GateStep
		p.Cross = action(cur.caCache, cur.caReuse, cur.keepShape, loop.CFG && p.CFG)
		if cfg.Mode == V2 {
			p.Self = action(cur.saCache, cur.saReuse, cur.keepShape, loop.CFG && p.CFG)
		}
		plans[i] = p
	}
	return plans, nil
}

// action turns cache/reuse flags into an Action. Without a guidance batch
// there are no halves to average, so keep_shape False stores the output
// itself, as the original's LCM path does (tgate/SDXL.py forces
// keep_shape True when lcm is set).
func action(cache, reuse, keepShape, halves bool) Action {
	switch {
	case cache && !keepShape && halves:
		return CacheMean
	case cache:
		return Cache
	case reuse:
		return Reuse
	}
	return Compute
}
