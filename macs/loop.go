package macs

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// cacheTagger passes the UNet's attention modules to the gate and marks
// every tensor the gate keeps as a cache on the meter, so cached outputs
// are counted as caches rather than activations.
type cacheTagger struct {
	g *gate.Gate
	m *meter.Backend
}

// Attention implements nn.AttentionHook.
func (c cacheTagger) Attention(key string, kind nn.AttnKind, compute func() backend.Tensor) (backend.Tensor, bool) {
	out, owned := c.g.Attention(key, kind, compute)
	if t := c.g.Cached(key); t != nil {
		c.m.Retag(t, meter.Cache)
	}
	return out, owned
}

// sdxlTimeIDs are add_time_ids for an image of h×w: original size, crop
// offset (0, 0), target size (SDXL pipeline _get_add_time_ids).
func sdxlTimeIDs(h, w int) []float64 {
	return []float64{float64(h), float64(w), 0, 0, float64(h), float64(w)}
}

// denoise runs the loop of pipeline.Generate: the gate's plan per
// evaluation, the guidance batch before the gate, the release of the
// cross-attention weights and text embeddings at the first evaluation
// past it, the scheduler stepping device tensors. The semantics-planning
// phase (begun by the caller) ends at the first evaluation whose CurStep
// reaches the gate step, and the fidelity-improving phase begins there;
// the caller ends it. It returns what the decoder decodes: the final
// latents, or the LCM's last denoised sample.
//
// Like pipeline.Generate, which releases them with deferred calls, the
// loop's leftovers — the latents, the last denoised sample, the
// guidance embedding and the scheduler's history — stay live through the
// decoder until r.afterDecode runs.
func (r *run) denoise(emb *embeddings) (backend.Tensor, error) {
	m, spec, rep := r.m, r.spec, r.rep
	stepper, err := sched.NewStepper[backend.Tensor](rep.Scheduler, r.model.Scheduler, sched.Options{}, &sched.BackendOps{B: m, Noise: zeroNoise{}})
	if err != nil {
		return nil, err
	}
	if err := stepper.SetTimesteps(spec.Steps); err != nil {
		return nil, err
	}
	timesteps := stepper.Timesteps()
	rep.Evals = len(timesteps)
	loop := gate.Loop{Timesteps: len(timesteps), Steps: spec.Steps, Order: stepper.Order(), CFG: rep.CFG}
	g, err := gate.New(m, spec.Gate, loop)
	if err != nil {
		return nil, err
	}
	hook := cacheTagger{g: g, m: m}
	dc, err := newDeepCacheCount(m, spec.DeepCache, timesteps, loop.WarmupSteps())
	if err != nil {
		return nil, err
	}

	opts := unet.ForwardOpts{Hook: hook}
	if d := r.model.UNet.TimeCondProjDim; d != nil {
		// LCM: w = guidance − 1 through the guidance embedding.
		opts.TimestepCond = m.Upload(unet.GuidanceScaleEmbedding([]float64{7.5}, *d))
	}
	if r.model.Class == ClassSDXL {
		opts.TimeIDs = sdxlTimeIDs(rep.Height, rep.Width)
	}

	x := m.Upload(tensor.New(rep.Latent...))
	var denoised backend.Tensor
	split := len(timesteps)
	for i := range timesteps {
		if i-loop.WarmupSteps() >= spec.Gate.GateStep {
			split = i
			break
		}
	}
	released := false
	for i, t := range timesteps {
		plan := g.Begin(i)
		if spec.AdaptiveGuidanceStep > 0 && i >= spec.AdaptiveGuidanceStep {
			plan.CFG = false // Adaptive Guidance: one row from here on
		}
		if i == split {
			r.end(PhaseSemantics, r.semEvals, r.semRows)
		}
		if plan.Cross == gate.Reuse && !released && g.CrossCached() {
			r.releaseCross(i, g, emb)
			released = true
		}
		if i == split {
			// The fidelity phase's counts and peaks start after the
			// release.
			r.begin()
		}

		in, ehs, te := x, emb.ctx, emb.pooled
		switch {
		case plan.CFG:
			in = m.Concat(0, x, x)
		case rep.CFG:
			in, ehs, te = m.Reshape(x, x.Shape()...), emb.single, emb.singlePooled
		default:
			in = m.Reshape(x, x.Shape()...)
		}
		rows := in.Shape()[0]
		scaled := stepper.ScaleModelInput(in, i)
		m.Free(in)
		if extra := r.model.UNet.InChannels - rep.Latent[1]; extra > 0 {
			// An inpainting UNet also takes the mask and the masked
			// image's latents.
			sh := scaled.Shape()
			cond := m.Upload(tensor.New(rows, extra, sh[2], sh[3]))
			full := m.Concat(1, scaled, cond)
			m.Free(scaled)
			m.Free(cond)
			scaled = full
		}
		o := opts
		o.TextEmbeds = te
		o.DeepCache = dc.next(i, rows, g.GateStep(), rep)
		out, err := r.un.Forward(m, scaled, []float64{t}, ehs, o)
		m.Free(scaled)
		dc.tag()
		if err != nil {
			return nil, fmt.Errorf("evaluation %d: %w", i, err)
		}
		if err := g.Err(); err != nil {
			return nil, err
		}
		eps := out
		if plan.CFG {
			eps = guide(m, out, 7.5)
			m.Free(out)
		}
		step, err := stepper.Step(eps, x, i)
		m.Free(eps)
		if err != nil {
			return nil, fmt.Errorf("evaluation %d: %w", i, err)
		}
		m.Free(x)
		x = step.Prev
		if denoised != nil {
			m.Free(denoised)
			denoised = nil
		}
		if step.HasDenoised {
			denoised = step.Denoised
		}
		if c := m.Live(meter.Cache); c > rep.MaxCacheBytes {
			rep.MaxCacheBytes = c
		}
		if i < split {
			r.semEvals++
			r.semRows += rows
		} else {
			r.fidEvals++
			r.fidRows += rows
		}
	}
	if split == len(timesteps) {
		r.end(PhaseSemantics, r.semEvals, r.semRows)
		r.begin()
	}
	rep.Gate = g.Stats()
	g.Release()
	dc.release()
	emb.releaseText(m)
	emb.releasePooled(m)
	r.afterDecode = func() {
		stepper.Release()
		nn.Free(m, x, denoised, opts.TimestepCond)
	}
	if r.model.Class == ClassLCM {
		if denoised == nil {
			return nil, fmt.Errorf("macs: the %s scheduler forms no denoised sample for the LCM pipeline", rep.Scheduler)
		}
		return denoised, nil
	}
	return x, nil
}

// releaseCross frees the cross-attention weights and the text embeddings
// (what pipeline.Generate frees once every cross-attention output comes
// from the cache) and records what went. SDXL's pooled embeddings stay:
// the UNet's added time embedding still reads them.
func (r *run) releaseCross(i int, g *gate.Gate, emb *embeddings) {
	m := r.m
	before := countParams(r.un.Params())
	wb := m.Live(meter.Weight)
	all := r.un.Params()
	r.un.ReleaseCrossAttention(m)
	kept := map[string]bool{}
	for _, p := range r.un.Params() {
		kept[p.Name] = true
	}
	for _, p := range all {
		if !kept[p.Name] {
			r.rep.ReleasedParams = append(r.rep.ReleasedParams, p.Name)
		}
	}
	r.rep.Release = Release{Eval: i, WeightParams: before - countParams(r.un.Params()),
		WeightBytes: wb - m.Live(meter.Weight), EmbeddingBytes: emb.textBytes(), CacheBytes: m.Live(meter.Cache)}
	emb.releaseText(m)
}

// guide is classifier-free guidance as pipeline/guidance.go computes it:
// ε = ε_u + g·(ε_c − ε_u) on the halves of out [2, ...].
func guide(b backend.Backend, out backend.Tensor, g float32) backend.Tensor {
	halves := backend.Chunk(b, out, 0, 2)
	diff := b.Binary(backend.Sub, halves[1], halves[0])
	scaled := b.Affine(diff, g, 0)
	eps := b.Binary(backend.Add, halves[0], scaled)
	nn.Free(b, diff, scaled, halves[0], halves[1])
	return eps
}

// zeroNoise feeds the schedulers that draw noise (Euler ancestral, LCM):
// the meter needs only the shape.
type zeroNoise struct{}

func (zeroNoise) Randn(n int) []float32 { return make([]float32, n) }

// decode is pipeline.Decode with the VAE: z/scaling_factor, the decoder,
// (x/2 + 0.5).clamp(0, 1).
func (r *run) decode(latents backend.Tensor) error {
	m := r.m
	sf := m.Upload(tensor.FromData([]float32{float32(r.model.VAE.ScalingFactor)}, 1))
	z := m.Binary(backend.Div, latents, sf)
	m.Free(sf)
	dec, err := r.dec.Decode(m, z)
	m.Free(z)
	if err != nil {
		return err
	}
	half := m.Affine(dec, 0.5, 0.5)
	m.Free(dec)
	img := m.Clamp(half, 0, 1)
	m.Free(half)
	m.Free(img)
	return nil
}
