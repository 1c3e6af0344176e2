package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/sched"
)

// runPlan is what `tgate generate` settles from the model folder's
// model_index.json and scheduler config before it reads any weights.
type runPlan struct {
	kind      pipeline.Kind
	steps     int        // inference steps, the model's default resolved
	scheduler sched.Name // the scheduler that runs
	params    sched.Params
	timesteps []float64 // the timestep of every denoiser evaluation
	cfg       bool      // whether the guidance batch is expected
	gate      gate.Config
	plans     []gate.StepPlan // T-GATE's plan of every evaluation
}

// runChoices are the command-line choices planRun resolves.
type runChoices struct {
	steps     int        // 0: the model's default
	scheduler sched.Name // "": the folder's
	spacing   string
	guidance  optFloat
	mode      gate.Mode
	// gateFlags are --gate-step, --sp-interval, --fi-interval and
	// --warm-up; a negative value keeps T-GATE's default for the model.
	gateStep, spInterval, fiInterval, warmUp int
	// auto is the auto gate (--gate-step auto): the plan made before the
	// run then assumes no gate, which the run decides.
	auto gate.Auto
	// edit is set with --init-image (inpaint with --mask): strength (0:
	// the pipeline's default) then skips the schedule's first steps.
	edit, inpaint bool
	strength      float64
}

// choiceError marks an error in what the user asked for (exit status 2), as
// opposed to a problem with the model folder (status 1).
type choiceError struct{ error }

// planRun reads the pipeline class and the scheduler config of the model
// folder f and resolves c against them: the step count (checked against
// what the scheduler can place), the scheduler's timesteps and T-GATE's
// configuration and plan.
func planRun(f hub.Folder, c runChoices) (*runPlan, error) {
	dir := f.String()
	mi, err := hub.ReadModelIndexIn(f)
	if err != nil {
		return nil, err
	}
	kind, err := pipeline.KindOf(mi.ClassName)
	if err != nil {
		return nil, fmt.Errorf("%s/model_index.json: %w", dir, err)
	}
	data, err := f.ReadFile("scheduler/scheduler_config.json")
	if err != nil {
		return nil, fmt.Errorf("%s: reading scheduler/scheduler_config.json: %w", dir, err)
	}
	cfg, err := sched.ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s/scheduler/scheduler_config.json: %w", dir, err)
	}
	pixart := kind == pipeline.PixArtAlpha || kind == pipeline.PixArtSigma
	r := &runPlan{kind: kind, steps: c.steps, scheduler: c.scheduler, gate: gate.SDDefaults()}
	switch {
	case kind == pipeline.LatentConsistency:
		r.gate = gate.LCMDefaults()
	case pixart:
		r.gate = pipeline.PixArtGateDefaults()
	}
	if r.steps == 0 {
		switch {
		case kind == pipeline.LatentConsistency:
			r.steps = 4
		case pixart:
			r.steps = 20
		default:
			r.steps = 50
		}
	}
	if r.scheduler == "" {
		if r.scheduler, err = sched.NameFromConfig(cfg); err != nil {
			return nil, err
		}
	}
	st, err := sched.New(r.scheduler, cfg, sched.Options{TimestepSpacing: c.spacing})
	if err != nil {
		return nil, err
	}
	if err := st.SetTimesteps(r.steps); err != nil {
		return nil, choiceError{stepsProblem(st, r.steps, err)}
	}
	r.params, r.timesteps = st.Params(), st.Timesteps()
	if c.edit {
		// Image to image runs the schedule from the step its strength
		// keeps; T-GATE counts from there (docs/editing.md).
		strength := c.strength
		if strength == 0 {
			strength = pipeline.DefaultStrengthFor(kind, c.inpaint)
		}
		skip := pipeline.StrengthStart(r.steps, strength)
		if skip >= r.steps {
			return nil, choiceError{fmt.Errorf("--strength %g of %d steps runs no step: raise --strength or --steps", strength, r.steps)}
		}
		r.timesteps = r.timesteps[skip*st.Order():]
		r.steps -= skip
	}

	guidance := 7.5 // the pipelines' defaults: 5 for SD-XL, 4.5 for PixArt, all above 1
	if c.guidance.set {
		guidance = c.guidance.v
	}
	r.cfg = kind != pipeline.LatentConsistency && guidance > 1
	if r.gate.Auto = c.auto; c.auto.Enabled() {
		// The plan made before the run assumes the gate is not passed;
		// the run decides where it closes.
		r.gate.GateStep = len(r.timesteps) + 1
	}
	r.gate.Mode = c.mode
	for _, o := range []struct {
		v   int
		dst *int
	}{{c.gateStep, &r.gate.GateStep}, {c.spInterval, &r.gate.SPInterval}, {c.fiInterval, &r.gate.FIInterval}, {c.warmUp, &r.gate.WarmUp}} {
		if o.v >= 0 {
			*o.dst = o.v
		}
	}
	if err := r.gate.Validate(); err != nil {
		return nil, choiceError{err}
	}
	loop := gate.Loop{Timesteps: len(r.timesteps), Steps: r.steps, Order: st.Order(), CFG: r.cfg}
	if r.plans, err = gate.Plans(r.gate, loop); err != nil {
		return nil, err
	}
	return r, nil
}

// stepsProblem explains in the user's terms why st cannot place steps
// inference steps: the largest step count below it that the scheduler
// does place, or, when there is none, the scheduler's own reason.
func stepsProblem(st sched.Scheduler, steps int, err error) error {
	p := st.Params()
	for n := min(steps-1, p.NumTrainTimesteps); n >= 1; n-- {
		if st.SetTimesteps(n) == nil {
			return fmt.Errorf("--steps %d is more than the %s scheduler of this model can place: use at most %d", steps, st.Name(), n)
		}
	}
	return fmt.Errorf("--steps %d: %s", steps, strings.TrimPrefix(err.Error(), "sched: "))
}

// checkWritable reports, without changing anything, why the file path
// given to --flag could not be written: its folder is missing or not
// writable, or the path is a folder or a read-only file.
func checkWritable(flag, path string) error {
	wrap := func(err error) error { return fmt.Errorf("cannot write --%s %s: %w", flag, path, err) }
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return wrap(errors.New("it is a folder"))
	case err == nil:
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return wrap(errors.Unwrap(err))
		}
		return f.Close()
	}
	dir := filepath.Dir(path)
	dst, derr := os.Stat(dir)
	switch {
	case errors.Is(derr, os.ErrNotExist):
		return wrap(fmt.Errorf("folder %s does not exist", dir))
	case derr != nil:
		return wrap(derr)
	case !dst.IsDir():
		return wrap(fmt.Errorf("%s is not a folder", dir))
	case !errors.Is(err, os.ErrNotExist):
		return wrap(err)
	}
	f, err := os.CreateTemp(dir, ".tgate-write-check-*")
	if err != nil {
		return wrap(fmt.Errorf("folder %s is not writable", dir))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
