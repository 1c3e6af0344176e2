package unet

import (
	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// DownBlock is CrossAttnDownBlock2D (with Attentions) or DownBlock2D
// (without), unet_2d_blocks.py: layers of resnet (then transformer), each
// output kept as a skip, then an optional Downsample2D whose output is a
// skip too.
type DownBlock struct {
	Resnets    []*ResnetBlock2D
	Attentions []*Transformer2D // empty for DownBlock2D
	Downsample *nn.Conv2d       // downsamplers.0.conv: 3×3, stride 2, padding 1; nil for the last block
}

func newDownBlock(s *nn.Scope, p blockPlan, tembDim, groups int, eps float32) *DownBlock {
	d := &DownBlock{}
	for j := 0; j < p.Layers; j++ {
		in := p.Out
		if j == 0 {
			in = p.In
		}
		d.Resnets = append(d.Resnets, NewResnetBlock2D(s.Sub("resnets", j), in, p.Out, tembDim, groups, eps, 1))
		if p.HasAttn {
			d.Attentions = append(d.Attentions, NewTransformer2D(s.Sub("attentions", j), p.Out, p.Heads, p.TLayers, p.CrossDim, groups))
		}
	}
	if p.HasSampling {
		d.Downsample = nn.NewConv2d(s.Sub("downsamplers", 0), "conv", p.Out, p.Out, 3, 2, 1, true)
	}
	return d
}

// forward runs the block on h and returns its skip outputs in order; the
// last one is the block's output. Every returned tensor is new; h is not
// freed.
func (d *DownBlock) forward(b backend.Backend, h, tembAct, ctx backend.Tensor, rs *run) []backend.Tensor {
	var outs []backend.Tensor
	for j, r := range d.Resnets {
		x := r.Forward(b, h, tembAct)
		if j < len(d.Attentions) {
			y := d.Attentions[j].forward(b, x, ctx, rs)
			b.Free(x)
			x = y
		}
		outs = append(outs, x)
		h = x
	}
	if d.Downsample != nil {
		// Downsample2D with padding 1: out = ceil(n/2) per side.
		outs = append(outs, d.Downsample.Forward(b, h))
	}
	return outs
}

// MidBlock is UNetMidBlock2DCrossAttn with one layer: resnets.0, then
// attentions.0 and resnets.1.
type MidBlock struct {
	Resnets    []*ResnetBlock2D
	Attentions []*Transformer2D
}

func newMidBlock(s *nn.Scope, p blockPlan, tembDim, groups int, eps, outScale float32) *MidBlock {
	m := &MidBlock{Resnets: []*ResnetBlock2D{NewResnetBlock2D(s.Sub("resnets", 0), p.In, p.In, tembDim, groups, eps, outScale)}}
	m.Attentions = append(m.Attentions, NewTransformer2D(s.Sub("attentions", 0), p.In, p.Heads, p.TLayers, p.CrossDim, groups))
	m.Resnets = append(m.Resnets, NewResnetBlock2D(s.Sub("resnets", 1), p.In, p.In, tembDim, groups, eps, outScale))
	return m
}

// forward runs the mid block; h is not freed.
func (m *MidBlock) forward(b backend.Backend, h, tembAct, ctx backend.Tensor, rs *run) backend.Tensor {
	x := m.Resnets[0].Forward(b, h, tembAct)
	for i, a := range m.Attentions {
		y := a.forward(b, x, ctx, rs)
		b.Free(x)
		x = m.Resnets[i+1].Forward(b, y, tembAct)
		b.Free(y)
	}
	return x
}

// UpBlock is CrossAttnUpBlock2D (with Attentions) or UpBlock2D: for each
// layer, pop a skip, concatenate [h, skip] on channels, resnet (then
// transformer); then an optional Upsample2D (nearest resize, 3×3 conv).
type UpBlock struct {
	Resnets    []*ResnetBlock2D
	Attentions []*Transformer2D
	Upsample   *nn.Conv2d // upsamplers.0.conv; nil for the last block
}

func newUpBlock(s *nn.Scope, p blockPlan, tembDim, groups int, eps float32) *UpBlock {
	u := &UpBlock{}
	for j := 0; j < p.Layers; j++ {
		u.Resnets = append(u.Resnets, NewResnetBlock2D(s.Sub("resnets", j), p.resnetIn(j), p.Out, tembDim, groups, eps, 1))
		if p.HasAttn {
			u.Attentions = append(u.Attentions, NewTransformer2D(s.Sub("attentions", j), p.Out, p.Heads, p.TLayers, p.CrossDim, groups))
		}
	}
	if p.HasSampling {
		u.Upsample = nn.NewConv2d(s.Sub("upsamplers", 0), "conv", p.Out, p.Out, 3, 1, 1, true)
	}
	return u
}

// forward runs the block. skips are the block's skip tensors in pop order
// (most recent first); each is freed after use, and so is h when owned is
// true. A skip may be h itself (a UNet without a mid block): it is then
// freed once. upH, upW are the upsampler's output size (2H×2W, or the next
// skip's size under the resize rule).
func (u *UpBlock) forward(b backend.Backend, h backend.Tensor, owned bool, skips []backend.Tensor,
	tembAct, ctx backend.Tensor, rs *run, upH, upW int) backend.Tensor {
	return u.forwardFrom(b, h, owned, skips, tembAct, ctx, rs, upH, upW, 0, nil)
}

func (d *DownBlock) release(b backend.Backend) {
	for _, r := range d.Resnets {
		r.Release(b)
	}
	for _, a := range d.Attentions {
		a.Release(b)
	}
	if d.Downsample != nil {
		releaseConv(b, d.Downsample)
	}
}

func (m *MidBlock) release(b backend.Backend) {
	for _, r := range m.Resnets {
		r.Release(b)
	}
	for _, a := range m.Attentions {
		a.Release(b)
	}
}

func (u *UpBlock) release(b backend.Backend) {
	for _, r := range u.Resnets {
		r.Release(b)
	}
	for _, a := range u.Attentions {
		a.Release(b)
	}
	if u.Upsample != nil {
		releaseConv(b, u.Upsample)
	}
}
