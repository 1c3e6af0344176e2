package main

import (
	"flag"
	"fmt"

	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/pipeline"
)

// embedsFlags are generate's PixArt prompt embeddings flags: a file of
// precomputed T5 embeddings to generate from (--prompt-embeds), and a file
// to write the run's embeddings to (--save-prompt-embeds). See
// docs/pixart.md.
type embedsFlags struct {
	load, save string
	// model is the --model flag's value (the folder whose kind decides
	// whether the flags apply).
	model flag.Value
	// embeds are --prompt-embeds' tensors, read by check.
	embeds *pipeline.PromptEmbeds
}

// register adds the flags to fl (after --model).
func (e *embedsFlags) register(fl *flag.FlagSet) {
	fl.StringVar(&e.load, "prompt-embeds", "", "PixArt: take the prompt's T5 embeddings from this safetensors file (prompt_embeds, prompt_attention_mask and optionally negative_prompt_embeds, negative_prompt_attention_mask, as diffusers' encode_prompt returns them) instead of encoding --prompt; with the negative ones the T5 weights are not loaded at all")
	fl.StringVar(&e.save, "save-prompt-embeds", "", "PixArt: write the T5 embeddings the run uses (the prompt's and, with guidance, the negative prompt's) to this safetensors file, for --prompt-embeds")
	if f := fl.Lookup("model"); f != nil {
		e.model = f.Value
	}
}

// check validates the flags before any weights are read: they need a
// PixArt model folder, --prompt-embeds must be a valid embeddings file
// (read here) and --save-prompt-embeds writable.
func (e *embedsFlags) check() error {
	if e.load == "" && e.save == "" {
		return nil
	}
	flagName := "--prompt-embeds"
	if e.load == "" {
		flagName = "--save-prompt-embeds"
	}
	if e.model != nil {
		model := e.model.String()
		if isSingleFile(model) {
			return fmt.Errorf("%s is for PixArt model folders; %s is a single-file checkpoint of a UNet model", flagName, model)
		}
		if mi, err := hub.ReadModelIndex(model); err == nil {
			if k, err := pipeline.KindOf(mi.ClassName); err == nil && k != pipeline.PixArtAlpha && k != pipeline.PixArtSigma {
				return fmt.Errorf("%s is for PixArt models (%s, %s); %s is a %s", flagName, pipeline.ClassPixArtAlpha, pipeline.ClassPixArtSigma, model, k)
			}
		}
	}
	if e.save != "" {
		if err := checkWritable("save-prompt-embeds", e.save); err != nil {
			return err
		}
	}
	if e.load != "" {
		var err error
		if e.embeds, err = pipeline.LoadPromptEmbedsFile(e.load); err != nil {
			return fmt.Errorf("--prompt-embeds: %w", err)
		}
	}
	return nil
}

// loadOptions leaves the T5 weights unread when --prompt-embeds holds the
// negative prompt's embeddings too (nothing is left to encode).
func (e *embedsFlags) loadOptions(opt *pipeline.LoadOptions) {
	if e.embeds != nil && e.embeds.NegativePromptEmbeds != nil {
		opt.SkipTextEncoder = true
	}
}

// apply puts the embeddings into req and, for --save-prompt-embeds, a
// callback that writes the run's embeddings once they are encoded (before
// the first step); a failed write ends the run.
func (e *embedsFlags) apply(req *pipeline.Request) error {
	req.PromptEmbeds = e.embeds
	if e.save != "" {
		path := e.save
		req.EncodedPrompt = func(pe *pipeline.PromptEmbeds) error {
			if err := pipeline.SavePromptEmbeds(path, pe); err != nil {
				return fmt.Errorf("--save-prompt-embeds: %w", err)
			}
			return nil
		}
	}
	return nil
}

func init() {
	for i := range modelGroups {
		if modelGroups[i].title == "PixArt" {
			modelGroups[i].flags = append(modelGroups[i].flags, "prompt-embeds", "save-prompt-embeds")
		}
	}
	modelValues["prompt-embeds"] = "FILE"
	modelValues["save-prompt-embeds"] = "FILE"
}
