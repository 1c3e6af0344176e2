package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/macs"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// variant is one T-GATE setting under test.
type variant struct {
	name string
	gate gate.Config
}

// variants are the settings in the order each round runs them: the plain
// run, then v1 and v2 at gate step 10 and at gate step 5 (scaled to the
// step count, as a fraction of 25).
func variants(steps int) []variant {
	at := func(g int) int { return max(1, min(steps-1, (g*steps+12)/25)) }
	mk := func(m gate.Mode, g int) variant {
		c := gate.SDDefaults()
		c.Mode, c.GateStep = m, at(g)
		return variant{fmt.Sprintf("%v-g%d", m, c.GateStep), c}
	}
	off := gate.SDDefaults()
	off.Mode = gate.Off
	return []variant{{"off", off}, mk(gate.V1, 10), mk(gate.V2, 10), mk(gate.V1, 5), mk(gate.V2, 5)}
}

// sample is one generation's measurements.
type sample struct {
	text, denoise, decode, total time.Duration
	peak                         int64
}

// row is one variant's medians and counts.
type row struct {
	name                       string
	text, denoise, decode, tot time.Duration
	best                       time.Duration // the fastest round's total
	speedup, bestSpeedup       float64
	macRatio                   float64
	peak                       int64
	macs                       int64
}

// bench builds the model, runs every variant o.rounds times in turn and
// returns one row per variant.
func bench(ctx context.Context, o options, log io.Writer) ([]row, error) {
	dir := o.keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "tgatebench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	t0 := time.Now()
	if err := buildModel(dir, o.configs, o.seed); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	fmt.Fprintf(log, "model written in %.1f s\n", time.Since(t0).Seconds())

	vs := variants(o.steps)
	counts, err := countMACs(dir, o, vs)
	if err != nil {
		return nil, err
	}

	b := cpu.New()
	t0 = time.Now()
	p, err := pipeline.Load(b, dir, pipeline.LoadOptions{})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	fmt.Fprintf(log, "model loaded in %.1f s\n", time.Since(t0).Seconds())

	samples := make([][]sample, len(vs))
	for r := range o.rounds {
		for i, v := range vs {
			s, err := generate(ctx, b, p, o, v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v.name, err)
			}
			samples[i] = append(samples[i], s)
			fmt.Fprintf(log, "round %d/%d %-7s total %.2f s (text %.2f, denoise %.2f, decode %.2f), peak %d bytes\n",
				r+1, o.rounds, v.name, s.total.Seconds(), s.text.Seconds(), s.denoise.Seconds(), s.decode.Seconds(), s.peak)
		}
	}

	rows := make([]row, len(vs))
	for i, v := range vs {
		ss := samples[i]
		rows[i] = row{
			name:    v.name,
			text:    median(ss, func(s sample) time.Duration { return s.text }),
			denoise: median(ss, func(s sample) time.Duration { return s.denoise }),
			decode:  median(ss, func(s sample) time.Duration { return s.decode }),
			tot:     median(ss, func(s sample) time.Duration { return s.total }),
			macs:    counts[i],
		}
		rows[i].best = ss[0].total
		for _, s := range ss {
			rows[i].peak = max(rows[i].peak, s.peak)
			rows[i].best = min(rows[i].best, s.total)
		}
	}
	for i := range rows {
		rows[i].speedup = rows[0].tot.Seconds() / rows[i].tot.Seconds()
		rows[i].bestSpeedup = rows[0].best.Seconds() / rows[i].best.Seconds()
		rows[i].macRatio = float64(rows[0].macs) / float64(rows[i].macs)
	}
	return rows, nil
}

// generate runs one generation and times its phases. The total is the sum
// of the phases (tokenize, text encoder, denoise, decode); rebinding the
// cross-attention weights a previous gated run released happens before
// the first phase and is not counted.
func generate(ctx context.Context, b *cpu.Backend, p *pipeline.Pipeline, o options, v variant) (sample, error) {
	var s sample
	b.ResetPeak()
	req := pipeline.Request{
		Prompt:    o.prompt,
		Steps:     o.steps,
		Guidance:  7.5,
		Seed:      o.seed,
		Width:     o.latent * 8,
		Height:    o.latent * 8,
		Scheduler: sched.DPMSolver,
		Gate:      v.gate,
		Phase: func(e pipeline.PhaseEvent) {
			if !e.Done {
				return
			}
			s.total += e.Elapsed
			switch e.Name {
			case pipeline.PhaseTextEncoder:
				s.text = e.Elapsed
			case pipeline.PhaseDenoise:
				s.denoise = e.Elapsed
			case pipeline.PhaseDecode:
				s.decode = e.Elapsed
			}
		},
	}
	if _, err := p.Generate(ctx, req); err != nil {
		return s, err
	}
	s.peak = b.Memory().Peak
	return s, nil
}

// countMACs counts every variant's MACs (all phases, every op family) with
// the macs package under the same settings.
func countMACs(dir string, o options, vs []variant) ([]int64, error) {
	mod, err := macs.Load(dir)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(vs))
	for i, v := range vs {
		spec := macs.DefaultSpec()
		spec.Steps, spec.Width, spec.Height = o.steps, o.latent*8, o.latent*8
		spec.Guidance, spec.Scheduler = true, sched.DPMSolver
		spec.WeightDType, spec.ActDType = tensor.F16, tensor.F32
		spec.Gate = v.gate
		r, err := macs.Count(mod, spec)
		if err != nil {
			return nil, fmt.Errorf("macs %s: %w", v.name, err)
		}
		for j := range r.Phases {
			out[i] += r.Phases[j].TotalMACs()
		}
	}
	return out, nil
}

func median(ss []sample, f func(sample) time.Duration) time.Duration {
	ds := make([]time.Duration, len(ss))
	for i, s := range ss {
		ds[i] = f(s)
	}
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}
