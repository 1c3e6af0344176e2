package pipeline

import (
	"fmt"
	"path/filepath"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/singlefile"
)

// LoadSingleFilePath is LoadSingleFile for a file on the local disk, with
// configDir the diffusers folder of its configs ("" to infer them).
func LoadSingleFilePath(b backend.Backend, path, configDir string, opt LoadOptions) (*Pipeline, error) {
	var config hub.Folder
	if configDir != "" {
		config = hub.Dir(configDir)
	}
	return LoadSingleFile(b, hub.Dir(filepath.Dir(path)), filepath.Base(path), config, opt)
}

// LoadSingleFile loads an original-layout ("single-file", CompVis/A1111)
// Stable Diffusion checkpoint, the safetensors file name of folder file,
// as diffusers' StableDiffusionPipeline.from_single_file(path, config=…)
// does (diffusers/loaders/single_file.py): UNet, VAE and text encoder come
// from the file, their keys converted by package singlefile, and
// model_index.json, the component configs, tokenizer/ and scheduler/ come
// from config, a diffusers model folder whose own weights are never read.
// With config nil the configs are inferred from the file's keys
// (singlefile.InferFamily: SD 1.5, SD-XL base, or SD 2.x taken as the
// ε-prediction base model, which Pipeline.Notes then says) and the
// tokenizers are openai/CLIP's BPE file. SD-XL files (text encoders under
// conditioner.embedders.0/1) load into the SD-XL pipeline. A config whose shapes disagree with the file
// fails here, naming the key and both shapes.
//
// The file is loaded through singlefile.Folder, which shows it as a
// diffusers folder, so the result is LoadFolder's *Pipeline and every
// later reload (T-GATE, LoRA, the VAE encoder) reads the same file.
func LoadSingleFile(b backend.Backend, file hub.Folder, name string, config hub.Folder, opt LoadOptions) (*Pipeline, error) {
	sf, err := singlefile.OpenIn(file, name)
	if err != nil {
		return nil, err
	}
	var note string
	if config == nil {
		fam, err := singlefile.InferFamily(sf)
		if err != nil {
			sf.Close()
			return nil, err
		}
		config, note = fam.Folder(), fam.Note
	}
	need := []string{singlefile.TextEncoder, singlefile.UNet}
	if !opt.SkipVAE {
		need = append(need, singlefile.VAE)
	}
	if mi, err := hub.ReadModelIndexIn(config); err == nil && mi.Class(singlefile.TextEncoder2) != "" {
		need = append(need, singlefile.TextEncoder2)
	}
	for _, c := range need {
		if !sf.Has(c) {
			_, err := sf.Component(c, nil) // names the prefix the file lacks
			sf.Close()
			if c == singlefile.VAE {
				err = fmt.Errorf("%w; load with SkipVAE for latent or TAESD output", err)
			}
			return nil, err
		}
	}
	view, err := sf.AsFolder(config)
	if err != nil {
		sf.Close()
		return nil, err
	}
	p, err := LoadFolder(b, view, opt)
	// The pipeline's open components keep the file open until p.Close.
	view.Release()
	if err != nil {
		return nil, view.Explain(err)
	}
	if note != "" {
		p.Notes = append(p.Notes, note)
	}
	return p, nil
}
