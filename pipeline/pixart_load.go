package pipeline

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/models/pixart"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tokenizer"
)

// Class names of model_index.json that select the PixArt kinds.
const (
	ClassPixArtAlpha = "PixArtAlphaPipeline"
	ClassPixArtSigma = "PixArtSigmaPipeline"
)

// t5Encoder is a PixArt pipeline's text encoder: T5EncoderModel's
// last_hidden_state [B, L, d_model] for rows of padded ids under their
// attention masks (1 = token, 0 = padding), as encode_prompt calls it.
type t5Encoder interface {
	Encode(b backend.Backend, ids, mask [][]int32) (backend.Tensor, error)
	Release(b backend.Backend)
}

// pixartParts is what a PixArt folder adds to a Pipeline: the transformer,
// the T5 tokenizer and encoder, and the component files they came from.
type pixartParts struct {
	Transformer *pixart.Model
	Tokenizer   *tokenizer.T5
	TextEncoder t5Encoder // nil while released (Request.ReleaseTextEncoder)

	trComp, teComp *hub.Component
	// streamT5 binds the T5 encoder block by block during encoding
	// (LoadOptions.StreamTextEncoder).
	streamT5 bool
	// t5Eight binds the T5 encoder's projections as 8-bit
	// (LoadOptions.TextEncoder8Bit).
	t5Eight       bool
	crossReleased bool
	// promptCache keeps recent prompts' T5 embeddings on the device
	// (pixart_embeds_cache.go).
	promptCache promptCache
}

// PixArtTransformer returns the PixArt transformer of a PixArt pipeline,
// or nil.
func (p *Pipeline) PixArtTransformer() *pixart.Model {
	if p.pixart == nil {
		return nil
	}
	return p.pixart.Transformer
}

// loadPixArt opens a PixArt folder (model_index.json of
// PixArtAlphaPipeline or PixArtSigmaPipeline: tokenizer/ (T5Tokenizer),
// text_encoder/ (T5EncoderModel), transformer/
// (PixArtTransformer2DModel), vae/ (AutoencoderKL), scheduler/) and binds
// its weights on b.
func loadPixArt(b backend.Backend, f hub.Folder, mi *hub.ModelIndex, kind Kind, opt LoadOptions) (_ *Pipeline, err error) {
	dir := f.String()
	for _, c := range []string{"tokenizer", "text_encoder", "transformer", "vae", "scheduler"} {
		if mi.Class(c) == "" {
			return nil, fmt.Errorf("%s/model_index.json: component %q is missing", dir, c)
		}
	}
	if c := mi.Class("text_encoder"); c != "T5EncoderModel" {
		return nil, fmt.Errorf("%s: text encoder class %q is not supported (want T5EncoderModel)", dir, c)
	}
	if c := mi.Class("transformer"); c != "PixArtTransformer2DModel" && c != "Transformer2DModel" {
		return nil, fmt.Errorf("%s: transformer class %q is not supported (want PixArtTransformer2DModel)", dir, c)
	}
	if len(opt.LoRAs) > 0 {
		return nil, fmt.Errorf("%s: LoRA is not supported for %s", dir, kind)
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
	p := &Pipeline{b: b, Dir: dir, Kind: kind, folder: f, variants: variants, pixart: &pixartParts{streamT5: opt.StreamTextEncoder, t5Eight: opt.TextEncoder8Bit,
		promptCache: promptCache{limits: DefaultPromptCacheLimits}}}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	px := p.pixart

	if !opt.SkipTextEncoder {
		tok := hub.Sub(f, "tokenizer")
		if px.Tokenizer, err = tokenizer.LoadT5With(tok.String(), tok.ReadFile); err != nil {
			return nil, err
		}
	}
	schedData, err := f.ReadFile("scheduler/scheduler_config.json")
	if err != nil {
		return nil, fmt.Errorf("%s: reading scheduler/scheduler_config.json: %w", dir, err)
	}
	if p.Scheduler, err = sched.ParseConfig(schedData); err != nil {
		return nil, fmt.Errorf("%s/scheduler/scheduler_config.json: %w", dir, err)
	}

	if !opt.SkipTextEncoder {
		if px.teComp, err = p.open("text_encoder"); err != nil {
			return nil, err
		}
		if err := p.bindT5(); err != nil {
			return nil, err
		}
		loaded("text_encoder")
	}

	if px.trComp, err = p.open("transformer"); err != nil {
		return nil, err
	}
	if px.Transformer, err = pixart.Load(b, px.trComp); err != nil {
		return nil, fmt.Errorf("%s: %w", px.trComp.Dir, err)
	}
	loaded("transformer")

	if err := p.loadVAE(opt.SkipVAE, loaded); err != nil {
		return nil, err
	}
	if got, want := px.Transformer.Config.InChannels, p.VAEConfig.LatentChannels; got != want {
		return nil, fmt.Errorf("%s: the transformer takes %d latent channels but the VAE makes %d", dir, got, want)
	}
	return p, nil
}

// bindT5 binds the T5 encoder's weights (at load, and again after a
// generation that released them).
func (p *Pipeline) bindT5() error {
	px := p.pixart
	if px.teComp == nil {
		return errNoT5
	}
	enc, err := loadT5(p.b, px.teComp, px.streamT5, px.t5Eight)
	if err != nil {
		return fmt.Errorf("%s: %w", px.teComp.Dir, err)
	}
	px.TextEncoder = enc
	return nil
}

// reloadTransformer binds the transformer again after a T-GATE run
// released its cross-attention weights.
func (p *Pipeline) reloadTransformer() error {
	px := p.pixart
	px.Transformer.Release(p.b)
	m, err := pixart.Load(p.b, px.trComp)
	if err != nil {
		return fmt.Errorf("%s: reloading: %w", px.trComp.Dir, err)
	}
	px.Transformer = m
	px.crossReleased = false
	return nil
}

// release frees the transformer, the text encoder and the cached prompt
// embeddings; the component files are closed with the pipeline's others.
func (px *pixartParts) release(b backend.Backend) {
	if px == nil {
		return
	}
	px.promptCache.clear(b)
	if px.Transformer != nil {
		px.Transformer.Release(b)
		px.Transformer = nil
	}
	if px.TextEncoder != nil {
		px.TextEncoder.Release(b)
		px.TextEncoder = nil
	}
}
