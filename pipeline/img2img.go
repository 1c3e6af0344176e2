package pipeline

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/models/vae"
	"github.com/tgate-web/tgate/rng"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// Class names of model_index.json of the editing pipelines; both load as
// StableDiffusion (their folders hold the same components).
const (
	ClassStableDiffusionImg2Img = "StableDiffusionImg2ImgPipeline"
	ClassStableDiffusionInpaint = "StableDiffusionInpaintPipeline"
)

// EditOptions turn a Request into image-to-image
// (StableDiffusionImg2ImgPipeline; for SD-XL
// StableDiffusionXLImg2ImgPipeline) or inpainting
// (StableDiffusionInpaintPipeline; StableDiffusionXLInpaintPipeline),
// diffusers v0.30.3. See docs/editing.md.
//
// With an init image, Request.Latents (when given) is the noise ε that
// the image latents are noised with, in place of that generator draw;
// every other draw stays in diffusers' order. This is diffusers' own
// meaning of latents= for inpainting at strength 1 (noise ·
// init_noise_sigma); at strength < 1 diffusers would start from that noise
// alone, ignoring the image, and the img2img pipeline takes no latents.
type EditOptions struct {
	// InitImage is the image to edit, [1, 3, H, W] with values in [0, 1]
	// (ImageFromPNG). Its size is the output size: Width and Height must
	// be 0 or equal to it (a mismatch is refused, not resized), and H and W
	// must be multiples of 8.
	InitImage *tensor.Host
	// Mask selects inpainting: [1, 1, H, W] in [0, 1] (MaskFromPNG),
	// white = repaint, binarised at 0.5. An inpainting UNet (9 input
	// channels) requires one; other models blend the known region back
	// after every step.
	Mask *tensor.Host
	// Strength in (0, 1] is how much of the schedule runs: the first
	// steps − int(steps·strength) steps are skipped and the image latents
	// are noised to the first timestep kept. 0 takes the pipeline default
	// (Pipeline.DefaultStrength: 0.8 image-to-image, 1.0 inpainting, where
	// 1.0 starts from pure noise; SD-XL 0.3 and 0.9999).
	Strength float64
}

// Default strengths of the SD 1.x/2.x editing pipelines (diffusers v0.30.3
// StableDiffusionImg2ImgPipeline.__call__ and
// StableDiffusionInpaintPipeline.__call__); SD-XL's are in sdxl_edit.go.
const (
	DefaultImg2ImgStrength = 0.8
	DefaultInpaintStrength = 1.0
)

// edit is the prepared state of an image-to-image or inpainting request:
// where the loop starts, the latents it starts from and, for inpainting,
// what the UNet input and the known-region blending need. The host tensors
// are the intermediate values of diffusers' preparation, kept for
// inspection (they are small next to the models).
type edit struct {
	// strength is the resolved strength; tStart the number of skipped
	// inference steps and start the index of the first evaluation
	// (t_start · order).
	strength      float64
	tStart, start int
	// total is the number of evaluations of the full schedule.
	total int

	// image is the preprocessed init image [1, 3, H, W] in [−1, 1].
	image *tensor.Host
	// encodes records each VAE encode: the posterior mean and std.
	encodes []encodeRecord
	// draws are the generator's draws made while preparing, in order.
	draws []*tensor.Host
	// imageLatents is scaling_factor · VAE sample of the init image (nil
	// when diffusers does not encode it); noise is the noise ε; init are
	// the latents the loop starts from.
	imageLatents, noise, init *tensor.Host

	// mask is the inpainting state (nil for image-to-image).
	mask *inpaintState
}

// encodeRecord is one vae.encode call's posterior.
type encodeRecord struct {
	mean, std *tensor.Host
}

// isEdit reports whether req asks for image-to-image or inpainting, or the
// model can only inpaint.
func (p *Pipeline) isEdit(req Request) bool {
	return req.InitImage != nil || req.Mask != nil || req.Strength != 0 || p.InpaintingUNet()
}

// editSize returns the height and width Generate should use: the init
// image's size when one is given (a Width or Height that differs is an
// error; the image is not resized), else the request's.
func editSize(req Request) (height, width int, err error) {
	if req.InitImage == nil {
		return req.Height, req.Width, nil
	}
	sh := req.InitImage.Shape
	if sh.Rank() != 4 || sh[0] != 1 || sh[1] != 3 {
		return 0, 0, fmt.Errorf("pipeline: init image has shape %v; want [1, 3, H, W] with values in [0, 1] (ImageFromPNG makes one)", sh)
	}
	h, w := sh[2], sh[3]
	if (req.Height != 0 && req.Height != h) || (req.Width != 0 && req.Width != w) {
		return 0, 0, fmt.Errorf("pipeline: the init image is %dx%d but the request asks for %dx%d; resize the image (or leave Width and Height 0)", w, h, req.Width, req.Height)
	}
	return h, w, nil
}

// resolveStrength returns the request's strength, or the pipeline's
// default (DefaultStrength) when it is 0, checked to lie in (0, 1].
func (p *Pipeline) resolveStrength(req Request) (float64, error) {
	s := req.Strength
	if s == 0 {
		s = p.DefaultStrength(req.Mask != nil)
	}
	if !(s > 0 && s <= 1) {
		return 0, fmt.Errorf("pipeline: strength %g is outside (0, 1]", req.Strength)
	}
	return s, nil
}

// StrengthStart is get_timesteps of the img2img and inpainting pipelines,
// the number of the schedule's steps that strength skips:
// init_timestep = min(int(steps · strength), steps) and
// t_start = max(steps − init_timestep, 0), with the float64 product Python
// computes (int(10 · 0.3) = 3).
func StrengthStart(steps int, strength float64) (tStart int) {
	init := int(float64(steps) * strength)
	if init > steps {
		init = steps
	}
	return max(steps-init, 0)
}

// prepareEdit prepares an image-to-image or inpainting request after the
// scheduler's SetTimesteps: the start index, the VAE samples and the
// initial latents, drawing from gen in diffusers' order
// (StableDiffusionImg2ImgPipeline.prepare_latents; for inpainting
// StableDiffusionInpaintPipeline.prepare_latents then
// prepare_mask_latents). SD-XL's StableDiffusionXLImg2ImgPipeline and
// StableDiffusionXLInpaintPipeline prepare the same way (a posterior
// sample, scaling_factor, then add_noise; latents_mean/latents_std are
// refused at load), with their own default strengths. It returns nil for
// a text-to-image request.
func (p *Pipeline) prepareEdit(req Request, st sched.Stepper[backend.Tensor], gen *rng.Torch, steps int, shape tensor.Shape) (*edit, error) {
	if !p.isEdit(req) {
		return nil, nil
	}
	switch {
	case p.InpaintingUNet() && req.Mask == nil:
		return nil, fmt.Errorf("pipeline: %s has an inpainting UNet (%d input channels): give an init image and a mask (Request.InitImage, Request.Mask)", p.Dir, p.UNet.Config.InChannels)
	case req.InitImage == nil && req.Mask != nil:
		return nil, fmt.Errorf("pipeline: a mask needs an init image (Request.InitImage)")
	case req.InitImage == nil:
		return nil, fmt.Errorf("pipeline: strength %g needs an init image (Request.InitImage)", req.Strength)
	case p.Kind != StableDiffusion && p.Kind != StableDiffusionXL:
		return nil, fmt.Errorf("pipeline: image-to-image and inpainting need a %s or %s model, not %s", ClassStableDiffusion, ClassStableDiffusionXL, p.Kind)
	case !p.InpaintingUNet() && p.UNet.Config.InChannels != p.VAEConfig.LatentChannels:
		return nil, fmt.Errorf("pipeline: the UNet takes %d input channels; image-to-image needs %d (the VAE's latent channels) or, for inpainting, %d", p.UNet.Config.InChannels, p.VAEConfig.LatentChannels, 2*p.VAEConfig.LatentChannels+1)
	}
	strength, err := p.resolveStrength(req)
	if err != nil {
		return nil, err
	}
	order := max(st.Order(), 1)
	e := &edit{strength: strength, tStart: StrengthStart(steps, strength), total: len(st.Timesteps())}
	e.start = e.tStart * order
	if steps-e.tStart < 1 || e.start >= e.total {
		return nil, fmt.Errorf("pipeline: strength %g leaves no denoising step of %d (int(steps·strength) = %d); raise the strength or the steps", strength, steps, steps-e.tStart)
	}
	if req.Latents != nil && !req.Latents.Shape.Equal(shape) {
		return nil, fmt.Errorf("pipeline: given latents (the noise) have shape %v; a %dx%d image needs %v", req.Latents.Shape, shape[3]*p.VAEScaleFactor(), shape[2]*p.VAEScaleFactor(), shape)
	}
	e.image = preprocessImage(req.InitImage)
	if req.Mask != nil {
		return e, p.prepareInpaint(e, req, st, gen, shape)
	}
	// StableDiffusionImg2ImgPipeline.prepare_latents: the image's VAE
	// sample, then the noise, then add_noise at the first timestep kept.
	if e.imageLatents, err = p.encodeSample(e, e.image, gen); err != nil {
		return nil, err
	}
	e.noise = e.drawNoise(req, gen, shape)
	e.init = addNoiseHost(st, e.imageLatents, e.noise, e.start)
	return e, nil
}

// drawNoise returns the request's Latents as the noise ε, or the next
// standard-normal draw of gen (randn_tensor).
func (e *edit) drawNoise(req Request, gen *rng.Torch, shape tensor.Shape) *tensor.Host {
	if req.Latents != nil {
		return &tensor.Host{Shape: shape.Clone(), Data: append([]float32(nil), req.Latents.Data...)}
	}
	n := &tensor.Host{Shape: shape.Clone(), Data: gen.Randn(shape.Numel())}
	e.draws = append(e.draws, n)
	return n
}

// preprocessImage is VaeImageProcessor.preprocess for an image already in
// [0, 1] at a size that is a multiple of the VAE scale factor: 2·x − 1
// (normalize), in float32.
func preprocessImage(img *tensor.Host) *tensor.Host {
	out := tensor.New(img.Shape...)
	for i, v := range img.Data {
		out.Data[i] = float32(2*v) - 1
	}
	return out
}

// encodeSample returns scaling_factor · vae.encode(x).latent_dist.sample(
// generator): mean + std · ε with ε the next draw of gen
// (DiagonalGaussianDistribution.sample in vae.py; retrieve_latents and
// _encode_vae_image of the diffusers pipelines). The posterior and the
// draw are recorded in e.
func (p *Pipeline) encodeSample(e *edit, x *tensor.Host, gen *rng.Torch) (*tensor.Host, error) {
	enc, err := p.vaeEncoder()
	if err != nil {
		return nil, err
	}
	b := p.b
	in := b.Upload(x)
	dist, err := enc.Encode(b, in)
	b.Free(in)
	if err != nil {
		return nil, err
	}
	defer dist.Release(b)
	stdT := dist.Std(b)
	mean, err := b.ReadBack(dist.Mean)
	if err != nil {
		b.Free(stdT)
		return nil, err
	}
	std, err := b.ReadBack(stdT)
	b.Free(stdT)
	if err != nil {
		return nil, err
	}
	e.encodes = append(e.encodes, encodeRecord{mean: mean, std: std})
	eps := &tensor.Host{Shape: mean.Shape.Clone(), Data: gen.Randn(mean.Shape.Numel())}
	e.draws = append(e.draws, eps)
	sf := float32(p.VAEConfig.ScalingFactor)
	out := tensor.New(mean.Shape...)
	for i, m := range mean.Data {
		out.Data[i] = sf * (m + float32(std.Data[i]*eps.Data[i]))
	}
	return out, nil
}

// addNoiseHost is scheduler.add_noise(x, noise, timesteps[i]) on host
// values: a·x + b·noise with the scheduler's coefficients at evaluation i
// (for the σ schedulers, index i as set_begin_index makes it).
func addNoiseHost(st sched.Scheduler, x, noise *tensor.Host, i int) *tensor.Host {
	a, c := st.NoiseCoeffs(i)
	out := tensor.New(x.Shape...)
	for k, v := range x.Data {
		out.Data[k] = float32(a*v) + float32(c*noise.Data[k])
	}
	return out
}

// vaeEncoder returns the AutoencoderKL encoder, binding its weights from
// the folder's vae/ on first use (text-to-image never loads it).
func (p *Pipeline) vaeEncoder() (*vae.Encoder, error) {
	if p.vaeEnc != nil {
		return p.vaeEnc, nil
	}
	if p.folder == nil {
		return nil, fmt.Errorf("pipeline: %s has no vae/ folder to load the VAE encoder from", p.Dir)
	}
	c, err := hub.OpenComponentIn(hub.Sub(p.folder, "vae"), p.variants)
	if err != nil {
		return nil, fmt.Errorf("pipeline: the VAE encoder (image-to-image, inpainting): %w", err)
	}
	enc, err := vae.LoadEncoder(p.b, c, p.VAEConfig)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: VAE encoder: %w", c.Dir, err)
	}
	p.comps = append(p.comps, c)
	p.vaeEnc = enc
	return enc, nil
}

// ReleaseVAEEncoder frees the VAE encoder's weights; the next
// image-to-image or inpainting request binds them again.
func (p *Pipeline) ReleaseVAEEncoder() {
	if p.vaeEnc != nil {
		p.vaeEnc.Release(p.b)
		p.vaeEnc = nil
	}
}

// release frees the device tensors of the edit state; nil is a no-op.
func (e *edit) release(b backend.Backend) {
	if e == nil {
		return
	}
	e.mask.release(b)
}

// first returns the index of the first evaluation that runs (0 for nil,
// text-to-image).
func (e *edit) first() int {
	if e == nil {
		return 0
	}
	return e.start
}
