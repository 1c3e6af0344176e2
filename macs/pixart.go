package macs

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/models/pixart"
	"github.com/tgate-web/tgate/models/vae"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// PixArtSpec is one PixArt generation's denoising loop to count.
type PixArtSpec struct {
	// Steps is num_inference_steps.
	Steps int
	// Width and Height in pixels (the generated size, after any
	// resolution binning); 0 takes sample_size × VAEScaleFactor.
	Width, Height int
	// VAEScaleFactor is the pixels per latent (0: 8, as PixArt's VAEs,
	// SD's and SDXL's, have).
	VAEScaleFactor int
	// Guidance runs classifier-free guidance (a batch of 2) before the
	// gate.
	Guidance bool
	// Gate is T-GATE's configuration; with Mode gate.Off, GateStep still
	// splits the phases.
	Gate gate.Config
	// Scheduler is the scheduler's config (nil: DPMSolverMultistep's class
	// defaults, whose evaluations are one per step as for the folder's).
	Scheduler *sched.Config
	// Tokens is the caption length, max_sequence_length (0: 120, PixArt-α).
	Tokens int
	// WeightDType is the dtype of the transformer's weights.
	WeightDType tensor.DType
}

// PixArtDefaultSpec is the T-GATE paper's PixArt-α setting: 25 steps of
// DPM-Solver++ with classifier-free guidance, T-GATE v2 with gate step 15,
// sp_interval 3, fi_interval 1, warm-up 2 (the original repository's
// README and main.py), 120 caption tokens, F16 weights, the model's
// default size.
func PixArtDefaultSpec() PixArtSpec {
	return PixArtSpec{Steps: 25, Guidance: true, Tokens: 120, WeightDType: tensor.F16,
		Gate: gate.Config{Mode: gate.V2, GateStep: 15, SPInterval: 3, FIInterval: 1, WarmUp: 2}}
}

// PixArtReport is the count of one PixArt denoising loop.
type PixArtReport struct {
	Spec          PixArtSpec
	Width, Height int
	Evals         int
	// Semantics and Fidelity are the phases before and from the gate step
	// (Params and Peak are left zero).
	Semantics, Fidelity Phase
	Gate                gate.Stats
	// TransformerParams counts every weight of the transformer.
	TransformerParams int64
}

// CalflopsMACs sums both phases in calflops' convention (the matrix
// products with a weight and the convolutions): the figure the T-GATE
// paper reports for PixArt-α.
func (r *PixArtReport) CalflopsMACs() int64 {
	return r.Semantics.CalflopsMACs() + r.Fidelity.CalflopsMACs()
}

// CountPixArt runs the denoising loop of pipeline's PixArt generation on
// the meter: the transformer with T-GATE's hook on [x; x] with [negative;
// prompt] captions before the gate and on the latents alone after it
// (the original loader's batching), with the cross-attention weights
// released once every cross-attention output comes from the cache, and
// the micro-conditions when sample_size is 128 (PixArt-α 1024). The text
// encoder and the decoder are not counted.
func CountPixArt(cfg *pixart.Config, spec PixArtSpec) (*PixArtReport, error) {
	if spec.Steps < 1 {
		return nil, fmt.Errorf("macs: steps must be at least 1, got %d", spec.Steps)
	}
	if err := spec.Gate.Validate(); err != nil {
		return nil, err
	}
	f := spec.VAEScaleFactor
	if f == 0 {
		f = 8
	}
	w, h, L := spec.Width, spec.Height, spec.Tokens
	if w == 0 {
		w = cfg.SampleSize * f
	}
	if h == 0 {
		h = cfg.SampleSize * f
	}
	if L == 0 {
		L = 120
	}
	if unit := f * cfg.PatchSize; w <= 0 || h <= 0 || w%unit != 0 || h%unit != 0 {
		return nil, fmt.Errorf("macs: width and height must be positive multiples of %d (VAE scale factor %d × patch size %d), got %dx%d", unit, f, cfg.PatchSize, w, h)
	}
	m := meter.New()
	tr, err := pixart.NewDeclared(m, cfg, spec.WeightDType)
	if err != nil {
		return nil, err
	}
	defer tr.Release(m)
	rep := &PixArtReport{Spec: spec, Width: w, Height: h, TransformerParams: countParams(tr.Params())}

	stepper, err := sched.NewStepper[backend.Tensor](sched.DPMSolver, spec.Scheduler, sched.Options{}, &sched.BackendOps{B: m, Noise: zeroNoise{}})
	if err != nil {
		return nil, err
	}
	defer stepper.Release()
	if err := stepper.SetTimesteps(spec.Steps); err != nil {
		return nil, err
	}
	timesteps := stepper.Timesteps()
	rep.Evals = len(timesteps)
	loop := gate.Loop{Timesteps: len(timesteps), Steps: spec.Steps, Order: stepper.Order(), CFG: spec.Guidance}
	g, err := gate.New(m, spec.Gate, loop)
	if err != nil {
		return nil, err
	}
	defer g.Release()
	hook := cacheTagger{g: g, m: m}

	captionW := cfg.CrossDim()
	if cfg.CaptionChannels != nil {
		captionW = *cfg.CaptionChannels
	}
	rows := 1
	if spec.Guidance {
		rows = 2
	}
	text := m.Upload(tensor.New(rows, L, captionW))
	mask := tensor.New(rows, L)
	for i := range mask.Data {
		mask.Data[i] = 1
	}
	defer func() { nn.Free(m, text) }()
	x := m.Upload(tensor.New(1, cfg.InChannels, h/f, w/f))
	defer func() { nn.Free(m, x) }()

	released := false
	phase := &rep.Semantics
	m.ResetMACs()
	for i, t := range timesteps {
		plan := g.Begin(i)
		if i-loop.WarmupSteps() >= spec.Gate.GateStep && phase == &rep.Semantics {
			rep.Semantics.MACs = m.MACsByOp()
			m.ResetMACs()
			phase = &rep.Fidelity
		}
		if plan.Cross == gate.Reuse && !released && g.CrossCached() {
			tr.ReleaseCrossAttention(m)
			released = true
			m.Free(text)
			text = nil
		}
		in := m.Reshape(x, x.Shape()...)
		var ehs backend.Tensor
		var mk *tensor.Host
		if plan.CFG {
			m.Free(in)
			in = m.Concat(0, x, x)
		}
		if text != nil {
			ehs, mk = text, mask
			if in.Shape()[0] != rows {
				ehs = m.Slice(text, 0, 0, 1)
				mk = &tensor.Host{Shape: tensor.Shape{1, L}, Data: mask.Data[:L]}
			}
		}
		n := in.Shape()[0]
		var opt pixart.ForwardOpts
		if cfg.SampleSize == 128 {
			for range n {
				opt.Resolution = append(opt.Resolution, float64(h), float64(w))
				opt.AspectRatio = append(opt.AspectRatio, float64(h)/float64(w))
			}
		}
		opt.EncoderMask, opt.Hook = mk, hook
		out, err := tr.Forward(m, in, []float64{t}, ehs, opt)
		m.Free(in)
		if ehs != nil && ehs != text {
			m.Free(ehs)
		}
		if err != nil {
			return nil, fmt.Errorf("evaluation %d: %w", i, err)
		}
		eps := out
		if plan.CFG {
			eps = guide(m, out, 4.5)
			m.Free(out)
		}
		e4 := m.Slice(eps, 1, 0, cfg.InChannels)
		m.Free(eps)
		step, err := stepper.Step(e4, x, i)
		m.Free(e4)
		if err != nil {
			return nil, fmt.Errorf("evaluation %d: %w", i, err)
		}
		m.Free(x)
		x = step.Prev
		if step.HasDenoised {
			m.Free(step.Denoised)
		}
		phase.Evals++
		phase.Rows += n
	}
	phase.MACs = m.MACsByOp()
	if rep.Fidelity.MACs == nil {
		rep.Fidelity.MACs = map[meter.Op]int64{}
	}
	rep.Semantics.Name, rep.Fidelity.Name = PhaseSemantics, PhaseFidelity
	rep.Gate = g.Stats()
	return rep, nil
}

// PixArtModel is a PixArt model folder's architecture: its transformer's,
// VAE's and scheduler's configs.
type PixArtModel struct {
	Dir, Class  string
	Transformer *pixart.Config
	VAE         *vae.Config
	Scheduler   *sched.Config
}

// VAEScaleFactor is 2^(len(block_out_channels)−1), the pixels per latent.
func (m *PixArtModel) VAEScaleFactor() int { return 1 << (len(m.VAE.BlockOutChannels) - 1) }

// LoadPixArt reads dir/model_index.json and, when it names
// PixArtAlphaPipeline or PixArtSigmaPipeline, the transformer's, the
// VAE's and the scheduler's configs. It returns nil (and no error) for other pipelines.
func LoadPixArt(dir string) (*PixArtModel, error) {
	f := hub.Dir(dir)
	mi, err := hub.ReadModelIndexIn(f)
	if err != nil {
		return nil, err
	}
	if mi.ClassName != "PixArtAlphaPipeline" && mi.ClassName != "PixArtSigmaPipeline" {
		return nil, nil
	}
	pm := &PixArtModel{Dir: dir, Class: mi.ClassName}
	data, path, err := readConfig(f, "transformer", "config.json")
	if err != nil {
		return nil, err
	}
	if pm.Transformer, err = pixart.ParseConfig(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if data, path, err = readConfig(f, "vae", "config.json"); err != nil {
		return nil, err
	}
	if pm.VAE, err = vae.ParseConfig(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if data, path, err = readConfig(f, "scheduler", "scheduler_config.json"); err != nil {
		return nil, err
	}
	if pm.Scheduler, err = sched.ParseConfig(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pm, nil
}
