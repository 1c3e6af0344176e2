package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/singlefile"
)

// extraFlags are generate's flags beyond text-to-image with T-GATE:
// editing (img2img, inpainting, LoRA) and memory. They register their
// flags and put their values into the load options and the request.
type extraFlags struct {
	initImage, mask string
	strength        float64
	loras           loraFlag
	unet8           bool
	te8             bool
	vaeTiling       bool
	config          string
	modelFlags
	embeds embedsFlags
}

// register adds the flags to fl.
func (x *extraFlags) register(fl *flag.FlagSet) {
	fl.StringVar(&x.initImage, "init-image", "", "image to edit (PNG): image to image, or inpainting with --mask; its size is the output size")
	fl.StringVar(&x.mask, "mask", "", "inpainting mask (PNG, the init image's size): white is repainted, black kept")
	fl.Float64Var(&x.strength, "strength", 0, "with --init-image: how much of the schedule runs, in (0, 1] (default: 0.8 image to image, 1 inpainting; SD-XL 0.3 and 0.9999)")
	fl.Var(&x.loras, "lora", "LoRA file (kohya/A1111 or diffusers/PEFT safetensors) fused into the text encoder(s) and UNet, with an optional scale (default 1); repeatable")
	fl.StringVar(&x.config, "config", "", "with a single-file --model: a diffusers folder whose configs, tokenizer and scheduler to use (default: inferred from the weights, SD 1.5, 2.x or XL)")
	fl.BoolVar(&x.unet8, "unet-8bit", false, "bind the UNet's Linear and convolution weights as 8-bit integers (half the memory of F16, a small error: docs/memory.md)")
	fl.BoolVar(&x.te8, "text-encoder-8bit", false, "PixArt: bind the T5 encoder's projections as 8-bit integers (docs/memory.md)")
	fl.BoolVar(&x.vaeTiling, "vae-tiling", false, "decode the image by overlapping tiles, blended (less memory for large images; diffusers' enable_tiling)")
	x.modelFlags.register(fl)
	x.embeds.register(fl)
}

// isSingleFile reports whether --model names a single-file checkpoint
// rather than a diffusers folder.
func isSingleFile(model string) bool {
	st, err := os.Stat(model)
	return err == nil && !st.IsDir() && strings.HasSuffix(model, ".safetensors")
}

// configFolder is the folder whose model_index.json and scheduler config
// plan the run: the model folder, or for a single-file checkpoint the
// --config folder, else the configs inferred from the file's weights.
func configFolder(model, config string) (hub.Folder, error) {
	if !isSingleFile(model) {
		if config != "" {
			return nil, errors.New("--config is for a single-file checkpoint (--model FILE.safetensors); a model folder has its own configs")
		}
		return hub.Dir(model), nil
	}
	if config != "" {
		return hub.Dir(config), nil
	}
	sf, err := singlefile.Open(model)
	if err != nil {
		return nil, err
	}
	defer sf.Close()
	fam, err := singlefile.InferFamily(sf)
	if err != nil {
		return nil, err
	}
	return fam.Folder(), nil
}

// loadOptions puts the load-time flags into opt.
func (x *extraFlags) loadOptions(opt *pipeline.LoadOptions) {
	opt.LoRAs = x.loras
	opt.UNet8Bit = x.unet8
	opt.TextEncoder8Bit = x.te8
	opt.StreamTextEncoder = x.streamT5
	x.embeds.loadOptions(opt)
}

// extraGroups are the help groups of the extra flags.
var extraGroups = []flagGroup{
	{"single-file checkpoints", []string{"config"}},
	{"editing", []string{"init-image", "mask", "strength", "lora"}},
	{"memory", []string{"unet-8bit", "text-encoder-8bit", "vae-tiling"}},
}

// extraValues name the extra flags' values in help.
var extraValues = map[string]string{"init-image": "FILE.png", "mask": "FILE.png", "strength": "X", "lora": "FILE[:SCALE]", "config": "DIR"}

// check validates the flags before any model is read (usage errors); set
// holds the flags given.
func (x *extraFlags) check(set map[string]bool) error {
	if err := x.modelFlags.check(set); err != nil {
		return err
	}
	if x.mask != "" && x.initImage == "" {
		return errors.New("--mask needs --init-image (the image to repaint)")
	}
	if x.strength != 0 && x.initImage == "" {
		return errors.New("--strength needs --init-image")
	}
	if x.strength < 0 || x.strength > 1 || (set["strength"] && x.strength == 0) {
		return fmt.Errorf("--strength %g: must be in (0, 1]", x.strength)
	}
	return x.embeds.check()
}

// apply puts the flags into req, reading the files they name; set holds
// the flags given.
func (x *extraFlags) apply(req *pipeline.Request, set map[string]bool) error {
	x.modelFlags.apply(req, set)
	if x.initImage != "" {
		data, err := os.ReadFile(x.initImage)
		if err != nil {
			return err
		}
		if req.InitImage, err = pipeline.ImageFromPNG(data); err != nil {
			return fmt.Errorf("%s: %w", x.initImage, err)
		}
		req.Strength = x.strength
	}
	if x.mask != "" {
		data, err := os.ReadFile(x.mask)
		if err != nil {
			return err
		}
		if req.Mask, err = pipeline.MaskFromPNG(data); err != nil {
			return fmt.Errorf("%s: %w", x.mask, err)
		}
	}
	return x.embeds.apply(req)
}

func init() {
	g := generateHelp.groups
	last := g[len(g)-1] // output
	for i := range g {
		if g[i].title == "T-GATE" {
			g[i].flags = append(g[i].flags, autoGateFlags...)
		}
	}
	g = append(g[:len(g)-1:len(g)-1], modelGroups...)
	g = append(g, extraGroups...)
	generateHelp.groups = append(g, last)
	for _, vs := range []map[string]string{extraValues, modelValues} {
		for k, v := range vs {
			generateHelp.values[k] = v
		}
	}
}
