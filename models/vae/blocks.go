package vae

import (
	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// midBlock is UNetMidBlock2D as the VAE builds it (unet_2d_blocks.py,
// num_layers=1, temb_channels=None): resnets.0, then (if
// mid_block_add_attention) attentions.0, then resnets.1.
type midBlock struct {
	resnets [2]*resnetBlock
	attn    *attention // nil without mid-block attention
}

func newMidBlock(s *nn.Scope, ch, groups int, addAttention bool) *midBlock {
	m := &midBlock{}
	m.resnets[0] = newResnetBlock(s.Sub("resnets", 0), ch, ch, groups)
	if addAttention {
		m.attn = newAttention(s.Sub("attentions", 0), ch, groups)
	}
	m.resnets[1] = newResnetBlock(s.Sub("resnets", 1), ch, ch, groups)
	return m
}

// forward consumes x (frees it) and returns the block's output.
func (m *midBlock) forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	h := m.resnets[0].forward(b, x)
	b.Free(x)
	if m.attn != nil {
		h2 := m.attn.forward(b, h)
		b.Free(h)
		h = h2
	}
	out := m.resnets[1].forward(b, h)
	b.Free(h)
	return out
}

// upDecoderBlock is UpDecoderBlock2D: resnets (the first maps in→out),
// then optionally upsamplers.0 = Upsample2D(use_conv=True): nearest ×2
// followed by a 3×3 conv.
type upDecoderBlock struct {
	resnets  []*resnetBlock
	upsample *nn.Conv2d // nil for the last block
}

func newUpDecoderBlock(s *nn.Scope, in, out, layers, groups int, addUpsample bool) *upDecoderBlock {
	u := &upDecoderBlock{}
	for i := 0; i < layers; i++ {
		c := out
		if i == 0 {
			c = in
		}
		u.resnets = append(u.resnets, newResnetBlock(s.Sub("resnets", i), c, out, groups))
	}
	if addUpsample {
		u.upsample = nn.NewConv2d(s, "upsamplers.0.conv", out, out, 3, 1, 1, true)
	}
	return u
}

// forward consumes x and returns the block's output.
func (u *upDecoderBlock) forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	for _, r := range u.resnets {
		h := r.forward(b, x)
		b.Free(x)
		x = h
	}
	if u.upsample != nil {
		sh := x.Shape()
		up := b.ResizeNearest(x, 2*sh[2], 2*sh[3])
		b.Free(x)
		x = u.upsample.Forward(b, up)
		b.Free(up)
	}
	return x
}

// downEncoderBlock is DownEncoderBlock2D: resnets, then optionally
// downsamplers.0 = Downsample2D(use_conv=True, padding=0): pad one zero
// row and column at the bottom and right, then a 3×3 stride-2 conv
// (spec §2).
type downEncoderBlock struct {
	resnets    []*resnetBlock
	downsample *nn.Conv2d // nil for the last block
}

func newDownEncoderBlock(s *nn.Scope, in, out, layers, groups int, addDownsample bool) *downEncoderBlock {
	d := &downEncoderBlock{}
	for i := 0; i < layers; i++ {
		c := out
		if i == 0 {
			c = in
		}
		d.resnets = append(d.resnets, newResnetBlock(s.Sub("resnets", i), c, out, groups))
	}
	if addDownsample {
		d.downsample = nn.NewConv2d(s, "downsamplers.0.conv", out, out, 3, 2, 0, true)
	}
	return d
}

// forward consumes x and returns the block's output.
func (d *downEncoderBlock) forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	for _, r := range d.resnets {
		h := r.forward(b, x)
		b.Free(x)
		x = h
	}
	if d.downsample != nil {
		p := padBottomRight(b, x)
		b.Free(x)
		x = d.downsample.Forward(b, p)
		b.Free(p)
	}
	return x
}

// padBottomRight returns x [B, C, H, W] with one zero row appended below
// and one zero column to the right: F.pad(x, (0, 1, 0, 1)).
func padBottomRight(b backend.Backend, x backend.Tensor) backend.Tensor {
	sh := x.Shape()
	n, c, h, w := sh[0], sh[1], sh[2], sh[3]
	col := b.Upload(tensor.New(n, c, h, 1))
	wide := b.Concat(3, x, col)
	b.Free(col)
	row := b.Upload(tensor.New(n, c, 1, w+1))
	out := b.Concat(2, wide, row)
	nn.Free(b, wide, row)
	return out
}
