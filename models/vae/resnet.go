package vae

import (
	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// normEps is the GroupNorm epsilon of every VAE norm (resnet_eps=1e-6 in
// vae.py; the Attention's group_norm uses the same value).
const normEps = 1e-6

// resnetBlock is diffusers' ResnetBlock2D without a time embedding
// (resnet.py, temb_channels=None, output_scale_factor=1):
// h = conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))), out = shortcut(x) + h,
// where shortcut is conv_shortcut (1×1) when channels change.
type resnetBlock struct {
	norm1, norm2 *nn.GroupNorm
	conv1, conv2 *nn.Conv2d
	shortcut     *nn.Conv2d // nil when in == out
}

func newResnetBlock(s *nn.Scope, in, out, groups int) *resnetBlock {
	r := &resnetBlock{
		norm1: nn.NewGroupNorm(s, "norm1", groups, in, normEps),
		conv1: nn.NewConv2d(s, "conv1", in, out, 3, 1, 1, true),
		norm2: nn.NewGroupNorm(s, "norm2", groups, out, normEps),
		conv2: nn.NewConv2d(s, "conv2", out, out, 3, 1, 1, true),
	}
	if in != out {
		r.shortcut = nn.NewConv2d(s, "conv_shortcut", in, out, 1, 1, 0, true)
	}
	return r
}

// forward returns the block's output; x is not freed.
func (r *resnetBlock) forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	h := r.norm1.Forward(b, x, true)
	h2 := r.conv1.Forward(b, h)
	b.Free(h)
	h = r.norm2.Forward(b, h2, true)
	b.Free(h2)
	h2 = r.conv2.Forward(b, h)
	b.Free(h)
	skip := x
	if r.shortcut != nil {
		skip = r.shortcut.Forward(b, x)
	}
	out := b.Binary(backend.Add, skip, h2)
	b.Free(h2)
	if r.shortcut != nil {
		b.Free(skip)
	}
	return out
}
