package singlefile

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/tgate-web/tgate/fixture"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tokenizer"
)

// configs are the published diffusers configs of
// runwayml/stable-diffusion-v1-5 (configs/sd15),
// stabilityai/stable-diffusion-2-1 (configs/sd21) and
// stabilityai/stable-diffusion-xl-base-1.0 (configs/sdxl), verbatim:
// model_index, scheduler, unet, vae, the text encoders and the
// tokenizers' JSON files.
//
//go:embed configs
var configs embed.FS

// Family is a model family a single file's keys identify.
type Family struct {
	// Name is "sd15", "sd21" or "sdxl".
	Name string
	// Repo is the Hub repository whose configs are used.
	Repo string
	// Note says what had to be assumed ("" when nothing was).
	Note string
	// overrides replaces keys of the verbatim configs, by file.
	overrides map[string]map[string]any
}

var (
	// SD15 is Stable Diffusion 1.x: CLIP ViT-L/14 text encoder
	// (cond_stage_model.transformer.), cross-attention context 768.
	SD15 = Family{Name: "sd15", Repo: "runwayml/stable-diffusion-v1-5"}
	// SD2Base is Stable Diffusion 2.x with the OpenCLIP ViT-H/14 text
	// encoder (cond_stage_model.model.), cross-attention context 1024,
	// read as the 512-pixel ε-prediction base model: v-prediction (the
	// 768-pixel SD 2.x models) leaves no trace in the weights, so it
	// cannot be inferred.
	SD2Base = Family{Name: "sd21", Repo: "stabilityai/stable-diffusion-2-1",
		Note: "SD 2.x inferred from the weights: assumed to be the 512-pixel epsilon-prediction base model (prediction_type epsilon, sample_size 64); " +
			"v-prediction cannot be inferred from the weights, so for a 768-v model pass its diffusers config folder (stabilityai/stable-diffusion-2-1)",
		overrides: map[string]map[string]any{
			"scheduler/scheduler_config.json": {"prediction_type": "epsilon"},
			"unet/config.json":                {"sample_size": 64},
		}}
	// SDXL is SD-XL base: the CLIP ViT-L and OpenCLIP ViT-bigG text
	// encoders (conditioner.embedders.0 and .1), cross-attention context
	// 2048.
	SDXL = Family{Name: "sdxl", Repo: "stabilityai/stable-diffusion-xl-base-1.0"}
)

// InferFamily identifies the model family from the file's header alone,
// as diffusers' infer_diffusers_model_type does for SD 1.x, 2.x and SD-XL
// base: the cross-attention context width (the UNet's attn2.to_k.weight
// input size: 768 for SD 1.x, 1024 for SD 2.x, 2048 for SD-XL) and the
// text encoder layout, which must agree. SD-XL refiners, inpainting UNets
// and other layouts are errors that ask for a config folder.
func InferFamily(f *File) (Family, error) {
	if sh, ok := f.Shape(UNetPrefix + "input_blocks.0.0.weight"); ok && len(sh) == 4 && sh[1] != 4 {
		return Family{}, fmt.Errorf("singlefile: %s: the UNet takes %d input channels (%s has shape %v); only text-to-image UNets (4 channels) are inferred: pass a diffusers config folder",
			f.Name, sh[1], UNetPrefix+"input_blocks.0.0.weight", sh)
	}
	ctx, key := 0, ""
	for _, n := range f.ckpt.Names() {
		if strings.HasPrefix(n, UNetPrefix) && strings.HasSuffix(n, ".attn2.to_k.weight") {
			if sh, _ := f.Shape(n); len(sh) == 2 {
				ctx, key = sh[1], n
				break
			}
		}
	}
	te := f.prefixOf(TextEncoder)
	xl := f.Has(TextEncoder2)
	switch {
	case ctx == 768 && te == CLIPPrefix && !xl:
		return SD15, nil
	case ctx == 1024 && te == OpenCLIPPrefix && !xl:
		return SD2Base, nil
	case ctx == 2048 && te == XLCLIPPrefix && xl:
		return SDXL, nil
	case ctx == 0:
		return Family{}, fmt.Errorf("singlefile: %s: no UNet cross-attention weight (*.attn2.to_k.weight) to infer the model from: pass a diffusers config folder", f.Name)
	}
	layout := te
	if xl {
		layout += " and " + XLOpenCLIPPrefix
	}
	if layout == "" {
		layout = "none found"
	}
	return Family{}, fmt.Errorf("singlefile: %s: cross-attention context %d (%s) with text encoders %q is neither SD 1.x (768, %s), SD 2.x (1024, %s) nor SD-XL base (2048, %s and %s): pass a diffusers config folder",
		f.Name, ctx, key, layout, CLIPPrefix, OpenCLIPPrefix, XLCLIPPrefix, XLOpenCLIPPrefix)
}

// Folder returns the family's configs as a diffusers model folder without
// weights: model_index.json, scheduler/, unet/, vae/, text_encoder/ (and
// text_encoder_2/) config.json, with the family's overrides applied, and
// tokenizer/ (and tokenizer_2/) whose vocabulary is openai/CLIP's BPE file
// embedded in package fixture.
func (fam Family) Folder() hub.Folder { return configFolder{fam} }

// configFolder is a Family's configs as a hub.Folder.
type configFolder struct{ fam Family }

// ReadFile returns the named config file of the family.
func (c configFolder) ReadFile(name string) ([]byte, error) {
	name = path.Clean(name)
	if dir, file := path.Split(name); file == tokenizer.OpenAIBPEFile && (dir == "tokenizer/" || dir == "tokenizer_2/") {
		return fixture.CLIPBPE(), nil
	}
	data, err := configs.ReadFile(path.Join("configs", c.fam.Name, name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.String(), err)
	}
	over, ok := c.fam.overrides[name]
	if !ok {
		return data, nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s/%s: %w", c.String(), name, err)
	}
	for k, v := range over {
		m[k] = v
	}
	return json.MarshalIndent(m, "", "  ")
}

// Exists reports whether the family's folder has the file.
func (c configFolder) Exists(name string) (bool, error) {
	_, err := c.ReadFile(name)
	return err == nil, nil
}

// Open fails: the folder holds configs, not weights.
func (c configFolder) Open(name string) (safetensors.RangeReader, error) {
	return nil, fmt.Errorf("%s holds configs only, no %s: %w", c.String(), name, fs.ErrNotExist)
}

// String names the folder in messages.
func (c configFolder) String() string {
	return "inferred " + c.fam.Repo + " configs"
}
