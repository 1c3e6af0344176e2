// Package macs counts what a text-to-image generation costs and what
// T-GATE saves: multiply-accumulates per phase and op family, the
// denoiser parameters each phase reads, and the peak bytes of weights,
// activations and caches, for a diffusers model folder read from its
// config files alone (no weights).
//
// It runs the real forward code — the CLIP text encoder(s), the UNet with
// T-GATE's attention hook (package gate), the scheduler on device tensors
// and the VAE decoder — on the shape-only meter backend (package meter),
// in the order and with the lifetimes of package pipeline's Generate.
// The phases follow the T-GATE paper (arXiv 2404.02747 §3): semantics
// planning is every denoiser evaluation before the gate step, fidelity
// improving every one from the gate step on.
//
// How the T-GATE paper's figures (counted with calflops) relate to these
// counts is worked out in docs/macs.md; CalflopsMACs gives the figure in
// calflops' convention.
package macs

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/models/clip"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/models/vae"
	"github.com/tgate-web/tgate/sched"
)

// Pipeline classes of model_index.json that Load accepts.
const (
	ClassSD   = "StableDiffusionPipeline"
	ClassSDXL = "StableDiffusionXLPipeline"
	ClassLCM  = "LatentConsistencyModelPipeline"
)

// Model is a diffusers model folder's architecture: the configs of its
// text encoder(s), UNet, VAE and scheduler.
type Model struct {
	Dir   string
	Class string // model_index.json _class_name
	// TextEncoders are text_encoder and, for SDXL, text_encoder_2.
	TextEncoders []*clip.Config
	UNet         *unet.Config
	VAE          *vae.Config
	Scheduler    *sched.Config
	// ForceZerosForEmptyPrompt is SDXL's force_zeros_for_empty_prompt: the
	// unconditional embeddings of an empty negative prompt are zeros and
	// the text encoders run on the prompt alone.
	ForceZerosForEmptyPrompt bool
}

// Load reads dir/model_index.json and the config.json of every component
// the generation runs. Weights are not needed and not opened.
func Load(dir string) (*Model, error) { return LoadFolder(hub.Dir(dir)) }

// LoadFolder is Load for any hub.Folder (a Hub repository in the browser).
func LoadFolder(f hub.Folder) (*Model, error) {
	mi, err := hub.ReadModelIndexIn(f)
	if err != nil {
		return nil, err
	}
	dir := f.String()
	m := &Model{Dir: dir, Class: mi.ClassName}
	encoders := []string{"text_encoder"}
	switch mi.ClassName {
	case "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline":
		// The same components as text-to-image (an inpainting UNet takes
		// 9 input channels).
		m.Class = ClassSD
	case ClassSD, ClassLCM:
	case ClassSDXL, "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline":
		m.Class = ClassSDXL
		encoders = append(encoders, "text_encoder_2")
		var extra struct {
			Force *bool `json:"force_zeros_for_empty_prompt"`
		}
		if json.Unmarshal(mi.Raw, &extra) == nil {
			m.ForceZerosForEmptyPrompt = extra.Force == nil || *extra.Force // the pipeline's default is true
		}
	default:
		return nil, fmt.Errorf("%s: pipeline class %q is not supported (supported: %s, %s, %s)",
			dir+"/model_index.json", mi.ClassName, ClassSD, ClassSDXL, ClassLCM)
	}
	for _, c := range append(append([]string(nil), encoders...), "unet", "vae", "scheduler") {
		if mi.Class(c) == "" {
			return nil, fmt.Errorf("%s: component %q is missing from model_index.json", dir, c)
		}
	}
	if c := mi.Class("unet"); c != "UNet2DConditionModel" {
		return nil, fmt.Errorf("%s: denoiser class %q is not supported (UNet2DConditionModel)", dir, c)
	}
	for _, name := range encoders {
		cls := mi.Class(name)
		if cls != "CLIPTextModel" && cls != "CLIPTextModelWithProjection" {
			return nil, fmt.Errorf("%s: %s class %q is not supported (CLIPTextModel, CLIPTextModelWithProjection)", dir, name, cls)
		}
		data, path, err := readConfig(f, name, "config.json")
		if err != nil {
			return nil, err
		}
		cfg, err := clip.ParseConfig(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		m.TextEncoders = append(m.TextEncoders, cfg)
	}
	data, path, err := readConfig(f, "unet", "config.json")
	if err != nil {
		return nil, err
	}
	if m.UNet, err = unet.ParseConfig(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if data, path, err = readConfig(f, "vae", "config.json"); err != nil {
		return nil, err
	}
	if m.VAE, err = vae.ParseConfig(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if data, path, err = readConfig(f, "scheduler", "scheduler_config.json"); err != nil {
		return nil, err
	}
	if m.Scheduler, err = sched.ParseConfig(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return m, nil
}

// readConfig reads comp/file of f and returns it with the path that names
// it in messages.
func readConfig(f hub.Folder, comp, file string) ([]byte, string, error) {
	path := f.String() + "/" + comp + "/" + file
	if d, ok := f.(hub.Dir); ok {
		path = filepath.Join(string(d), comp, file)
	}
	data, err := f.ReadFile(comp + "/" + file)
	if err != nil {
		return nil, path, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, path, nil
}

// check verifies that the components fit together: the text embeddings'
// width is the UNet's cross_attention_dim, the VAE's latent channels are
// the UNet's input channels.
func (m *Model) check() error {
	width := 0
	for _, c := range m.TextEncoders {
		width += c.HiddenSize
	}
	for _, d := range m.UNet.CrossAttentionDim.Values {
		if d != width {
			return fmt.Errorf("the text embeddings are %d wide but the UNet's cross_attention_dim is %d", width, d)
		}
	}
	if c, l := m.UNet.InChannels, m.VAE.LatentChannels; c != l && c != 2*l+1 {
		return fmt.Errorf("the UNet takes %d channels but the VAE's latents have %d (an inpainting UNet takes %d)", c, l, 2*l+1)
	}
	if m.Class == ClassSDXL {
		last := m.TextEncoders[len(m.TextEncoders)-1]
		if !last.WithProjection {
			return fmt.Errorf("SDXL's text_encoder_2 must be a CLIPTextModelWithProjection (it gives the pooled text embeddings)")
		}
		if m.UNet.AdditionEmbedType == nil || *m.UNet.AdditionEmbedType != "text_time" {
			return fmt.Errorf("SDXL's UNet must have addition_embed_type text_time")
		}
	}
	if m.Class == ClassLCM && m.UNet.TimeCondProjDim == nil {
		return fmt.Errorf("a %s needs a UNet with time_cond_proj_dim (a guidance embedding)", ClassLCM)
	}
	return nil
}

// VAEScaleFactor is 2^(len(block_out_channels)−1), the pixels per latent.
func (m *Model) VAEScaleFactor() int { return 1 << (len(m.VAE.BlockOutChannels) - 1) }

// DefaultSize returns the pipeline's default image size in pixels:
// unet.sample_size × the VAE scale factor.
func (m *Model) DefaultSize() (width, height int) {
	f := m.VAEScaleFactor()
	v := m.UNet.SampleSize.Values
	if len(v) == 0 {
		return 64 * f, 64 * f
	}
	h, w := v[0], v[0]
	if len(v) > 1 {
		w = v[1]
	}
	return w * f, h * f
}

// Tokens is the prompt length the text encoders see (padded to
// max_position_embeddings, as the pipelines' tokenizers pad).
func (m *Model) Tokens() int { return m.TextEncoders[0].MaxPositionEmbeddings }

// guidanceEmbedding reports whether the UNet takes guidance through
// time_cond_proj_dim (LCM) instead of a guidance batch.
func (m *Model) guidanceEmbedding() bool { return m.UNet.TimeCondProjDim != nil }
