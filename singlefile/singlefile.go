// Package singlefile reads original-layout ("single-file", CompVis/A1111)
// Stable Diffusion checkpoints: one safetensors file holding the UNet
// under model.diffusion_model., the VAE under first_stage_model. and the
// text encoder under cond_stage_model.transformer. (CLIP, SD 1.x) or
// cond_stage_model.model. (OpenCLIP, SD 2.x). Each component is exposed
// as an nn.Source under diffusers' key names, renamed and reshaped as
// diffusers v0.30.3's from_single_file converts them
// (diffusers/loaders/single_file_utils.py: convert_ldm_unet_checkpoint,
// convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint,
// convert_open_clip_checkpoint), with the block numbering derived from the
// component's config rather than SD 1.5's fixed tables. Tensors stay in
// the file and are read by byte range when bound.
//
// File.Component gives one component as an nn.Source; File.AsFolder
// shows the whole file, with a config folder's configs, tokenizer and
// scheduler, as a diffusers model folder that the folder loaders read
// unchanged. InferFamily and Family.Folder supply the published SD 1.5 or
// SD 2.x configs when no config folder is given.
package singlefile

import (
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// Key prefixes of the original layout, one per component.
const (
	UNetPrefix     = "model.diffusion_model."
	VAEPrefix      = "first_stage_model."
	CLIPPrefix     = "cond_stage_model.transformer."
	OpenCLIPPrefix = "cond_stage_model.model."
	// SD-XL's two text encoders (sgm's GeneralConditioner embedders):
	// CLIP ViT-L and OpenCLIP ViT-bigG with its text projection.
	XLCLIPPrefix     = "conditioner.embedders.0.transformer."
	XLOpenCLIPPrefix = "conditioner.embedders.1.model."
)

// Component names, as diffusers' model_index.json names them.
const (
	UNet         = "unet"
	VAE          = "vae"
	TextEncoder  = "text_encoder"
	TextEncoder2 = "text_encoder_2"
)

// components lists every component a single file may hold.
var components = []string{TextEncoder, TextEncoder2, UNet, VAE}

// File is an opened single-file checkpoint.
type File struct {
	// Name names the file in messages (a path or a URL).
	Name string
	comp *hub.Component
	ckpt *safetensors.Checkpoint
}

// Open opens the single-file checkpoint at path on the local disk.
func Open(path string) (*File, error) {
	return OpenIn(hub.Dir(filepath.Dir(path)), filepath.Base(path))
}

// OpenIn opens the single-file checkpoint name of folder f (a local
// directory or, in the browser, a Hub repository or URL). It reads only
// the safetensors header and checks that the file has the original
// layout's UNet.
func OpenIn(f hub.Folder, name string) (*File, error) {
	if ext := strings.ToLower(path.Ext(name)); ext == ".ckpt" || ext == ".pt" || ext == ".pth" || ext == ".bin" {
		return nil, fmt.Errorf("singlefile: %s is a pickled PyTorch checkpoint (%s), which is not read: convert it to .safetensors first", name, ext)
	}
	c, err := hub.OpenFileIn(f, name)
	if err != nil {
		return nil, err
	}
	display := strings.TrimSuffix(f.String(), "/") + "/" + name
	sf := &File{Name: display, comp: c, ckpt: c.Checkpoint()}
	if !sf.Has(UNet) {
		c.Close()
		return nil, fmt.Errorf("singlefile: %s is not an original-layout Stable Diffusion checkpoint: it has no %s* tensors (%s); a diffusers model folder (model_index.json) loads as a folder instead",
			display, UNetPrefix, sf.sampleKeys())
	}
	return sf, nil
}

// sampleKeys names a few of the file's keys for messages.
func (f *File) sampleKeys() string {
	names := f.ckpt.Names()
	sort.Strings(names)
	if len(names) == 0 {
		return "the file holds no tensors"
	}
	if len(names) > 3 {
		return fmt.Sprintf("its keys start %q, %q, %q, ... (%d in all)", names[0], names[1], names[2], len(names))
	}
	return fmt.Sprintf("its keys are %q", names)
}

// Weights returns the whole file as a hub.Component with no config, for
// closing (and for tools that list the raw keys).
func (f *File) Weights() *hub.Component { return f.comp }

// Close closes the file.
func (f *File) Close() error { return f.comp.Close() }

// Shape returns the stored shape of the file tensor key.
func (f *File) Shape(key string) (tensor.Shape, bool) {
	info, ok := f.ckpt.Info(key)
	if !ok {
		return nil, false
	}
	return info.Shape, true
}

// prefixOf returns the original prefix of component, "" if the file has
// none of its tensors.
func (f *File) prefixOf(component string) string {
	var cands []string
	switch component {
	case UNet:
		cands = []string{UNetPrefix}
	case VAE:
		cands = []string{VAEPrefix}
	case TextEncoder:
		cands = []string{CLIPPrefix, OpenCLIPPrefix, XLCLIPPrefix}
	case TextEncoder2:
		cands = []string{XLOpenCLIPPrefix}
	}
	for _, p := range cands {
		for _, n := range f.ckpt.Names() {
			if strings.HasPrefix(n, p) {
				return p
			}
		}
	}
	return ""
}

// Has reports whether the file holds tensors of component (UNet, VAE,
// TextEncoder or TextEncoder2).
func (f *File) Has(component string) bool { return f.prefixOf(component) != "" }

// OpenCLIP reports whether the text encoder is in OpenCLIP's layout
// (cond_stage_model.model., SD 2.x).
func (f *File) OpenCLIP() bool { return f.prefixOf(TextEncoder) == OpenCLIPPrefix }

// Component returns component (UNet, VAE, TextEncoder or TextEncoder2,
// SD-XL's CLIPTextModelWithProjection) of the file under
// diffusers' key names, with configJSON (the component's diffusers
// config.json) giving the block structure the keys are numbered by. A
// component the file lacks, and UNet or VAE tensors that have no place in
// the structure configJSON describes, are errors naming the keys.
func (f *File) Component(component string, configJSON []byte) (*Component, error) {
	prefix := f.prefixOf(component)
	if prefix == "" {
		want := map[string]string{UNet: UNetPrefix, VAE: VAEPrefix, TextEncoder: CLIPPrefix + ", " + OpenCLIPPrefix + " or " + XLCLIPPrefix,
			TextEncoder2: XLOpenCLIPPrefix}[component]
		if want == "" {
			return nil, fmt.Errorf("singlefile: unknown component %q (want one of %v)", component, components)
		}
		return nil, fmt.Errorf("singlefile: %s has no %s weights (no tensors under %s): it is not a complete Stable Diffusion checkpoint",
			f.Name, component, want)
	}
	var convert func(key string) ([]target, bool)
	var err error
	// blocks are the first key segments of the modules whose numbering
	// the config gives: a tensor under them that has no place means the
	// config and the file disagree. Other unknown tensors (buffers, a
	// projection CLIPTextModel lacks) are left out, as diffusers does.
	var blocks map[string]bool
	switch {
	case component == UNet:
		convert, err = unetConverter(configJSON)
		blocks = map[string]bool{"input_blocks": true, "middle_block": true, "output_blocks": true}
	case component == VAE:
		convert, err = vaeConverter(configJSON)
		blocks = map[string]bool{"encoder": true, "decoder": true}
	case prefix == OpenCLIPPrefix:
		convert = openCLIPConverter
	case prefix == XLOpenCLIPPrefix:
		convert = openCLIPProjectionConverter
	default:
		convert = clipConverter
	}
	if err != nil {
		return nil, fmt.Errorf("singlefile: %s (%s): %w", f.Name, component, err)
	}
	c := &Component{Name: f.Name + " (" + component + ")", config: configJSON, ckpt: f.ckpt, parts: map[string]part{}}
	var unplaced []string
	for _, n := range f.ckpt.Names() {
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		key := strings.TrimPrefix(n, prefix)
		ts, ok := convert(key)
		if !ok {
			if first, _, _ := strings.Cut(key, "."); blocks[first] {
				unplaced = append(unplaced, n)
			}
			continue
		}
		info, _ := f.ckpt.Info(n)
		if err := c.add(n, info, ts); err != nil {
			return nil, err
		}
	}
	if len(unplaced) > 0 {
		sort.Strings(unplaced)
		more := ""
		if len(unplaced) > 3 {
			more = fmt.Sprintf(" and %d more", len(unplaced)-3)
			unplaced = unplaced[:3]
		}
		return nil, fmt.Errorf("singlefile: %s: tensors %q%s have no place in the %s its config describes (%s); the config does not match the file",
			f.Name, unplaced, more, component, describe(component, configJSON))
	}
	return c, nil
}
