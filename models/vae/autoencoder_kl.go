package vae

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// Decoder is the decoding half of AutoencoderKL: post_quant_conv then the
// decoder network (autoencoder_kl.py _decode). The pipeline divides the
// latents by scaling_factor (and adds shift_factor) before Decode.
type Decoder struct {
	Config Config

	postQuant *nn.Conv2d // nil when use_post_quant_conv is false
	net       *decoderNet
	weights   []backend.Tensor
}

// NewDecoder binds post_quant_conv.* and decoder.* from s, the root of the
// VAE component; the encoder's weights are not loaded. A missing tensor or
// one whose shape disagrees with cfg fails with an error naming it, and the
// weights bound so far are freed.
func NewDecoder(s *nn.Scope, cfg *Config) (*Decoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	n0 := len(s.Params())
	d := &Decoder{Config: *cfg}
	if cfg.UsePostQuantConv {
		d.postQuant = nn.NewConv2d(s, "post_quant_conv", cfg.LatentChannels, cfg.LatentChannels, 1, 1, 0, true)
	}
	d.net = newDecoderNet(s.Sub("decoder"), cfg)
	d.weights = collect(s, n0)
	if err := s.Err(); err != nil {
		d.Release(s.Backend())
		return nil, fmt.Errorf("vae decoder: %w", err)
	}
	return d, nil
}

// LoadDecoder is NewDecoder on a fresh root scope over src.
func LoadDecoder(b backend.Backend, src nn.Source, cfg *Config) (*Decoder, error) {
	return NewDecoder(nn.NewScope(b, src), cfg)
}

// Decode maps z [B, latent_channels, h, w] (already divided by
// scaling_factor) to an image [B, out_channels, h·f, w·f] with values
// nominally in [−1, 1], f = 2^(len(block_out_channels)−1). z is not freed.
func (d *Decoder) Decode(b backend.Backend, z backend.Tensor) (backend.Tensor, error) {
	if d.weights == nil {
		return nil, fmt.Errorf("vae: the decoder's weights were released")
	}
	if err := checkInput("latents", z, d.Config.LatentChannels); err != nil {
		return nil, err
	}
	h := z
	if d.postQuant != nil {
		h = d.postQuant.Forward(b, z)
	}
	out := d.net.forward(b, h)
	if h != z {
		b.Free(h)
	}
	if err := b.Err(); err != nil {
		b.Free(out)
		return nil, fmt.Errorf("vae decode: %w", err)
	}
	return out, nil
}

// Release frees every weight of the decoder.
func (d *Decoder) Release(b backend.Backend) {
	nn.Free(b, d.weights...)
	d.weights = nil
}

// Encoder is the encoding half of AutoencoderKL: the encoder network then
// quant_conv (autoencoder_kl.py _encode).
type Encoder struct {
	Config Config

	net     *encoderNet
	quant   *nn.Conv2d // nil when use_quant_conv is false
	weights []backend.Tensor
}

// NewEncoder binds encoder.* and quant_conv.* from s, the root of the VAE
// component.
func NewEncoder(s *nn.Scope, cfg *Config) (*Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	n0 := len(s.Params())
	e := &Encoder{Config: *cfg, net: newEncoderNet(s.Sub("encoder"), cfg)}
	if cfg.UseQuantConv {
		e.quant = nn.NewConv2d(s, "quant_conv", 2*cfg.LatentChannels, 2*cfg.LatentChannels, 1, 1, 0, true)
	}
	e.weights = collect(s, n0)
	if err := s.Err(); err != nil {
		e.Release(s.Backend())
		return nil, fmt.Errorf("vae encoder: %w", err)
	}
	return e, nil
}

// LoadEncoder is NewEncoder on a fresh root scope over src.
func LoadEncoder(b backend.Backend, src nn.Source, cfg *Config) (*Encoder, error) {
	return NewEncoder(nn.NewScope(b, src), cfg)
}

// LatentDist is DiagonalGaussianDistribution (vae.py): the moments split
// along channels into mean and logvar, logvar clamped to [−30, 20].
type LatentDist struct {
	Mean, LogVar backend.Tensor // [B, latent_channels, h, w]
}

// Std returns exp(0.5·logvar), a new tensor.
func (l *LatentDist) Std(b backend.Backend) backend.Tensor {
	half := b.Affine(l.LogVar, 0.5, 0)
	s := b.Unary(backend.Exp, half)
	b.Free(half)
	return s
}

// Release frees the mean and log-variance.
func (l *LatentDist) Release(b backend.Backend) {
	nn.Free(b, l.Mean, l.LogVar)
	l.Mean, l.LogVar = nil, nil
}

// Encode maps an image x [B, in_channels, H, W] with values in [−1, 1] to
// the posterior over latents (before scaling_factor). x is not freed. H and
// W should be multiples of 2^(len(block_out_channels)−1).
func (e *Encoder) Encode(b backend.Backend, x backend.Tensor) (*LatentDist, error) {
	if e.weights == nil {
		return nil, fmt.Errorf("vae: the encoder's weights were released")
	}
	if err := checkInput("image", x, e.Config.InChannels); err != nil {
		return nil, err
	}
	m := e.net.forward(b, x)
	if e.quant != nil {
		q := e.quant.Forward(b, m)
		b.Free(m)
		m = q
	}
	parts := backend.Chunk(b, m, 1, 2)
	b.Free(m)
	lv := b.Clamp(parts[1], -30, 20)
	b.Free(parts[1])
	dist := &LatentDist{Mean: parts[0], LogVar: lv}
	if err := b.Err(); err != nil {
		dist.Release(b)
		return nil, fmt.Errorf("vae encode: %w", err)
	}
	return dist, nil
}

// Release frees every weight of the encoder.
func (e *Encoder) Release(b backend.Backend) {
	nn.Free(b, e.weights...)
	e.weights = nil
}

// collect returns the tensors bound on s's root since it held n0 params.
func collect(s *nn.Scope, n0 int) []backend.Tensor {
	ps := s.Params()[n0:]
	out := make([]backend.Tensor, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Tensor)
	}
	return out
}

// checkInput checks that x is [B, channels, H, W] with positive sizes.
func checkInput(what string, x backend.Tensor, channels int) error {
	sh := x.Shape()
	if len(sh) != 4 || sh[1] != channels || sh[0] < 1 || sh[2] < 1 || sh[3] < 1 {
		return fmt.Errorf("vae: %s has shape %v; want [B, %d, H, W]", what, sh, channels)
	}
	return nil
}
