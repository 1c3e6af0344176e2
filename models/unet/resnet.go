package unet

import (
	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// ResnetBlock2D is diffusers' ResnetBlock2D (resnet.py) with
// time_embedding_norm "default" (spec §3.3):
//
//	h = conv1(SiLU(norm1(x)))
//	h = h + time_emb_proj(SiLU(temb))[:, :, None, None]
//	h = conv2(SiLU(norm2(h)))          (dropout is the identity)
//	out = (shortcut(x) + h) / output_scale_factor
//
// where shortcut is the 1×1 conv_shortcut when in ≠ out, else the identity.
type ResnetBlock2D struct {
	Norm1, Norm2 *nn.GroupNorm
	Conv1, Conv2 *nn.Conv2d
	TimeEmbProj  *nn.Linear
	Shortcut     *nn.Conv2d // nil when in == out
	In, Out      int
	OutScale     float32 // output_scale_factor; 1 for every SD block but a scaled mid block
}

// NewResnetBlock2D binds a resnet under s (e.g. "down_blocks.0.resnets.1").
func NewResnetBlock2D(s *nn.Scope, in, out, tembDim, groups int, eps float32, outScale float32) *ResnetBlock2D {
	r := &ResnetBlock2D{
		Norm1:       nn.NewGroupNorm(s, "norm1", groups, in, eps),
		Conv1:       nn.NewConv2d(s, "conv1", in, out, 3, 1, 1, true),
		TimeEmbProj: nn.NewLinear(s, "time_emb_proj", tembDim, out, true),
		Norm2:       nn.NewGroupNorm(s, "norm2", groups, out, eps),
		Conv2:       nn.NewConv2d(s, "conv2", out, out, 3, 1, 1, true),
		In:          in,
		Out:         out,
		OutScale:    outScale,
	}
	if in != out {
		r.Shortcut = nn.NewConv2d(s, "conv_shortcut", in, out, 1, 1, 0, true)
	}
	return r
}

// Forward computes the block on x [B, in, H, W]. tembAct is SiLU(temb)
// [Bt, temb] with Bt ∈ {1, B}: the activation is the same for every
// resnet, so the UNet applies it once. x is not freed.
func (r *ResnetBlock2D) Forward(b backend.Backend, x, tembAct backend.Tensor) backend.Tensor {
	h := r.Norm1.Forward(b, x, true)
	h1 := r.Conv1.Forward(b, h)
	b.Free(h)

	t := r.TimeEmbProj.Forward(b, tembAct)
	t4 := b.Reshape(t, t.Shape()[0], r.Out, 1, 1)
	h2 := b.Binary(backend.Add, h1, t4)
	nn.Free(b, h1, t4, t)

	h3 := r.Norm2.Forward(b, h2, true)
	b.Free(h2)
	h4 := r.Conv2.Forward(b, h3)
	b.Free(h3)

	sc := x
	if r.Shortcut != nil {
		sc = r.Shortcut.Forward(b, x)
	}
	out := b.Binary(backend.Add, sc, h4)
	b.Free(h4)
	if sc != x {
		b.Free(sc)
	}
	if r.OutScale != 1 {
		scaled := b.Affine(out, 1/r.OutScale, 0)
		b.Free(out)
		out = scaled
	}
	return out
}

// Release frees the block's weights.
func (r *ResnetBlock2D) Release(b backend.Backend) {
	releaseGN(b, r.Norm1)
	releaseGN(b, r.Norm2)
	releaseConv(b, r.Conv1)
	releaseConv(b, r.Conv2)
	r.TimeEmbProj.Release(b)
	if r.Shortcut != nil {
		releaseConv(b, r.Shortcut)
	}
}

func releaseGN(b backend.Backend, g *nn.GroupNorm) {
	nn.Free(b, g.Gamma, g.Beta)
	g.Gamma, g.Beta = nil, nil
}

func releaseLN(b backend.Backend, l *nn.LayerNorm) {
	nn.Free(b, l.Gamma, l.Beta)
	l.Gamma, l.Beta = nil, nil
}

func releaseConv(b backend.Backend, c *nn.Conv2d) {
	nn.Free(b, c.W, c.B)
	c.W, c.B = nil, nil
}
