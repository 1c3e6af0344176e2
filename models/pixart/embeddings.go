package pixart

import (
	"math"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// timeProjDim is the width of the sinusoidal timestep (and size) features
// of PixArtAlphaCombinedTimestepSizeEmbeddings: Timesteps(num_channels=256).
const timeProjDim = 256

// SinCosPosEmbed is diffusers' get_2d_sincos_pos_embed (embeddings.py,
// v0.30.3) for a grid of gridH×gridW patches: [gridH·gridW, dim], row
// y·gridW + x holding
//
//	[sincos_{dim/2}(x') | sincos_{dim/2}(y')]
//	x' = x / (gridW / baseSize) / interpolationScale   (float32, as numpy)
//	y' = y / (gridH / baseSize) / interpolationScale
//
// where sincos_d(p) = [sin(p·ω) | cos(p·ω)] with ω_i = 1/10000^(i/(d/2)),
// i < d/2, in float64 (get_1d_sincos_pos_embed_from_grid), rounded to
// float32 at the end. The first half encodes the column: diffusers'
// meshgrid puts w first.
func SinCosPosEmbed(dim, gridH, gridW, baseSize int, interpolationScale float64) *tensor.Host {
	coord := func(n int) []float64 {
		out := make([]float64, n)
		div := float32(float64(n) / float64(baseSize))
		s := float32(interpolationScale)
		for i := range out {
			out[i] = float64(float32(i) / div / s)
		}
		return out
	}
	xs, ys := coord(gridW), coord(gridH)
	half := dim / 2
	quarter := half / 2
	omega := make([]float64, quarter)
	for i := range omega {
		omega[i] = 1 / math.Pow(10000, float64(i)/(float64(half)/2))
	}
	out := tensor.New(gridH*gridW, dim)
	for y := 0; y < gridH; y++ {
		for x := 0; x < gridW; x++ {
			row := out.Data[(y*gridW+x)*dim:][:dim]
			for i, w := range omega {
				row[i] = float32(math.Sin(xs[x] * w))
				row[quarter+i] = float32(math.Cos(xs[x] * w))
				row[half+i] = float32(math.Sin(ys[y] * w))
				row[half+quarter+i] = float32(math.Cos(ys[y] * w))
			}
		}
	}
	return out
}

// PatchEmbed is diffusers' PatchEmbed as PixArt uses it (sin-cos
// positional embedding, no layer norm, flattened): a patch×patch
// convolution with stride patch ("proj"), the tokens [B, h·w, D] in
// row-major patch order, plus the positional embedding of the h×w grid.
type PatchEmbed struct {
	Proj               *nn.Conv2d
	Patch, Dim         int
	BaseSize           int
	InterpolationScale float64

	// pos is the positional embedding of the last grid seen (posH×posW),
	// kept on the device between steps.
	pos        backend.Tensor
	posH, posW int
}

// NewPatchEmbed binds pos_embed.proj (in → dim, kernel and stride patch).
func NewPatchEmbed(s *nn.Scope, in, dim, patch, baseSize int, interpolationScale float64) *PatchEmbed {
	return &PatchEmbed{
		Proj:  nn.NewConv2d(s, "proj", in, dim, patch, patch, 0, true),
		Patch: patch, Dim: dim, BaseSize: baseSize, InterpolationScale: interpolationScale,
	}
}

// Forward maps x [B, C, H, W] to tokens [B, (H/p)·(W/p), D] with the
// positional embedding added (PatchEmbed.forward: the embedding is
// recomputed for the actual grid when it is not base_size×base_size,
// which is the same formula).
func (p *PatchEmbed) Forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	sh := x.Shape()
	bs, gh, gw := sh[0], sh[2]/p.Patch, sh[3]/p.Patch
	c := p.Proj.Forward(b, x) // [B, D, gh, gw]
	c3 := b.Reshape(c, bs, p.Dim, gh*gw)
	tok := b.Permute(c3, 0, 2, 1)
	nn.Free(b, c3, c)
	if p.pos == nil || p.posH != gh || p.posW != gw {
		p.releasePos(b)
		p.pos = b.Upload(SinCosPosEmbed(p.Dim, gh, gw, p.BaseSize, p.InterpolationScale))
		p.posH, p.posW = gh, gw
	}
	out := b.Binary(backend.Add, tok, p.pos)
	b.Free(tok)
	return out
}

func (p *PatchEmbed) releasePos(b backend.Backend) {
	if p.pos != nil {
		b.Free(p.pos)
		p.pos = nil
	}
}

// Release frees the projection and the stored positional embedding.
func (p *PatchEmbed) Release(b backend.Backend) {
	p.releasePos(b)
	nn.Free(b, p.Proj.W, p.Proj.B)
	p.Proj.W, p.Proj.B = nil, nil
}

// TimestepSizeEmbedding is PixArtAlphaCombinedTimestepSizeEmbeddings
// (embeddings.py): timestep_embedder(Timesteps(256, flip, shift 0)(t)),
// plus, with use_additional_conditions, the concatenation of
// resolution_embedder(proj(resolution)) reshaped [B, 2·D/3] and
// aspect_ratio_embedder(proj(aspect_ratio)) [B, D/3].
type TimestepSizeEmbedding struct {
	Timestep    *unet.TimestepEmbedding
	Resolution  *unet.TimestepEmbedding // nil without additional conditions
	AspectRatio *unet.TimestepEmbedding
}

// NewTimestepSizeEmbedding binds emb.timestep_embedder and, if
// additional, emb.resolution_embedder and emb.aspect_ratio_embedder
// (width dim/3 each).
func NewTimestepSizeEmbedding(s *nn.Scope, dim int, additional bool) *TimestepSizeEmbedding {
	e := &TimestepSizeEmbedding{Timestep: unet.NewTimestepEmbedding(s.Sub("timestep_embedder"), timeProjDim, dim, 0)}
	if additional {
		e.Resolution = unet.NewTimestepEmbedding(s.Sub("resolution_embedder"), timeProjDim, dim/3, 0)
		e.AspectRatio = unet.NewTimestepEmbedding(s.Sub("aspect_ratio_embedder"), timeProjDim, dim/3, 0)
	}
	return e
}

// Forward returns the conditioning [B, D] for one timestep per sample;
// resolution holds B (height, width) pairs and aspectRatio B values
// (both ignored without additional conditions).
func (e *TimestepSizeEmbedding) Forward(b backend.Backend, timesteps, resolution, aspectRatio []float64) backend.Tensor {
	bs := len(timesteps)
	tp := b.Upload(unet.TimestepSinusoid(timesteps, timeProjDim, true, 0))
	emb := e.Timestep.Forward(b, tp, nil)
	b.Free(tp)
	if e.Resolution == nil {
		return emb
	}
	rp := b.Upload(unet.TimestepSinusoid(resolution, timeProjDim, true, 0)) // [2B, 256]
	r := e.Resolution.Forward(b, rp, nil)
	b.Free(rp)
	r2 := b.Reshape(r, bs, -1)
	b.Free(r)
	ap := b.Upload(unet.TimestepSinusoid(aspectRatio, timeProjDim, true, 0))
	a := e.AspectRatio.Forward(b, ap, nil)
	b.Free(ap)
	cond := b.Concat(1, r2, a)
	nn.Free(b, r2, a)
	out := b.Binary(backend.Add, emb, cond)
	nn.Free(b, emb, cond)
	return out
}

// Release frees every embedder.
func (e *TimestepSizeEmbedding) Release(b backend.Backend) {
	e.Timestep.Release(b)
	if e.Resolution != nil {
		e.Resolution.Release(b)
		e.AspectRatio.Release(b)
	}
}

// AdaLayerNormSingle is diffusers' AdaLayerNormSingle (normalization.py):
// embedded = emb(t, resolution, aspect_ratio) [B, D] and the six
// modulation vectors of every block, linear(SiLU(embedded)) [B, 6·D].
type AdaLayerNormSingle struct {
	Emb    *TimestepSizeEmbedding
	Linear *nn.Linear
}

// NewAdaLayerNormSingle binds adaln_single.emb and adaln_single.linear.
func NewAdaLayerNormSingle(s *nn.Scope, dim int, additional bool) *AdaLayerNormSingle {
	return &AdaLayerNormSingle{
		Emb:    NewTimestepSizeEmbedding(s.Sub("emb"), dim, additional),
		Linear: nn.NewLinear(s, "linear", dim, 6*dim, true),
	}
}

// Forward returns (linear(SiLU(embedded)) [B, 6D], embedded [B, D]).
func (a *AdaLayerNormSingle) Forward(b backend.Backend, timesteps, resolution, aspectRatio []float64) (mod, embedded backend.Tensor) {
	embedded = a.Emb.Forward(b, timesteps, resolution, aspectRatio)
	act := b.Unary(backend.SiLU, embedded)
	mod = a.Linear.Forward(b, act)
	b.Free(act)
	return mod, embedded
}

// Release frees the weights.
func (a *AdaLayerNormSingle) Release(b backend.Backend) {
	a.Emb.Release(b)
	a.Linear.Release(b)
}

// TextProjection is PixArtAlphaTextProjection (embeddings.py) with
// act_fn "gelu_tanh": linear_2(GELU_tanh(linear_1(caption))), mapping the
// text encoder's width to the inner width.
type TextProjection struct {
	Linear1, Linear2 *nn.Linear
}

// NewTextProjection binds caption_projection.linear_1 (in → dim) and
// linear_2 (dim → dim).
func NewTextProjection(s *nn.Scope, in, dim int) *TextProjection {
	return &TextProjection{
		Linear1: nn.NewLinear(s, "linear_1", in, dim, true),
		Linear2: nn.NewLinear(s, "linear_2", dim, dim, true),
	}
}

// Forward projects x [B, M, in] to [B, M, dim].
func (t *TextProjection) Forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	h := t.Linear1.Forward(b, x)
	a := b.Unary(backend.GELUTanh, h)
	b.Free(h)
	out := t.Linear2.Forward(b, a)
	b.Free(a)
	return out
}

// Release frees the weights.
func (t *TextProjection) Release(b backend.Backend) {
	t.Linear1.Release(b)
	t.Linear2.Release(b)
}

// widen returns an F32 copy of a weight table [R, D] stored in any float
// encoding (Gather reads weights in their stored dtype and writes F32),
// so that it can enter elementwise ops, which take F32 activations.
func widen(b backend.Backend, w backend.Tensor) backend.Tensor {
	rows := w.Shape()[0]
	ids := make([]int32, rows)
	for i := range ids {
		ids[i] = int32(i)
	}
	return b.Gather(w, ids)
}
