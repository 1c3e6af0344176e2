package pipeline

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/rng"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// inpaintState is what the inpainting loop needs besides the latents
// (StableDiffusionInpaintPipeline, diffusers v0.30.3).
type inpaintState struct {
	// condition is the binarised mask [1, 1, H, W] (1 = repaint);
	// maskedImage the preprocessed image with the repaint region zeroed;
	// latentMask the mask at latent size [1, 1, h, w]; maskedLatents the
	// masked image's scaled VAE sample [1, C, h, w].
	condition, maskedImage, latentMask, maskedLatents *tensor.Host

	// unetExtra is [mask, masked-image latents] [1, 1+C, h, w] on the
	// device, concatenated after scale_model_input for 9-channel UNets.
	unetExtra backend.Tensor
	// For 4-channel UNets the known region is blended back after every
	// step: the image latents, the noise, the mask and 1 − mask.
	imageLatents, noise, keep, repaint backend.Tensor
}

// InpaintingUNet reports whether the UNet is an inpainting UNet: its input
// is the latents, the mask and the masked image's latents
// (in_channels = 2·latent_channels + 1, 9 for SD).
func (p *Pipeline) InpaintingUNet() bool {
	return p.UNet != nil && p.VAEConfig != nil && p.UNet.Config.InChannels == 2*p.VAEConfig.LatentChannels+1
}

// latentChannels is the number of channels of the denoised latents: the
// UNet's input channels, or the VAE's latent channels for an inpainting
// UNet (num_channels_latents of the inpainting pipeline).
func (p *Pipeline) latentChannels() int {
	if p.InpaintingUNet() {
		return p.VAEConfig.LatentChannels
	}
	return p.UNet.Config.InChannels
}

// binarizeMask is mask_processor.preprocess with do_binarize and
// do_normalize=False: 1 where the value is ≥ 0.5, else 0.
func binarizeMask(m *tensor.Host) *tensor.Host {
	out := tensor.New(m.Shape...)
	for i, v := range m.Data {
		if v >= 0.5 {
			out.Data[i] = 1
		}
	}
	return out
}

// maskImage is init_image · (mask_condition < 0.5): the repaint region
// set to 0 (mid-grey in [−1, 1]).
func maskImage(image, cond *tensor.Host) *tensor.Host {
	out := tensor.New(image.Shape...)
	plane := cond.Shape.Numel()
	for i, v := range image.Data {
		if cond.Data[i%plane] < 0.5 {
			out.Data[i] = v
		}
	}
	return out
}

// nearestDownsample is torch.nn.functional.interpolate(m, size=(h, w))
// with the default mode 'nearest' on [1, 1, H, W]: source index
// floor(dst · (in/out)) computed in float32, as PyTorch's nearest kernel.
func nearestDownsample(m *tensor.Host, h, w int) *tensor.Host {
	H, W := m.Shape[2], m.Shape[3]
	sy, sx := float32(H)/float32(h), float32(W)/float32(w)
	out := tensor.New(1, 1, h, w)
	for y := 0; y < h; y++ {
		iy := min(int(float32(y)*sy), H-1)
		for x := 0; x < w; x++ {
			ix := min(int(float32(x)*sx), W-1)
			out.Data[y*w+x] = m.Data[iy*W+ix]
		}
	}
	return out
}

// prepareInpaint is the inpainting part of prepareEdit:
// StableDiffusionInpaintPipeline.prepare_latents then prepare_mask_latents.
// Generator order: the init image's VAE sample (only for a 4-channel UNet
// or strength < 1), the noise, the masked image's VAE sample. Strength 1
// starts from noise · init_noise_sigma, else from
// add_noise(image_latents, noise, first kept timestep).
func (p *Pipeline) prepareInpaint(e *edit, req Request, st sched.Stepper[backend.Tensor], gen *rng.Torch, shape tensor.Shape) error {
	b := p.b
	sh := req.Mask.Shape
	img := e.image.Shape
	if sh.Rank() != 4 || sh[0] != 1 || sh[1] != 1 || sh[2] != img[2] || sh[3] != img[3] {
		return fmt.Errorf("pipeline: mask has shape %v; want [1, 1, %d, %d] like the init image (values in [0, 1], white = repaint; MaskFromPNG makes one)", sh, img[2], img[3])
	}
	ms := &inpaintState{condition: binarizeMask(req.Mask)}
	e.mask = ms
	ms.maskedImage = maskImage(e.image, ms.condition)
	ms.latentMask = nearestDownsample(ms.condition, shape[2], shape[3])

	nine := p.InpaintingUNet()
	strengthMax := e.strength == 1
	var err error
	if !nine || !strengthMax {
		if e.imageLatents, err = p.encodeSample(e, e.image, gen); err != nil {
			return err
		}
	}
	e.noise = e.drawNoise(req, gen, shape)
	if strengthMax {
		sigma := st.InitNoiseSigma()
		e.init = tensor.New(shape...)
		for i, v := range e.noise.Data {
			e.init.Data[i] = v * sigma
		}
	} else {
		e.init = addNoiseHost(st, e.imageLatents, e.noise, e.start)
	}
	if ms.maskedLatents, err = p.encodeSample(e, ms.maskedImage, gen); err != nil {
		return err
	}

	if nine {
		extra, err := concatChannels(ms.latentMask, ms.maskedLatents)
		if err != nil {
			return err
		}
		ms.unetExtra = b.Upload(extra)
	} else {
		keep := tensor.New(ms.latentMask.Shape...)
		for i, v := range ms.latentMask.Data {
			keep.Data[i] = 1 - v
		}
		ms.imageLatents = b.Upload(e.imageLatents)
		ms.noise = b.Upload(e.noise)
		ms.repaint = b.Upload(ms.latentMask)
		ms.keep = b.Upload(keep)
	}
	return b.Err()
}

// concatChannels concatenates [1, Ca, h, w] and [1, Cb, h, w] along
// channels on the host.
func concatChannels(a, c *tensor.Host) (*tensor.Host, error) {
	if a.Shape[0] != 1 || c.Shape[0] != 1 || a.Shape[2] != c.Shape[2] || a.Shape[3] != c.Shape[3] {
		return nil, fmt.Errorf("pipeline: cannot concatenate %v and %v along channels", a.Shape, c.Shape)
	}
	out := tensor.New(1, a.Shape[1]+c.Shape[1], a.Shape[2], a.Shape[3])
	copy(out.Data, a.Data)
	copy(out.Data[len(a.Data):], c.Data)
	return out, nil
}

// unetInput returns the UNet input for the scaled latents x [B, C, h, w]:
// x itself, or for an inpainting UNet
// cat([x, mask, masked_image_latents], dim=1) with the mask and the
// masked image's latents repeated over the batch (the inpainting
// pipeline's denoising loop). x is consumed. nil e is text-to-image.
func (e *edit) unetInput(b backend.Backend, x backend.Tensor) backend.Tensor {
	if e == nil || e.mask == nil || e.mask.unetExtra == nil {
		return x
	}
	extra := e.mask.unetExtra
	n := x.Shape()[0]
	if n > 1 {
		reps := make([]backend.Tensor, n)
		for i := range reps {
			reps[i] = extra
		}
		extra = b.Concat(0, reps...)
	}
	out := b.Concat(1, x, extra)
	b.Free(x)
	if extra != e.mask.unetExtra {
		b.Free(extra)
	}
	return out
}

// blendKnown is the 4-channel inpainting blend after the scheduler step of
// evaluation i: init_latents_proper = image_latents, noised with
// add_noise to the next timestep unless i is the last evaluation, and
// latents = (1 − mask)·init_latents_proper + mask·latents
// (StableDiffusionInpaintPipeline.__call__, num_channels_unet == 4). x is
// consumed. nil e, image-to-image and 9-channel UNets return x.
func (e *edit) blendKnown(b backend.Backend, st sched.Stepper[backend.Tensor], x backend.Tensor, i int) backend.Tensor {
	if e == nil || e.mask == nil || e.mask.keep == nil {
		return x
	}
	ms := e.mask
	var proper backend.Tensor
	if i < e.total-1 {
		proper = st.AddNoise(ms.imageLatents, ms.noise, i+1)
	} else {
		proper = b.Reshape(ms.imageLatents, ms.imageLatents.Shape()...)
	}
	kept := b.Binary(backend.Mul, ms.keep, proper)
	b.Free(proper)
	fresh := b.Binary(backend.Mul, ms.repaint, x)
	b.Free(x)
	out := b.Binary(backend.Add, kept, fresh)
	nn.Free(b, kept, fresh)
	return out
}

// release frees the device tensors; nil is a no-op.
func (s *inpaintState) release(b backend.Backend) {
	if s == nil {
		return
	}
	nn.Free(b, s.unetExtra, s.imageLatents, s.noise, s.keep, s.repaint)
	s.unetExtra, s.imageLatents, s.noise, s.keep, s.repaint = nil, nil, nil, nil, nil
}
