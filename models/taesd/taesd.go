package taesd

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// opKind is the kind of one element of taesd.py's nn.Sequential.
type opKind int

const (
	opClamp    opKind = iota // Clamp: tanh(x/3)·3
	opConv                   // conv(in, out): 3×3, padding 1
	opReLU                   // nn.ReLU
	opBlock                  // Block(64, 64)
	opUpsample               // nn.Upsample(scale_factor=2), nearest
)

// op is one element of the Sequential.
type op struct {
	kind    opKind
	in, out int
	stride  int
	bias    bool
	gn      bool // Block with use_midblock_gn
}

func conv(in, out, stride int, bias bool) op {
	return op{kind: opConv, in: in, out: out, stride: stride, bias: bias}
}

func block(gn bool) op { return op{kind: opBlock, gn: gn} }

func blocks(n int, gn bool) []op {
	out := make([]op, n)
	for i := range out {
		out[i] = block(gn)
	}
	return out
}

var (
	clamp    = op{kind: opClamp}
	relu     = op{kind: opReLU}
	upsample = op{kind: opUpsample}
)

// decoderPlan is taesd.py's Decoder(latent_channels, use_midblock_gn):
//
//	Clamp, conv(C, 64), ReLU,
//	3×Block, Upsample, conv(64, 64, bias=False),   (×3; the first three Blocks get the GN branch)
//	Block, conv(64, 3).
func decoderPlan(cfg Config) []op {
	p := []op{clamp, conv(cfg.LatentChannels, width, 1, true), relu}
	for i := 0; i < 3; i++ {
		p = append(p, blocks(3, cfg.MidBlockGN && i == 0)...)
		p = append(p, upsample, conv(width, width, 1, false))
	}
	return append(p, block(false), conv(width, 3, 1, true))
}

// encoderPlan is taesd.py's Encoder(latent_channels, use_midblock_gn):
//
//	conv(3, 64), Block,
//	conv(64, 64, stride=2, bias=False), 3×Block,   (×3; the last three Blocks get the GN branch)
//	conv(64, C)
//
// or, with Downscale32, F32Encoder: conv(3, 32, stride=2), ReLU,
// conv(32, 64, stride=2), ReLU, Block, then the same.
func encoderPlan(cfg Config) []op {
	var p []op
	if cfg.Downscale32 {
		p = []op{conv(3, width/2, 2, true), relu, conv(width/2, width, 2, true), relu, block(false)}
	} else {
		p = []op{conv(3, width, 1, true), block(false)}
	}
	for i := 0; i < 3; i++ {
		p = append(p, conv(width, width, 2, false))
		p = append(p, blocks(3, cfg.MidBlockGN && i == 2)...)
	}
	return append(p, conv(width, cfg.LatentChannels, 1, true))
}

// tinyBlock is taesd.py's Block(64, 64[, use_midblock_gn]) (diffusers'
// AutoencoderTinyBlock):
//
//	x = x + pool(x)                      (TAEF2 only: conv1×1 64→256, GroupNorm(4), ReLU, conv1×1 256→64)
//	out = ReLU(conv.4(ReLU(conv.2(ReLU(conv.0(x))))) + x)
//
// The skip is the identity (64 → 64 channels).
type tinyBlock struct {
	c0, c2, c4 *nn.Conv2d
	pool0      *nn.Conv2d // nil without the GN branch
	poolNorm   *nn.GroupNorm
	pool3      *nn.Conv2d
}

// poolGroups and poolEps are the GroupNorm of TAEF2's pool branch
// (nn.GroupNorm(4, 256), default eps).
const (
	poolGroups = 4
	poolEps    = 1e-5
)

func newTinyBlock(s *nn.Scope, gn bool) *tinyBlock {
	t := &tinyBlock{
		c0: nn.NewConv2d(s, "conv.0", width, width, 3, 1, 1, true),
		c2: nn.NewConv2d(s, "conv.2", width, width, 3, 1, 1, true),
		c4: nn.NewConv2d(s, "conv.4", width, width, 3, 1, 1, true),
	}
	if gn {
		t.pool0 = nn.NewConv2d(s, "pool.0", width, 4*width, 1, 1, 0, false)
		t.poolNorm = nn.NewGroupNorm(s, "pool.1", poolGroups, 4*width, poolEps)
		t.pool3 = nn.NewConv2d(s, "pool.3", 4*width, width, 1, 1, 0, false)
	}
	return t
}

// forward returns the block's output; x is not freed.
func (t *tinyBlock) forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	in := x
	if t.pool0 != nil {
		p := t.pool0.Forward(b, x)
		n := t.poolNorm.Forward(b, p, false)
		b.Free(p)
		r := b.Unary(backend.ReLU, n)
		b.Free(n)
		p = t.pool3.Forward(b, r)
		b.Free(r)
		in = b.Binary(backend.Add, x, p)
		b.Free(p)
	}
	h := t.c0.Forward(b, in)
	r := b.Unary(backend.ReLU, h)
	b.Free(h)
	h = t.c2.Forward(b, r)
	b.Free(r)
	r = b.Unary(backend.ReLU, h)
	b.Free(h)
	h = t.c4.Forward(b, r)
	b.Free(r)
	sum := b.Binary(backend.Add, h, in)
	b.Free(h)
	if in != x {
		b.Free(in)
	}
	out := b.Unary(backend.ReLU, sum)
	b.Free(sum)
	return out
}

// layer is one bound element of the Sequential.
type layer struct {
	op    op
	conv  *nn.Conv2d
	block *tinyBlock
}

// sequential runs a bound plan.
type sequential struct {
	layers  []layer
	weights []backend.Tensor
}

// bindSequential binds every element of plan that has parameters; name(i)
// is the key prefix of element i under s.
func bindSequential(s *nn.Scope, plan []op, name func(i int) string) *sequential {
	n0 := len(s.Params())
	seq := &sequential{}
	for i, o := range plan {
		l := layer{op: o}
		switch o.kind {
		case opConv:
			l.conv = nn.NewConv2d(s, name(i), o.in, o.out, 3, o.stride, 1, o.bias)
		case opBlock:
			l.block = newTinyBlock(s.Sub(name(i)), o.gn)
		}
		seq.layers = append(seq.layers, l)
	}
	for _, p := range s.Params()[n0:] {
		seq.weights = append(seq.weights, p.Tensor)
	}
	return seq
}

// forward runs the layers on x (not freed) and returns a new tensor.
func (q *sequential) forward(b backend.Backend, x backend.Tensor) backend.Tensor {
	h := x
	for _, l := range q.layers {
		var next backend.Tensor
		switch l.op.kind {
		case opClamp:
			t := b.Affine(h, 1.0/3, 0)
			u := b.Unary(backend.Tanh, t)
			b.Free(t)
			next = b.Affine(u, 3, 0)
			b.Free(u)
		case opConv:
			next = l.conv.Forward(b, h)
		case opReLU:
			next = b.Unary(backend.ReLU, h)
		case opBlock:
			next = l.block.forward(b, h)
		case opUpsample:
			sh := h.Shape()
			next = b.ResizeNearest(h, 2*sh[2], 2*sh[3])
		}
		if h != x {
			b.Free(h)
		}
		h = next
	}
	return h
}

func (q *sequential) release(b backend.Backend) {
	nn.Free(b, q.weights...)
	q.weights = nil
}

// Decoder is a TAESD decoder.
type Decoder struct {
	Config Config
	seq    *sequential
}

// NewDecoder binds a decoder described by cfg from s, the root of the
// checkpoint. A missing tensor or a shape that disagrees with cfg fails
// with an error naming the tensor and both shapes; the weights bound so
// far are freed.
func NewDecoder(s *nn.Scope, cfg Config) (*Decoder, error) {
	if cfg.LatentChannels < 1 {
		return nil, fmt.Errorf("taesd: latent channels %d; must be positive", cfg.LatentChannels)
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	plan := decoderPlan(cfg)
	if plan[0].kind != opClamp {
		panic("taesd: decoder plan must start with the Clamp")
	}
	seq := bindSequential(s, plan, func(i int) string {
		if cfg.Layout == Diffusers {
			return fmt.Sprintf("decoder.layers.%d", i-1)
		}
		return fmt.Sprint(i)
	})
	if err := s.Err(); err != nil {
		seq.release(s.Backend())
		return nil, fmt.Errorf("taesd decoder (%v layout): %w", cfg.Layout, err)
	}
	return &Decoder{Config: cfg, seq: seq}, nil
}

// LoadDecoder detects the decoder's layout and latent channels from src's
// keys and binds it onto b.
func LoadDecoder(b backend.Backend, src nn.Source) (*Decoder, error) {
	cfg, err := DetectDecoder(src)
	if err != nil {
		return nil, err
	}
	return NewDecoder(nn.NewScope(b, src), cfg)
}

// Decode maps raw UNet latents z [B, C, h, w] (no scaling factor) to an
// image [B, 3, 8h, 8w] nominally in [0, 1], not clamped (taesd.py
// Decoder). diffusers' DecoderTiny returns 2·out − 1 instead. z is not
// freed.
func (d *Decoder) Decode(b backend.Backend, z backend.Tensor) (backend.Tensor, error) {
	if d.seq.weights == nil {
		return nil, fmt.Errorf("taesd: the decoder's weights were released")
	}
	if sh := z.Shape(); len(sh) != 4 || sh[1] != d.Config.LatentChannels || sh[0] < 1 || sh[2] < 1 || sh[3] < 1 {
		return nil, fmt.Errorf("taesd: latents have shape %v; want [B, %d, h, w]", sh, d.Config.LatentChannels)
	}
	out := d.seq.forward(b, z)
	if err := b.Err(); err != nil {
		b.Free(out)
		return nil, fmt.Errorf("taesd decode: %w", err)
	}
	return out, nil
}

// Release frees the decoder's weights.
func (d *Decoder) Release(b backend.Backend) { d.seq.release(b) }

// Encoder is a TAESD encoder.
type Encoder struct {
	Config Config
	seq    *sequential
}

// NewEncoder binds an encoder described by cfg from s, the root of the
// checkpoint.
func NewEncoder(s *nn.Scope, cfg Config) (*Encoder, error) {
	if cfg.LatentChannels < 1 {
		return nil, fmt.Errorf("taesd: latent channels %d; must be positive", cfg.LatentChannels)
	}
	if cfg.Downscale32 && cfg.Layout == Diffusers {
		return nil, fmt.Errorf("taesd: AutoencoderTiny has no 32× encoder")
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	seq := bindSequential(s, encoderPlan(cfg), func(i int) string {
		if cfg.Layout == Diffusers {
			return fmt.Sprintf("encoder.layers.%d", i)
		}
		return fmt.Sprint(i)
	})
	if err := s.Err(); err != nil {
		seq.release(s.Backend())
		return nil, fmt.Errorf("taesd encoder (%v layout): %w", cfg.Layout, err)
	}
	return &Encoder{Config: cfg, seq: seq}, nil
}

// LoadEncoder detects the encoder's layout, variant and latent channels
// from src's keys and binds it onto b.
func LoadEncoder(b backend.Backend, src nn.Source) (*Encoder, error) {
	cfg, err := DetectEncoder(src)
	if err != nil {
		return nil, err
	}
	return NewEncoder(nn.NewScope(b, src), cfg)
}

// Factor is the encoder's spatial downscale (8, or 32 for F32Encoder).
func (e *Encoder) Factor() int {
	if e.Config.Downscale32 {
		return 32
	}
	return 8
}

// Encode maps an image x [B, 3, H, W] with values in [0, 1] to raw latents
// [B, C, H/f, W/f] (taesd.py Encoder; diffusers' EncoderTiny takes [−1, 1]
// and maps it to [0, 1] first). x is not freed.
func (e *Encoder) Encode(b backend.Backend, x backend.Tensor) (backend.Tensor, error) {
	if e.seq.weights == nil {
		return nil, fmt.Errorf("taesd: the encoder's weights were released")
	}
	if sh := x.Shape(); len(sh) != 4 || sh[1] != 3 || sh[0] < 1 || sh[2] < 1 || sh[3] < 1 {
		return nil, fmt.Errorf("taesd: image has shape %v; want [B, 3, H, W]", sh)
	}
	out := e.seq.forward(b, x)
	if err := b.Err(); err != nil {
		b.Free(out)
		return nil, fmt.Errorf("taesd encode: %w", err)
	}
	return out, nil
}

// Release frees the encoder's weights.
func (e *Encoder) Release(b backend.Backend) { e.seq.release(b) }
