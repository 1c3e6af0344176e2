package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/macs"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

func init() {
	register("macs", "count MACs, parameters and peak memory of a generation with and without T-GATE (configs only)", macsCmd)
}

var macsHelp = help{
	name:  "macs",
	usage: "--model DIR [flags]",
	about: `Counts one generation without T-GATE and one with it on a shape-only backend, from the
model folder's config files alone (no weights are read): MACs per phase, the UNet parameters each
phase reads, peak memory per phase and what the gate releases.`,
	groups: []flagGroup{
		{"generation", []string{"model", "steps", "width", "height", "scheduler", "guidance"}},
		{"T-GATE", []string{"tgate", "gate-step", "sp-interval", "fi-interval", "warm-up"}},
		{"DeepCache", []string{"deepcache-interval", "deepcache-branch"}},
		{"dtypes", []string{"weights", "unet-8bit", "activations"}},
	},
	values: map[string]string{"model": "DIR", "scheduler": "NAME", "tgate": "MODE", "weights": "DTYPE", "activations": "DTYPE"},
}

// macsDTypes are the accepted spellings of --weights and --activations.
var macsDTypes = map[string]tensor.DType{"f32": tensor.F32, "f16": tensor.F16, "bf16": tensor.BF16}

// macsCmd runs `tgate macs --model DIR [flags]`: it builds the model
// folder's text encoder, UNet and VAE decoder from their config.json files
// on the counting backend, runs one generation without T-GATE and one
// with it, and prints MACs per phase, the UNet parameters each phase
// reads, peak memory per phase and what the gate releases. Errors print
// one line to stderr and return 1; bad flags return 2.
func macsCmd(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("macs", flag.ContinueOnError)
	model := fl.String("model", "", "diffusers model folder; only model_index.json and the config files are read")
	steps := fl.Int("steps", 0, "denoising steps (default: 25 for Stable Diffusion, as in the T-GATE paper; 4 for LCM)")
	width := fl.Int("width", 0, "image width in pixels (default: the model's)")
	height := fl.Int("height", 0, "image height in pixels (default: the model's)")
	schedName := fl.String("scheduler", string(sched.DPMSolver), "scheduler: "+joinSchedNames(sched.Names())+", or \"folder\" for the model folder's (the paper used dpm++2m)")
	guidance := fl.Bool("guidance", true, "classifier-free guidance (a batch of 2) before the gate; ignored for LCM")
	mode := fl.String("tgate", "v2", "T-GATE mode to compare with the plain run: "+strings.Join(gate.ModeNames(), ", "))
	gateStep := fl.Int("gate-step", -1, "T-GATE gate step (default: 10 for Stable Diffusion, 1 for LCM)")
	spInterval := fl.Int("sp-interval", -1, "self-attention caching interval before the gate, v2 (default: 5, LCM 1)")
	fiInterval := fl.Int("fi-interval", -1, "self-attention caching interval after the gate, v2 (default: 1)")
	warmUp := fl.Int("warm-up", -1, "warm-up steps without self-attention caching, v2 (default: 2, LCM 0)")
	dcInterval := fl.Int("deepcache-interval", 0, "also count DeepCache with this cache_interval (0: off); prints the DeepCache rows")
	dcBranch := fl.Int("deepcache-branch", 0, "DeepCache cache_branch_id (0: the shallowest branch)")
	weights := fl.String("weights", "f16", "weight dtype: f16, bf16, f32")
	acts := fl.String("activations", "f32", "activation dtype: f32, f16")
	unet8 := fl.Bool("unet-8bit", false, "count the UNet's Linear and convolution weights as 8-bit (generate's --unet-8bit)")
	if code, ok := parseFlags(fl, macsHelp, args, stdout, stderr); !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "tgate macs: %v\n", err)
		return 1
	}
	if fl.NArg() != 0 {
		return usageError(stderr, "macs", fmt.Errorf("unexpected argument %q", fl.Arg(0)))
	}
	if *model == "" {
		return usageError(stderr, "macs", errors.New("--model is required"))
	}
	m, err := gate.ParseMode(*mode)
	if err != nil {
		return usageError(stderr, "macs", fmt.Errorf("unknown --tgate value %q (valid: %s)", *mode, strings.Join(gate.ModeNames(), ", ")))
	}
	wdt, ok := macsDTypes[strings.ToLower(*weights)]
	if !ok {
		return usageError(stderr, "macs", fmt.Errorf("unknown --weights value %q (valid: f16, bf16, f32)", *weights))
	}
	adt, ok := macsDTypes[strings.ToLower(*acts)]
	if !ok || adt == tensor.BF16 {
		return usageError(stderr, "macs", fmt.Errorf("unknown --activations value %q (valid: f32, f16)", *acts))
	}
	var schedule sched.Name // "" is the model folder's
	if *schedName != "folder" {
		if schedule, err = sched.ParseName(*schedName); err != nil {
			return usageError(stderr, "macs", fmt.Errorf("unknown --scheduler value %q (valid: %s, folder)", *schedName, joinSchedNames(sched.Names())))
		}
	}
	if pm, err := macs.LoadPixArt(*model); err != nil {
		return fail(err)
	} else if pm != nil {
		ps := macs.PixArtDefaultSpec()
		ps.Width, ps.Height, ps.Guidance, ps.WeightDType, ps.Scheduler = *width, *height, *guidance, wdt, pm.Scheduler
		ps.VAEScaleFactor = pm.VAEScaleFactor()
		if *steps != 0 {
			ps.Steps = *steps
		}
		for _, o := range []struct {
			v   int
			dst *int
		}{{*gateStep, &ps.Gate.GateStep}, {*spInterval, &ps.Gate.SPInterval}, {*fiInterval, &ps.Gate.FIInterval}, {*warmUp, &ps.Gate.WarmUp}} {
			if o.v != -1 {
				*o.dst = o.v
			}
		}
		ps.Gate.Mode = m
		if err := ps.Gate.Validate(); err != nil {
			return usageError(stderr, "macs", err)
		}
		if err := writePixArtMacs(stdout, pm, ps); err != nil {
			return fail(err)
		}
		return 0
	}
	mod, err := macs.Load(*model)
	if err != nil {
		return fail(err)
	}

	spec := macs.DefaultSpec()
	spec.Width, spec.Height, spec.Guidance = *width, *height, *guidance
	spec.WeightDType, spec.ActDType, spec.UNet8Bit = wdt, adt, *unet8
	lcm := mod.Class == macs.ClassLCM
	if lcm {
		spec.Gate, spec.Steps, spec.Guidance = gate.LCMDefaults(), 4, false
	}
	if *steps != 0 {
		spec.Steps = *steps
	}
	spec.Scheduler = schedule
	for _, o := range []struct {
		v   int
		dst *int
	}{{*gateStep, &spec.Gate.GateStep}, {*spInterval, &spec.Gate.SPInterval}, {*fiInterval, &spec.Gate.FIInterval}, {*warmUp, &spec.Gate.WarmUp}} {
		if o.v != -1 {
			*o.dst = o.v
		}
	}
	spec.Gate.Mode = m
	if err := spec.Gate.Validate(); err != nil {
		return usageError(stderr, "macs", err)
	}

	// Four runs: without and with T-GATE, each with every model resident
	// (as pipeline.Load binds them) and with one model at a time.
	type pair struct{ resident, staged *macs.Report }
	count := func(mode gate.Mode) (pair, error) {
		s := spec
		s.Gate.Mode = mode
		var p pair
		var err error
		if p.resident, err = macs.Count(mod, s); err != nil {
			return p, err
		}
		s.Resident = false
		p.staged, err = macs.Count(mod, s)
		return p, err
	}
	base, err := count(gate.Off)
	if err != nil {
		return fail(err)
	}
	var gated pair
	if m != gate.Off {
		if gated, err = count(m); err != nil {
			return fail(err)
		}
	}
	if err := writeMacsReport(stdout, mod, base.resident, base.staged, gated.resident, gated.staged); err != nil {
		return fail(err)
	}
	if *dcInterval != 0 {
		rows, err := macs.DeepCacheRows(mod, spec, macs.DeepCache{Interval: *dcInterval, Branch: *dcBranch})
		if err != nil {
			return fail(err)
		}
		if err := writeDeepCacheRows(stdout, rows); err != nil {
			return fail(err)
		}
	}
	return 0
}

func joinSchedNames(ns []sched.Name) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

// fmtMACs writes n as calflops does: the largest unit of T, G, M, K
// (powers of 1000) with three decimals.
func fmtMACs(n int64) string {
	v := float64(n)
	for _, u := range []struct {
		s string
		f float64
	}{{"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"K", 1e3}} {
		if v >= u.f {
			return fmt.Sprintf("%.3f%s", v/u.f, u.s)
		}
	}
	return fmt.Sprintf("%d", n)
}

// fmtParams writes a parameter count in millions (or billions) with three
// decimals, as the T-GATE table does.
func fmtParams(n int64) string {
	if n >= 1e9 {
		return fmt.Sprintf("%.3fB", float64(n)/1e9)
	}
	return fmt.Sprintf("%.3fM", float64(n)/1e6)
}

// fmtMiB writes bytes in MiB with one decimal.
func fmtMiB(n int64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }

// writeMacsReport prints the tables. gated and gatedStaged are nil when
// T-GATE is off.
func writeMacsReport(w io.Writer, mod *macs.Model, base, baseStaged, gated, gatedStaged *macs.Report) error {
	ew := &errWriter{w: w}
	s := base.Spec
	guidance := "no classifier-free guidance"
	if base.CFG {
		guidance = "classifier-free guidance (batch 2) before the gate"
	}
	ew.printf("model   %s (%s)\n", mod.Dir, mod.Class)
	ew.printf("image   %d×%d, latents %v, %d steps = %d UNet evaluations (%s), %s\n",
		base.Width, base.Height, []int(base.Latent), s.Steps, base.Evals, base.Scheduler, guidance)
	if gated != nil {
		gs := gated.Spec.Gate
		ew.printf("T-GATE  %s: gate step %d", gs.Mode, gs.GateStep)
		if gs.Mode == gate.V2 {
			ew.printf(", sp_interval %d, fi_interval %d, warm-up %d", gs.SPInterval, gs.FIInterval, gs.WarmUp)
		}
		ew.printf("\n")
	} else {
		ew.printf("T-GATE  off (phases split at step %d)\n", s.Gate.GateStep)
	}
	if s.UNet8Bit {
		ew.printf("dtypes  weights %v (the UNet's Linear and convolution weights 8-bit), activations %v\n\n", s.WeightDType, s.ActDType)
	} else {
		ew.printf("dtypes  weights %v, activations %v\n\n", s.WeightDType, s.ActDType)
	}

	reports := []*macs.Report{base}
	heads := []string{"without T-GATE"}
	if gated != nil {
		reports = append(reports, gated)
		heads = append(heads, "with T-GATE "+gated.Spec.Gate.Mode.String())
	}

	// MACs of the UNet per phase.
	ew.printf("UNet MACs (linear+conv is calflops' count, the T-GATE paper's MACs column; attention is q·kᵀ and p·v)\n")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	// The first column is padded by hand so that it reads left-aligned in
	// the right-aligned table.
	row := func(cells ...string) {
		cells[0] = fmt.Sprintf("%-32s", cells[0])
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	hdr := []string{"phase"}
	for _, h := range heads {
		hdr = append(hdr, h, "rows", "linear+conv", "attention", "all")
	}
	row(hdr...)
	for _, name := range []string{macs.PhaseSemantics, macs.PhaseFidelity} {
		cells := []string{name}
		for _, r := range reports {
			p := r.Phase(name)
			cells = append(cells, fmt.Sprintf("%d evals", p.Evals), fmt.Sprint(p.Rows), fmtMACs(p.CalflopsMACs()), fmtMACs(p.MACs[meter.OpAttention]), fmtMACs(p.TotalMACs()))
		}
		row(cells...)
	}
	cells := []string{"total"}
	for _, r := range reports {
		sem, fid := r.Phase(macs.PhaseSemantics), r.Phase(macs.PhaseFidelity)
		cells = append(cells, fmt.Sprintf("%d evals", r.Evals), fmt.Sprint(sem.Rows+fid.Rows), fmtMACs(r.CalflopsMACs()),
			fmtMACs(sem.MACs[meter.OpAttention]+fid.MACs[meter.OpAttention]), fmtMACs(r.DenoiserMACs()))
	}
	row(cells...)
	if err := tw.Flush(); err != nil {
		return err
	}
	text, dec := base.Phase(macs.PhaseText), base.Phase(macs.PhaseDecoder)
	ew.printf("text encoder %s, decoder %s MACs (all ops; the same with and without T-GATE)\n", fmtMACs(text.TotalMACs()), fmtMACs(dec.TotalMACs()))
	if gated != nil {
		ew.printf("T-GATE saves %s of %s linear+conv MACs (%.1f%%), %s of %s in all (%.1f%%)\n",
			fmtMACs(base.CalflopsMACs()-gated.CalflopsMACs()), fmtMACs(base.CalflopsMACs()),
			100*float64(base.CalflopsMACs()-gated.CalflopsMACs())/float64(base.CalflopsMACs()),
			fmtMACs(base.DenoiserMACs()-gated.DenoiserMACs()), fmtMACs(base.DenoiserMACs()),
			100*float64(base.DenoiserMACs()-gated.DenoiserMACs())/float64(base.DenoiserMACs()))
	}
	ew.printf("\n")

	// Parameters.
	ew.printf("UNet parameters\n")
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	row(append([]string{""}, heads...)...)
	cells = []string{"all"}
	for _, r := range reports {
		cells = append(cells, fmtParams(r.UNetParams))
	}
	row(cells...)
	for _, name := range []string{macs.PhaseSemantics, macs.PhaseFidelity} {
		cells = []string{"read in " + name}
		for _, r := range reports {
			cells = append(cells, fmtParams(r.Phase(name).Params))
		}
		row(cells...)
	}
	if gated != nil {
		row("released at the gate", "-", fmtParams(gated.Release.WeightParams))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if gated != nil && gated.Release.Eval >= 0 {
		ew.printf("(released: norm2 and attn2 — to_q, to_k, to_v, to_out — of %d transformer blocks)\n", gated.CrossModules)
	}
	ew.printf("\n")

	// Memory.
	ew.printf("Peak memory, MiB (weights %v, activations %v; each kind's peak at its own moment, total is the peak of the sum)\n", s.WeightDType, s.ActDType)
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	hdr = []string{"phase"}
	for _, h := range heads {
		hdr = append(hdr, h, "activations", "caches", "total")
	}
	hdr[1] = "without T-GATE: weights"
	if gated != nil {
		hdr[5] = "with T-GATE " + gated.Spec.Gate.Mode.String() + ": weights"
	}
	row(hdr...)
	for _, name := range []string{macs.PhaseText, macs.PhaseSemantics, macs.PhaseFidelity, macs.PhaseDecoder} {
		cells = []string{name}
		for _, r := range reports {
			p := r.Phase(name).Peak
			cells = append(cells, fmtMiB(p.Weights), fmtMiB(p.Activations), fmtMiB(p.Caches), fmtMiB(p.Total))
		}
		row(cells...)
	}
	for _, whole := range []struct {
		name string
		rs   []*macs.Report
	}{{"generation, all models resident", []*macs.Report{base, gated}}, {"generation, one model at a time", []*macs.Report{baseStaged, gatedStaged}}} {
		cells = []string{whole.name}
		for _, r := range whole.rs {
			if r == nil {
				continue
			}
			cells = append(cells, fmtMiB(r.Peak.Weights), fmtMiB(r.Peak.Activations), fmtMiB(r.Peak.Caches), fmtMiB(r.Peak.Total))
		}
		row(cells...)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if gated != nil {
		rel := gated.Release
		if rel.Eval < 0 {
			ew.printf("Nothing is released: no evaluation reuses every cross-attention output.\n")
		} else {
			ew.printf("Released at evaluation %d: cross-attention weights %s MiB, text embeddings %s MiB; the attention cache holds %s MiB from then on (at most %s MiB);\n",
				rel.Eval, fmtMiB(rel.WeightBytes), fmtMiB(rel.EmbeddingBytes), fmtMiB(rel.CacheBytes), fmtMiB(gated.MaxCacheBytes))
			ew.printf("the guidance batch ends: the UNet's activation peak goes from %s to %s MiB.\n",
				fmtMiB(gated.Phase(macs.PhaseSemantics).Peak.Activations), fmtMiB(gated.Phase(macs.PhaseFidelity).Peak.Activations))
		}
	}
	ew.printf("Largest single tensor, MiB: weight %s, activation %s", fmtMiB(base.Largest.Weights), fmtMiB(base.Largest.Activations))
	if gated != nil {
		ew.printf(", attention cache entry %s", fmtMiB(gated.Largest.Caches))
	}
	ew.printf(" (WebGPU's default maxStorageBufferBindingSize is 128 MiB, maxBufferSize 256 MiB)\n")
	ew.printf("\ncalflops convention (UNet only, docs/macs.md): MACs %s, parameters %s", fmtMACs(base.CalflopsMACs()), fmtParams(base.UNetParams))
	if gated != nil {
		ew.printf("; with T-GATE %s: MACs %s, parameters used after the gate %s", gated.Spec.Gate.Mode, fmtMACs(gated.CalflopsMACs()), fmtParams(gated.Phase(macs.PhaseFidelity).Params))
	}
	ew.printf("\n")
	return ew.err
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	} else if n < len(p) {
		e.err = errors.New("short write")
	}
	return n, e.err
}

func (e *errWriter) printf(format string, a ...any) { fmt.Fprintf(e, format, a...) }

// writePixArtMacs counts a PixArt folder's denoising loop without T-GATE
// and with spec's (PixArt's defaults: 25 steps, gate 15, sp 3, fi 1,
// warm-up 2) and prints the transformer's MACs per phase and the
// calflops figure the T-GATE paper reports.
func writePixArtMacs(w io.Writer, pm *macs.PixArtModel, spec macs.PixArtSpec) error {
	off := spec
	off.Gate.Mode = gate.Off
	base, err := macs.CountPixArt(pm.Transformer, off)
	if err != nil {
		return err
	}
	var gated *macs.PixArtReport
	if spec.Gate.Mode != gate.Off {
		if gated, err = macs.CountPixArt(pm.Transformer, spec); err != nil {
			return err
		}
	}
	ew := &errWriter{w: w}
	guidance := "no classifier-free guidance"
	if spec.Guidance {
		guidance = "classifier-free guidance (batch 2) before the gate"
	}
	ew.printf("model   %s (%s)\n", pm.Dir, pm.Class)
	ew.printf("image   %d×%d, %d steps = %d transformer evaluations, %s\n", base.Width, base.Height, spec.Steps, base.Evals, guidance)
	if gated != nil {
		g := spec.Gate
		ew.printf("T-GATE  %s: gate step %d, sp_interval %d, fi_interval %d, warm-up %d\n", g.Mode, g.GateStep, g.SPInterval, g.FIInterval, g.WarmUp)
	}
	ew.printf("transformer %s parameters; text encoder and decoder not counted\n\n", fmtParams(base.TransformerParams))
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "phase\trun\tevals\trows\tlinear+conv\tattention\t\n")
	rows := []struct {
		name string
		rep  *macs.PixArtReport
	}{{"off", base}, {spec.Gate.Mode.String(), gated}}
	for _, ph := range []string{macs.PhaseSemantics, macs.PhaseFidelity} {
		for _, r := range rows {
			if r.rep == nil {
				continue
			}
			p := &r.rep.Semantics
			if ph == macs.PhaseFidelity {
				p = &r.rep.Fidelity
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t\n", ph, r.name, p.Evals, p.Rows, fmtMACs(p.CalflopsMACs()), fmtMACs(p.MACs[meter.OpAttention]))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ew.printf("\ncalflops convention (the T-GATE paper's figure): %s without T-GATE", fmtMACs(base.CalflopsMACs()))
	if gated != nil {
		ew.printf(", %s with %s (%.1f%% fewer)", fmtMACs(gated.CalflopsMACs()), spec.Gate.Mode,
			100*(1-float64(gated.CalflopsMACs())/float64(base.CalflopsMACs())))
	}
	ew.printf("\n")
	return ew.err
}

// writeDeepCacheRows prints the DeepCache comparison (macs.DeepCacheRows):
// refresh and partial evaluations, rows, MACs and the saving against the
// plain run.
func writeDeepCacheRows(w io.Writer, rows []macs.DeepCacheRow) error {
	ew := &errWriter{w: w}
	ew.printf("\nDeepCache (UNet MACs; a refresh runs the whole UNet, a partial evaluation the branch alone)\n")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-36s\trefresh\tpartial\trows\tlinear+conv\tall\tsaved\t\n", "run")
	for _, r := range rows {
		rp := r.Report
		sem, fid := rp.Phase(macs.PhaseSemantics), rp.Phase(macs.PhaseFidelity)
		fmt.Fprintf(tw, "%-36s\t%d\t%d\t%d\t%s\t%s\t%.1f%%\t\n", r.Name, rp.Evals-rp.DeepCachePartials, rp.DeepCachePartials,
			sem.Rows+fid.Rows, fmtMACs(rp.CalflopsMACs()), fmtMACs(rp.DenoiserMACs()),
			100*(1-float64(rp.CalflopsMACs())/float64(rows[0].Report.CalflopsMACs())))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return ew.err
}
