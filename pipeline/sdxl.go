package pipeline

import (
	"encoding/json"
	"fmt"

	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/lora"
	"github.com/tgate-web/tgate/models/clip"
	"github.com/tgate-web/tgate/tokenizer"
)

// ClassStableDiffusionXL is the model_index.json _class_name of diffusers'
// StableDiffusionXLPipeline.
const ClassStableDiffusionXL = "StableDiffusionXLPipeline"

// sdxlDefaultGuidance is StableDiffusionXLPipeline.__call__'s default
// guidance_scale (5.0; StableDiffusionPipeline's is 7.5).
const sdxlDefaultGuidance = 5.0

// sdLoop reports whether k runs the loop of StableDiffusionPipeline:
// classifier-free guidance with a negative prompt and the scheduler's
// scale_model_input before every UNet call (SD and SD-XL; not LCM).
func (k Kind) sdLoop() bool {
	return k == StableDiffusion || k == StableDiffusionXL
}

// sdxlIndex is the part of an SD-XL model_index.json beyond the
// component classes.
type sdxlIndex struct {
	// ForceZerosForEmptyPrompt is StableDiffusionXLPipeline's
	// register_to_config flag (true when absent, the __init__ default).
	ForceZerosForEmptyPrompt *bool `json:"force_zeros_for_empty_prompt"`
	// RequiresAestheticsScore is the register_to_config flag of
	// StableDiffusionXLImg2ImgPipeline and StableDiffusionXLInpaintPipeline
	// (false when absent): the time ids then carry the aesthetic score in
	// place of the target size.
	RequiresAestheticsScore bool `json:"requires_aesthetics_score"`
}

// loadSDXL loads what StableDiffusionXLPipeline adds to the SD folder
// layout (pipeline_stable_diffusion_xl.py __init__): tokenizer_2 and
// text_encoder_2 (a CLIPTextModelWithProjection), and
// force_zeros_for_empty_prompt. It then makes the checks the pipeline
// makes on first use: the UNet has the text_time addition embedding and
// addition_time_embed_dim·n + projection_dim equals add_embedding's input
// (_get_add_time_ids; n = 6 time ids, 5 with requires_aesthetics_score),
// and the VAE has no latents_mean/latents_std (whose
// decode rule this pipeline does not implement).
func (p *Pipeline) loadSDXL(mi *hub.ModelIndex) error {
	dir := p.Dir
	for _, c := range []string{"tokenizer_2", "text_encoder_2"} {
		if mi.Class(c) == "" {
			return fmt.Errorf("%s/model_index.json: component %q is missing (a %s needs it)", dir, c, ClassStableDiffusionXL)
		}
	}
	if c := mi.Class("text_encoder_2"); c != "CLIPTextModelWithProjection" {
		return fmt.Errorf("%s: text_encoder_2 class %q is not supported (want CLIPTextModelWithProjection)", dir, c)
	}
	var idx sdxlIndex
	if err := json.Unmarshal(mi.Raw, &idx); err != nil {
		return fmt.Errorf("%s/model_index.json: %w", dir, err)
	}
	p.ForceZerosForEmptyPrompt = idx.ForceZerosForEmptyPrompt == nil || *idx.ForceZerosForEmptyPrompt

	tok := hub.Sub(p.folder, "tokenizer_2")
	var err error
	if p.Tokenizer2, err = tokenizer.LoadCLIPWith(tok.String(), tok.ReadFile); err != nil {
		return err
	}
	if p.te2Comp, err = p.open("text_encoder_2"); err != nil {
		return err
	}
	if err := p.loadTextEncoder2(); err != nil {
		return err
	}
	if err := p.checkAddEmbedding(idx.RequiresAestheticsScore); err != nil {
		return err
	}
	return p.checkSDXLVAE()
}

// loadTextEncoder2 binds text_encoder_2's weights, with the pipeline's
// LoRAs fused in (at load, and again after a generation that released
// them).
func (p *Pipeline) loadTextEncoder2() error {
	te := p.te2Comp
	cfg, err := clip.ParseConfig(te.ConfigJSON())
	if err != nil {
		return fmt.Errorf("%s/config.json: %w", te.Dir, err)
	}
	if !cfg.WithProjection {
		return fmt.Errorf("%s/config.json: architectures %v; SD-XL's text_encoder_2 must be a CLIPTextModelWithProjection (its pooled text_embeds condition the UNet)", te.Dir, cfg.Architectures)
	}
	src, err := p.withLoRAs(lora.TextEncoder2, te)
	if err != nil {
		return err
	}
	if p.TextEncoder2, err = clip.Load(p.b, src, cfg); err != nil {
		return fmt.Errorf("%s: %w", te.Dir, err)
	}
	return nil
}

// sdxlTimeIDs is the number of micro-conditioning values: original size
// (2), crop top-left (2), target size (2).
const sdxlTimeIDs = 6

// checkAddEmbedding is the check of _get_add_time_ids:
// addition_time_embed_dim · len(add_time_ids) + text_encoder_2's
// projection_dim must equal add_embedding.linear_1.in_features
// (projection_class_embeddings_input_dim), with 6 time ids or, when
// aesthetic (requires_aesthetics_score), 5. When the UNet fits the other
// count, the error names the flag to change (as the editing pipelines'
// errors do).
func (p *Pipeline) checkAddEmbedding(aesthetic bool) error {
	c := p.UNet.Config
	if c.AdditionEmbedType == nil || *c.AdditionEmbedType != "text_time" || c.AdditionTimeEmbedDim == nil || c.ProjectionClassEmbeddingsInputDim == nil {
		return fmt.Errorf("%s/unet/config.json: a %s needs a UNet with addition_embed_type \"text_time\", addition_time_embed_dim and projection_class_embeddings_input_dim", p.Dir, ClassStableDiffusionXL)
	}
	proj, dim, n := p.TextEncoder2.Config.ProjectionDim, *c.AdditionTimeEmbedDim, sdxlTimeIDCount(aesthetic)
	passed := dim*n + proj
	want := *c.ProjectionClassEmbeddingsInputDim
	switch {
	case passed == want:
		return nil
	case aesthetic && want-passed == dim:
		return fmt.Errorf("%s: the UNet's add_embedding takes %d values but %d time ids give %d: set requires_aesthetics_score to false in model_index.json (the UNet is conditioned on the target size, not an aesthetic score)", p.Dir, want, n, passed)
	case !aesthetic && passed-want == dim:
		return fmt.Errorf("%s: the UNet's add_embedding takes %d values but %d time ids give %d: set requires_aesthetics_score to true in model_index.json (the UNet is conditioned on an aesthetic score, as SD-XL refiners are)", p.Dir, want, n, passed)
	}
	return fmt.Errorf("%s: model has an invalid config: the UNet's add_embedding takes %d values but addition_time_embed_dim %d · %d time ids + text_encoder_2 projection_dim %d = %d; check unet/config.json and text_encoder_2/config.json",
		p.Dir, want, dim, n, proj, passed)
}

// checkSDXLVAE rejects a VAE config with latents_mean/latents_std: with
// them StableDiffusionXLPipeline decodes latents·std/scaling_factor + mean
// instead of latents/scaling_factor. force_upcast needs no handling: it
// only moves a float16 VAE to float32, and every activation here is
// float32 already.
func (p *Pipeline) checkSDXLVAE() error {
	data, err := p.folder.ReadFile("vae/config.json")
	if err != nil {
		return fmt.Errorf("%s: reading vae/config.json: %w", p.Dir, err)
	}
	var stats struct {
		Mean []float64 `json:"latents_mean"`
		Std  []float64 `json:"latents_std"`
	}
	if err := json.Unmarshal(data, &stats); err != nil {
		return fmt.Errorf("%s/vae/config.json: %w", p.Dir, err)
	}
	if stats.Mean != nil || stats.Std != nil {
		return fmt.Errorf("%s/vae/config.json: latents_mean/latents_std are set; decoding with latent statistics is not supported (only latents / scaling_factor)", p.Dir)
	}
	return nil
}
