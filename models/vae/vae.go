package vae

import (
	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// decoderNet is vae.py's Decoder under the decoder.* keys:
// conv_in → mid_block → up_blocks (channels block_out_channels reversed,
// layers_per_block+1 resnets each, an upsampler on all but the last) →
// conv_norm_out + SiLU → conv_out.
type decoderNet struct {
	convIn   *nn.Conv2d
	mid      *midBlock
	up       []*upDecoderBlock
	normOut  *nn.GroupNorm
	convOut  *nn.Conv2d
	channels int // block_out_channels[-1]
}

func newDecoderNet(s *nn.Scope, cfg *Config) *decoderNet {
	ch := cfg.BlockOutChannels
	g := cfg.NormNumGroups
	top := ch[len(ch)-1]
	d := &decoderNet{
		convIn:   nn.NewConv2d(s, "conv_in", cfg.LatentChannels, top, 3, 1, 1, true),
		mid:      newMidBlock(s.Sub("mid_block"), top, g, cfg.MidBlockAddAttention),
		channels: top,
	}
	out := top
	for i := range ch {
		in := out
		out = ch[len(ch)-1-i]
		last := i == len(ch)-1
		d.up = append(d.up, newUpDecoderBlock(s.Sub("up_blocks", i), in, out, cfg.LayersPerBlock+1, g, !last))
	}
	d.normOut = nn.NewGroupNorm(s, "conv_norm_out", g, ch[0], normEps)
	d.convOut = nn.NewConv2d(s, "conv_out", ch[0], cfg.OutChannels, 3, 1, 1, true)
	return d
}

// forward decodes z [B, latent_channels, h, w] (z is not freed) into
// [B, out_channels, h·2^(n−1), w·2^(n−1)].
func (d *decoderNet) forward(b backend.Backend, z backend.Tensor) backend.Tensor {
	h := d.convIn.Forward(b, z)
	h = d.mid.forward(b, h)
	for _, u := range d.up {
		h = u.forward(b, h)
	}
	n := d.normOut.Forward(b, h, true)
	b.Free(h)
	out := d.convOut.Forward(b, n)
	b.Free(n)
	return out
}

// encoderNet is vae.py's Encoder under the encoder.* keys (double_z):
// conv_in → down_blocks (layers_per_block resnets, a downsampler on all
// but the last) → mid_block → conv_norm_out + SiLU → conv_out to
// 2·latent_channels (mean and log-variance).
type encoderNet struct {
	convIn  *nn.Conv2d
	down    []*downEncoderBlock
	mid     *midBlock
	normOut *nn.GroupNorm
	convOut *nn.Conv2d
}

func newEncoderNet(s *nn.Scope, cfg *Config) *encoderNet {
	ch := cfg.BlockOutChannels
	g := cfg.NormNumGroups
	top := ch[len(ch)-1]
	e := &encoderNet{convIn: nn.NewConv2d(s, "conv_in", cfg.InChannels, ch[0], 3, 1, 1, true)}
	out := ch[0]
	for i := range ch {
		in := out
		out = ch[i]
		last := i == len(ch)-1
		e.down = append(e.down, newDownEncoderBlock(s.Sub("down_blocks", i), in, out, cfg.LayersPerBlock, g, !last))
	}
	e.mid = newMidBlock(s.Sub("mid_block"), top, g, cfg.MidBlockAddAttention)
	e.normOut = nn.NewGroupNorm(s, "conv_norm_out", g, top, normEps)
	e.convOut = nn.NewConv2d(s, "conv_out", top, 2*cfg.LatentChannels, 3, 1, 1, true)
	return e
}

// forward encodes x [B, in_channels, H, W] (x is not freed) into the
// moments [B, 2·latent_channels, H/2^(n−1), W/2^(n−1)].
func (e *encoderNet) forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	h := e.convIn.Forward(b, x)
	for _, d := range e.down {
		h = d.forward(b, h)
	}
	h = e.mid.forward(b, h)
	n := e.normOut.Forward(b, h, true)
	b.Free(h)
	out := e.convOut.Forward(b, n)
	b.Free(n)
	return out
}
