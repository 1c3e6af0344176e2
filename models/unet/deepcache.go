package unet

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
)

// DeepCache holds the feature cache of DeepCache (Ma et al., "DeepCache:
// Accelerating Diffusion Models for Free", arXiv 2312.00858) as the
// reference helper computes it (horseee/DeepCache,
// DeepCache/extension/deepcache.py, DeepCacheSDHelper with
// skip_mode "uniform").
//
// A branch id names a (block, layer) pair: block = id / 3, layer = id % 3.
// Down blocks count from the input and their resnets/attentions by
// position (a downsampler is layer len(resnets)); up blocks and their
// resnets/attentions count in reverse (up_blocks[-1] is block 0,
// resnets[-1] is layer 0) and an upsampler is layer 0. On a partial step
// the helper returns the output stored at the last refresh, without
// running the module, for the mid block, every block deeper than the
// branch's, the branch's down modules with layer ≥ its layer and the
// branch's up modules with layer > its layer. conv_in, the time
// embeddings and the output convolutions always run.
//
// Every skip tensor that a recomputed up module pops is recomputed on
// that step too, so the only stored tensor a partial step consumes is
// the hidden state entering the branch's first recomputed up layer: that
// one tensor (a view on the backend) is all this cache keeps.
//
// Set Refresh before each Forward: true runs the whole UNet and stores
// the tensor, false runs the shallow branch on the stored one. Release
// frees it; a partial step with nothing stored, or stored with another
// batch or size, is an error.
type DeepCache struct {
	// Block and Layer are the branch's (block, layer), from BranchID.
	Block, Layer int
	// Refresh selects a full evaluation that refills the cache.
	Refresh bool

	feature backend.Tensor
	b       backend.Backend
}

// NewDeepCache returns an empty cache for cache_branch_id branch (≥ 0).
func NewDeepCache(branch int) (*DeepCache, error) {
	if branch < 0 {
		return nil, fmt.Errorf("deepcache: branch id %d must not be negative", branch)
	}
	return &DeepCache{Block: branch / 3, Layer: branch % 3, Refresh: true}, nil
}

// Stored reports whether a feature from a refresh step is held.
func (c *DeepCache) Stored() bool { return c != nil && c.feature != nil }

// StoredBatch returns the batch size of the stored feature (0 if none).
func (c *DeepCache) StoredBatch() int {
	if !c.Stored() {
		return 0
	}
	return c.feature.Shape()[0]
}

// Bytes returns the float32 bytes of the stored feature.
func (c *DeepCache) Bytes() int64 {
	if !c.Stored() {
		return 0
	}
	return 4 * int64(c.feature.Shape().Numel())
}

// Release frees the stored feature; the next step must be a refresh.
func (c *DeepCache) Release() {
	if c != nil && c.feature != nil {
		c.b.Free(c.feature)
		c.feature, c.b = nil, nil
	}
}

func (c *DeepCache) store(b backend.Backend, h backend.Tensor) {
	c.Release()
	c.feature, c.b = b.Reshape(h, h.Shape()...), b
}

// deepCachePlan is where the branch cuts the UNet: down blocks before
// block run whole, down block `block` runs its first downLayers
// resnet/attention layers, up block `block` (forward index upIndex) runs
// from resnet upFrom on, and every up block after upIndex runs whole.
type deepCachePlan struct {
	block, downLayers, upIndex, upFrom int
	// none: the branch caches nothing (a UNet without a mid block whose
	// branch recomputes every layer): partial steps are full ones.
	none bool
}

// deepCachePlan maps the cache's branch onto this UNet's blocks.
func (m *Model) deepCachePlan(c *DeepCache) deepCachePlan {
	nb := len(m.Up)
	blk, layer := c.Block, c.Layer
	if blk >= nb {
		// Deeper than the deepest block: every block runs, only the mid
		// block returns its stored output.
		blk, layer = nb-1, 1<<20
	}
	up := m.Up[nb-1-blk]
	p := deepCachePlan{block: blk, upIndex: nb - 1 - blk}
	p.downLayers = min(layer, len(m.Down[blk].Resnets))
	// Up layer ℓ is resnets[len-1-ℓ]; layers ≤ layer are recomputed.
	p.upFrom = max(0, len(up.Resnets)-1-layer)
	p.none = m.Mid == nil && blk == nb-1 && p.upFrom == 0 && p.downLayers == len(m.Down[blk].Resnets)
	return p
}

// forwardDeepCache is Forward with opt.DeepCache set: a full pass that
// stores the branch's input feature (Refresh), or the shallow branch fed
// by the stored feature. A refresh computes exactly Forward's operations.
func (m *Model) forwardDeepCache(b backend.Backend, sample backend.Tensor, timesteps []float64, ctx backend.Tensor, opt ForwardOpts, rs *run) (backend.Tensor, error) {
	c := opt.DeepCache
	p := m.deepCachePlan(c)
	partial := !c.Refresh && !p.none
	sh := sample.Shape()
	bs, hgt, wid := sh[0], sh[2], sh[3]
	if partial {
		if !c.Stored() {
			return nil, fmt.Errorf("unet: DeepCache partial step with no stored feature; run a refresh step first")
		}
		if fs := c.feature.Shape(); fs[0] != bs {
			return nil, fmt.Errorf("unet: DeepCache stored a batch of %d but this step has %d; refresh the cache when the batch changes", fs[0], bs)
		}
	}

	tembAct, h := m.stem(b, sample, bs, timesteps, opt)

	// Down path; a nil skip is one a partial step does not compute (no
	// recomputed module consumes it).
	skips := []backend.Tensor{h}
	for i, d := range m.Down {
		if !partial || i < p.block {
			outs := d.forward(b, h, tembAct, ctx, rs)
			skips = append(skips, outs...)
			h = outs[len(outs)-1]
			continue
		}
		n := len(d.Resnets)
		if d.Downsample != nil {
			n++
		}
		outs := make([]backend.Tensor, n)
		if i == p.block {
			for j := 0; j < p.downLayers; j++ {
				y := d.Resnets[j].Forward(b, h, tembAct)
				if j < len(d.Attentions) {
					z := d.Attentions[j].forward(b, y, ctx, rs)
					b.Free(y)
					y = z
				}
				outs[j], h = y, y
			}
		}
		skips = append(skips, outs...)
	}

	owned := false // h is still on the skip stack
	if !partial && m.Mid != nil {
		h = m.Mid.forward(b, h, tembAct, ctx, rs)
		owned = true
	}

	factor := 1 << m.NumUpsamplers()
	resize := hgt%factor != 0 || wid%factor != 0
	for k, u := range m.Up {
		n := len(u.Resnets)
		pop := make([]backend.Tensor, n)
		for j := range pop {
			pop[j] = skips[len(skips)-1-j]
		}
		skips = skips[:len(skips)-n]
		if partial && k < p.upIndex {
			// A deeper up block: its stored output is folded into the
			// feature; free what was computed for it.
			freeSkips(b, pop, h)
			continue
		}
		upH, upW := 0, 0
		if u.Upsample != nil {
			in := h
			if partial && k == p.upIndex {
				in = c.feature // the block starts from the stored feature
			}
			upH, upW = 2*in.Shape()[2], 2*in.Shape()[3]
			if resize {
				next := skips[len(skips)-1].Shape()
				upH, upW = next[2], next[3]
			}
		}
		switch {
		case k != p.upIndex:
			h = u.forward(b, h, owned, pop, tembAct, ctx, rs, upH, upW)
		case partial:
			feat := b.Reshape(c.feature, c.feature.Shape()...)
			if owned && h != nil {
				b.Free(h)
			}
			h = u.forwardFrom(b, feat, true, pop, tembAct, ctx, rs, upH, upW, p.upFrom, nil)
		default:
			capture := func(f backend.Tensor) { c.store(b, f) }
			h = u.forwardFrom(b, h, owned, pop, tembAct, ctx, rs, upH, upW, p.upFrom, capture)
		}
		owned = true
	}
	b.Free(tembAct)

	n := m.NormOut.Forward(b, h, true)
	b.Free(h)
	out := m.ConvOut.Forward(b, n)
	b.Free(n)
	if rs.err != nil {
		b.Free(out)
		return nil, rs.err
	}
	return out, nil
}

// freeSkips frees the computed skips of a block a partial step does not
// run (a skip may be h itself in a UNet without a mid block).
func freeSkips(b backend.Backend, skips []backend.Tensor, h backend.Tensor) {
	for _, s := range skips {
		if s != nil && s != h {
			b.Free(s)
		}
	}
}

// forwardFrom is UpBlock.forward starting at resnet `from`: the skips of
// the layers before it are freed unused, h enters resnet `from`. When
// capture is set it receives h as it enters resnet `from` (the block's
// input when from is 0), before any layer runs.
func (u *UpBlock) forwardFrom(b backend.Backend, h backend.Tensor, owned bool, skips []backend.Tensor,
	tembAct, ctx backend.Tensor, rs *run, upH, upW, from int, capture func(backend.Tensor)) backend.Tensor {
	for j, r := range u.Resnets {
		s := skips[j]
		if j == from && capture != nil {
			capture(h)
		}
		if j < from {
			// Computed on a refresh step like every layer; on a partial
			// step these skips are nil.
			if capture == nil {
				if s != nil && s != h {
					b.Free(s)
				}
				continue
			}
		}
		cat := b.Concat(1, h, s)
		b.Free(s)
		if owned && h != s {
			b.Free(h)
		}
		x := r.Forward(b, cat, tembAct)
		b.Free(cat)
		if j < len(u.Attentions) {
			y := u.Attentions[j].forward(b, x, ctx, rs)
			b.Free(x)
			x = y
		}
		h, owned = x, true
	}
	if u.Upsample != nil {
		// Upsample2D: F.interpolate(mode="nearest") to 2× or to the
		// forwarded size, then the conv.
		up := b.ResizeNearest(h, upH, upW)
		b.Free(h)
		h = u.Upsample.Forward(b, up)
		b.Free(up)
	}
	return h
}

// Feature returns the stored feature (nil when none), for callers that
// account for the cache's memory; it stays owned by the cache.
func (c *DeepCache) Feature() backend.Tensor {
	if c == nil {
		return nil
	}
	return c.feature
}
