// Package pipeline is text-to-image generation with the Stable Diffusion
// family: diffusers' StableDiffusionPipeline (classifier-free guidance,
// negative prompt, guidance_rescale) and LatentConsistencyModelPipeline
// (guidance through the UNet's guidance embedding, batch 1), and
// StableDiffusionXLPipeline (two text encoders, pooled embeddings and
// micro-conditioning; sdxl*.go, with tgate/SDXL.py's T-GATE), with T-GATE
// (package gate) built into the denoising loop, progress reports and
// cancellation. It runs on any backend.Backend.
//
// The loop follows diffusers v0.30.3 pipeline_stable_diffusion.py and
// pipeline_latent_consistency_text2img.py, and with T-GATE the loop of the
// original tgate/SD.py (see ../shared/spec/SD_SEMANTICS.md §8.9).
package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/lora"
	"github.com/tgate-web/tgate/models/clip"
	"github.com/tgate-web/tgate/models/taesd"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/models/vae"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tokenizer"
)

// Kind is the denoising loop a model folder's model_index.json selects.
type Kind int

const (
	// StableDiffusion is StableDiffusionPipeline: classifier-free guidance
	// with a negative prompt.
	StableDiffusion Kind = iota
	// LatentConsistency is LatentConsistencyModelPipeline: no guidance
	// batch; the guidance scale enters through the UNet's guidance
	// embedding and the last step's denoised sample is the result.
	LatentConsistency
	// StableDiffusionXL is StableDiffusionXLPipeline: the SD loop with two
	// text encoders, pooled text embeddings and micro-conditioning.
	StableDiffusionXL
	// PixArtAlpha and PixArtSigma are PixArtAlphaPipeline and
	// PixArtSigmaPipeline: a T5 text encoder and the PixArt transformer
	// (pixart.go).
	PixArtAlpha
	PixArtSigma
)

// Class names of model_index.json that select a Kind.
const (
	ClassStableDiffusion   = "StableDiffusionPipeline"
	ClassLatentConsistency = "LatentConsistencyModelPipeline"
)

func (k Kind) String() string {
	switch k {
	case LatentConsistency:
		return ClassLatentConsistency
	case StableDiffusionXL:
		return ClassStableDiffusionXL
	case PixArtAlpha:
		return ClassPixArtAlpha
	case PixArtSigma:
		return ClassPixArtSigma
	}
	return ClassStableDiffusion
}

// KindOf maps a model_index.json _class_name to a Kind.
func KindOf(class string) (Kind, error) {
	switch class {
	case ClassStableDiffusion, ClassStableDiffusionImg2Img, ClassStableDiffusionInpaint:
		// The editing pipelines' folders hold the same components; an
		// inpainting UNet is recognised by its input channels.
		return StableDiffusion, nil
	case ClassLatentConsistency:
		return LatentConsistency, nil
	case ClassStableDiffusionXL, ClassStableDiffusionXLImg2Img, ClassStableDiffusionXLInpaint:
		return StableDiffusionXL, nil
	case ClassPixArtAlpha:
		return PixArtAlpha, nil
	case ClassPixArtSigma:
		return PixArtSigma, nil
	}
	return 0, fmt.Errorf("pipeline class %q is not supported (supported: %s, %s, %s, %s, %s)", class,
		ClassStableDiffusion, ClassLatentConsistency, ClassStableDiffusionXL, ClassPixArtAlpha, ClassPixArtSigma)
}

// Pipeline is a loaded diffusers model folder.
type Pipeline struct {
	b    backend.Backend
	Dir  string
	Kind Kind

	Tokenizer   *tokenizer.CLIP
	TextEncoder *clip.TextModel
	UNet        *unet.Model
	// VAE is the AutoencoderKL decoder; nil when loaded with SkipVAE.
	VAE *vae.Decoder
	// VAEConfig is read even when the weights are skipped: it gives the
	// latent scale factor and scaling_factor.
	VAEConfig *vae.Config
	// TAESD is the tiny decoder, set by LoadTAESD.
	TAESD *taesd.Decoder
	// Scheduler is the folder's scheduler_config.json.
	Scheduler *sched.Config
	// Notes says what loading had to assume (LoadSingleFile with inferred
	// configs); empty otherwise.
	Notes []string
	// Tokenizer2 and TextEncoder2 (a CLIPTextModelWithProjection) are
	// SD-XL's second text encoder; nil for other kinds.
	Tokenizer2   *tokenizer.CLIP
	TextEncoder2 *clip.TextModel
	// ForceZerosForEmptyPrompt is SD-XL's model_index.json
	// force_zeros_for_empty_prompt: zero negative embeddings when no
	// negative prompt is given.
	ForceZerosForEmptyPrompt bool
	// VAETiling decodes large images with the AutoencoderKL tile by tile
	// (off by default).
	VAETiling VAETiling

	folder        hub.Folder
	variants      []string
	comps         []*hub.Component
	teComp        *hub.Component
	te2Comp       *hub.Component
	unetComp      *hub.Component
	crossReleased bool
	// vaeEnc is the VAE encoder, bound on the first image-to-image or
	// inpainting request.
	vaeEnc *vae.Encoder
	// lora is the LoRA stack fused into the text encoders and the UNet
	// whenever they are bound (lora.go).
	lora loraState
	// unet8 binds the UNet's weights as 8-bit (LoadOptions.UNet8Bit).
	unet8 bool
	// pixart holds a PixArt folder's transformer and T5 text side
	// (pixart_load.go); nil for the UNet kinds.
	pixart *pixartParts
}

// LoadOptions are choices made when loading.
type LoadOptions struct {
	// SkipVAE leaves the AutoencoderKL weights unloaded (for TAESD or
	// latent-only output).
	SkipVAE bool
	// Variants is the order in which weight variants are tried (nil:
	// hub.Variants, the plain files first).
	Variants []string
	// Loaded, when set, is called after each component's weights are
	// bound, with the component's name.
	Loaded func(component string)
	// StreamTextEncoder keeps only a T5 text encoder's embedding, relative
	// attention bias and final norm bound, and binds each block from the
	// folder just before it runs (PixArt: T5-XXL within a browser's
	// memory).
	StreamTextEncoder bool
	// SkipTextEncoder leaves a PixArt folder's T5 tokenizer and text
	// encoder unread: every generation then takes its prompt's embeddings
	// from PixArtOptions.PromptEmbeds (docs/pixart.md).
	SkipTextEncoder bool
	// LoRAs are fused into the text encoders' and the UNet's weights, in
	// order (see LoRA; Pipeline.SetLoRAs changes them later).
	LoRAs []LoRA
	// UNet8Bit binds the UNet's Linear and convolution weights as 8-bit
	// integers with a scale per output channel (backend.Quantizer): half
	// the memory of F16, dequantised inside the matmul and convolution
	// kernels, at the cost of a small error (docs/memory.md).
	UNet8Bit bool
	// TextEncoder8Bit binds a T5 text encoder's attention and
	// feed-forward projections as 8-bit (PixArt: T5-XXL in a quarter of its
	// F32 size, half of BF16), streamed or resident.
	TextEncoder8Bit bool
}

// Load opens the diffusers model folder dir on the local disk (see
// LoadFolder).
func Load(b backend.Backend, dir string, opt LoadOptions) (*Pipeline, error) {
	return LoadFolder(b, hub.Dir(dir), opt)
}

// LoadFolder opens the diffusers model folder f (model_index.json,
// tokenizer/, text_encoder/, unet/, vae/, scheduler/) and binds every
// model's weights on b. Weights may be F32 or F16 safetensors, single-file
// or sharded. Components the pipeline does not use (safety_checker,
// feature_extractor) are never opened.
func LoadFolder(b backend.Backend, f hub.Folder, opt LoadOptions) (_ *Pipeline, err error) {
	dir := f.String()
	mi, err := hub.ReadModelIndexIn(f)
	if err != nil {
		return nil, err
	}
	kind, err := KindOf(mi.ClassName)
	if err != nil {
		return nil, fmt.Errorf("%s/model_index.json: %w", dir, err)
	}
	if kind == PixArtAlpha || kind == PixArtSigma {
		if len(opt.LoRAs) > 0 {
			return nil, fmt.Errorf("%s: LoRA files apply to the UNet pipelines (SD 1.x/2.x, SD-XL, LCM), not to %s", dir, kind)
		}
		return loadPixArt(b, f, mi, kind, opt)
	}
	for _, c := range []string{"tokenizer", "text_encoder", "unet", "vae", "scheduler"} {
		if mi.Class(c) == "" {
			return nil, fmt.Errorf("%s/model_index.json: component %q is missing", dir, c)
		}
	}
	if c := mi.Class("text_encoder"); c != "CLIPTextModel" {
		return nil, fmt.Errorf("%s: text encoder class %q is not supported (want CLIPTextModel)", dir, c)
	}
	variants := opt.Variants
	if variants == nil {
		variants = hub.Variants
	}
	loaded := func(c string) {
		if opt.Loaded != nil {
			opt.Loaded(c)
		}
	}
	p := &Pipeline{b: b, Dir: dir, Kind: kind, folder: f, variants: variants, unet8: opt.UNet8Bit}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.lora, err = openLoRAs(opt.LoRAs, p.loraComponents()...); err != nil {
		return nil, err
	}

	tok := hub.Sub(f, "tokenizer")
	if p.Tokenizer, err = tokenizer.LoadCLIPWith(tok.String(), tok.ReadFile); err != nil {
		return nil, err
	}
	schedData, err := f.ReadFile("scheduler/scheduler_config.json")
	if err != nil {
		return nil, fmt.Errorf("%s: reading scheduler/scheduler_config.json: %w", dir, err)
	}
	if p.Scheduler, err = sched.ParseConfig(schedData); err != nil {
		return nil, fmt.Errorf("%s/scheduler/scheduler_config.json: %w", dir, err)
	}

	if p.teComp, err = p.open("text_encoder"); err != nil {
		return nil, err
	}
	if err := p.loadTextEncoder(); err != nil {
		return nil, err
	}
	loaded("text_encoder")

	if p.unetComp, err = p.open("unet"); err != nil {
		return nil, err
	}
	if p.UNet, err = p.loadUNetWeights(); err != nil {
		return nil, fmt.Errorf("%s: %w", p.unetComp.Dir, err)
	}
	loaded("unet")

	if err := p.loadVAE(opt.SkipVAE, loaded); err != nil {
		return nil, err
	}
	if kind == LatentConsistency && p.UNet.Config.TimeCondProjDim == nil {
		return nil, fmt.Errorf("%s: a %s needs a UNet with time_cond_proj_dim (a guidance embedding)", dir, ClassLatentConsistency)
	}
	if kind == StableDiffusionXL {
		if err := p.loadSDXL(mi); err != nil {
			return nil, err
		}
		loaded("text_encoder_2")
	}
	return p, nil
}

// loadVAE reads the vae/ folder's config and, unless skip, binds the
// AutoencoderKL decoder (the config alone still gives the latent scale
// factor and scaling_factor).
func (p *Pipeline) loadVAE(skip bool, loaded func(string)) error {
	vaeDir := hub.Sub(p.folder, "vae")
	var vc *hub.Component
	var err error
	if skip {
		vc, err = hub.OpenConfigOnlyIn(vaeDir)
	} else {
		vc, err = hub.OpenComponentIn(vaeDir, p.variants)
	}
	if err != nil {
		return err
	}
	p.comps = append(p.comps, vc)
	if p.VAEConfig, err = vae.ParseConfig(vc.ConfigJSON()); err != nil {
		return fmt.Errorf("%s/config.json: %w", vaeDir, err)
	}
	if !skip {
		if p.VAE, err = vae.LoadDecoder(p.b, vc, p.VAEConfig); err != nil {
			return fmt.Errorf("%s: %w", vaeDir, err)
		}
		loaded("vae")
	}
	return nil
}

// open opens the component folder name and remembers it for Close.
func (p *Pipeline) open(name string) (*hub.Component, error) {
	c, err := hub.OpenComponentIn(hub.Sub(p.folder, name), p.variants)
	if err != nil {
		return nil, err
	}
	p.comps = append(p.comps, c)
	return c, nil
}

// LoadTAESD loads a TAESD decoder (taesd.py or diffusers AutoencoderTiny
// key layout) from a safetensors file, or from a folder holding one, for
// Request.Decoder = DecodeTAESD.
func (p *Pipeline) LoadTAESD(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("taesd weights: %w", err)
	}
	var c *hub.Component
	if st.IsDir() {
		c, err = hub.OpenComponent(path)
		if err != nil {
			if c, err = openTAESDFile(path); err != nil {
				return err
			}
		}
	} else {
		c, err = hub.OpenFile(path)
	}
	if err != nil {
		return fmt.Errorf("taesd weights: %w", err)
	}
	return p.useTAESD(c)
}

// LoadTAESDIn loads a TAESD decoder from a folder (diffusers'
// AutoencoderTiny layout: config.json and weights) or, when name is not
// empty, from the single safetensors file name inside it.
func (p *Pipeline) LoadTAESDIn(f hub.Folder, name string) error {
	var c *hub.Component
	var err error
	if name != "" {
		c, err = hub.OpenFileIn(f, name)
	} else {
		c, err = hub.OpenComponentIn(f, p.variants)
	}
	if err != nil {
		return fmt.Errorf("taesd weights: %w", err)
	}
	return p.useTAESD(c)
}

// useTAESD binds the TAESD decoder of c, replacing any earlier one.
func (p *Pipeline) useTAESD(c *hub.Component) error {
	path := c.Dir
	d, err := taesd.LoadDecoder(p.b, c)
	if err != nil {
		c.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	denoiser, made := "UNet", p.VAEConfig.LatentChannels
	if p.UNet != nil {
		made = p.UNet.Config.OutChannels
	} else if p.pixart != nil {
		denoiser = "PixArt transformer"
	}
	if d.Config.LatentChannels != made {
		d.Release(p.b)
		c.Close()
		return fmt.Errorf("%s: the TAESD decoder takes %d latent channels but the %s makes %d", path, d.Config.LatentChannels, denoiser, made)
	}
	if p.TAESD != nil {
		p.TAESD.Release(p.b)
	}
	p.TAESD = d
	p.comps = append(p.comps, c)
	return nil
}

// openTAESDFile opens the decoder file inside a folder without a
// config.json.
func openTAESDFile(dir string) (*hub.Component, error) {
	for _, n := range []string{"taesd_decoder.safetensors", "diffusion_pytorch_model.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return hub.OpenFile(filepath.Join(dir, n))
		}
	}
	return nil, fmt.Errorf("taesd weights: no taesd_decoder.safetensors or diffusion_pytorch_model.safetensors in %s", dir)
}

// VAEScaleFactor is 2^(len(vae.block_out_channels) − 1), the ratio of
// image to latent size (8 for SD; diffusers' vae_scale_factor).
func (p *Pipeline) VAEScaleFactor() int {
	return 1 << (len(p.VAEConfig.BlockOutChannels) - 1)
}

// DefaultSize is unet.sample_size · vae_scale_factor, the pipeline's
// default height and width.
func (p *Pipeline) DefaultSize() (height, width int) {
	if tr := p.PixArtTransformer(); tr != nil {
		n := tr.Config.SampleSize * p.VAEScaleFactor()
		return n, n
	}
	s := p.UNet.Config.SampleSize.Values
	f := p.VAEScaleFactor()
	switch len(s) {
	case 0:
		return 64 * f, 64 * f
	case 1:
		return s[0] * f, s[0] * f
	}
	return s[0] * f, s[1] * f
}

// loadTextEncoder binds the text encoder's weights (at load, and again
// after a generation that released them).
func (p *Pipeline) loadTextEncoder() error {
	te := p.teComp
	cfg, err := clip.ParseConfig(te.ConfigJSON())
	if err != nil {
		return fmt.Errorf("%s/config.json: %w", te.Dir, err)
	}
	src, err := p.withLoRAs(lora.TextEncoder, te)
	if err != nil {
		return err
	}
	if p.TextEncoder, err = clip.Load(p.b, src, cfg); err != nil {
		return fmt.Errorf("%s: %w", te.Dir, err)
	}
	return nil
}

// reloadUNet binds the UNet again after a T-GATE run released its
// cross-attention weights.
//
// The old weights go first, so two UNets never need to fit at once. When
// binding the new ones fails (out of memory, a lost file), the released
// model stays in place (its config is still read) marked for rebinding,
// so the next Generate tries again rather than running without weights.
func (p *Pipeline) reloadUNet() error {
	p.UNet.Release(p.b) // idempotent
	p.crossReleased = true
	m, err := p.loadUNetWeights()
	if err != nil {
		return fmt.Errorf("%s: reloading: %w", p.unetComp.Dir, err)
	}
	p.UNet = m
	p.crossReleased = false
	return nil
}

// Close frees every weight and closes the weight files.
func (p *Pipeline) Close() error {
	p.pixart.release(p.b)
	if p.TextEncoder != nil {
		p.TextEncoder.Release(p.b)
		p.TextEncoder = nil
	}
	if p.TextEncoder2 != nil {
		p.TextEncoder2.Release(p.b)
		p.TextEncoder2 = nil
	}
	if p.UNet != nil {
		p.UNet.Release(p.b)
		p.UNet = nil
	}
	if p.VAE != nil {
		p.VAE.Release(p.b)
		p.VAE = nil
	}
	p.ReleaseVAEEncoder()
	if p.TAESD != nil {
		p.TAESD.Release(p.b)
		p.TAESD = nil
	}
	var errs []error
	for _, c := range p.comps {
		errs = append(errs, c.Close())
	}
	p.comps = nil
	return errors.Join(errs...)
}
