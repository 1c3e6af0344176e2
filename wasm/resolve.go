//go:build js && wasm

package main

import (
	"fmt"
	"path"
	"strings"

	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/hub/browser"
	"github.com/tgate-web/tgate/singlefile"
	"github.com/tgate-web/tgate/tensor"
)

// resolvedModel is a load's source resolved: a diffusers folder (repo), or
// a single-file checkpoint (file, name) with the folder of its configs.
type resolvedModel struct {
	src  hub.Source    // the source as given (for ModelInfo)
	repo *browser.Repo // the model folder or the single file's folder; nil for a picked file
	file hub.Folder    // the single file's folder, nil for a diffusers folder
	name string        // the single file's name in file
	// config is the single file's config folder (nil: inferred), and
	// configs where the estimate reads the configs.
	config, configs hub.Folder
	// f16 tells whether the UNet's weights are F16 (for the estimate).
	f16 bool
}

// isSingleFile reports whether a load source names one .safetensors file
// (a URL, "owner/name/file.safetensors" or a picked file's blob: URL)
// rather than a diffusers folder.
func isSingleFile(source string) bool {
	return browser.IsBlobURL(source) || strings.HasSuffix(source, ".safetensors")
}

// resolveModel finds source's files (the Hub's file list for a repo) and,
// for a single-file checkpoint, downloads it (its header says which
// configs fit it, when config is empty) and opens the config folder.
func (e *engine) resolveModel(source, hubAddr, config string, progress browser.Progress) (*resolvedModel, error) {
	if !isSingleFile(source) {
		if config != "" {
			return nil, coded("bad-request", fmt.Errorf("the config option is for a single-file checkpoint (a .safetensors URL); %s is a model folder with its own configs", source))
		}
		src, err := hub.ParseSource(source, hubAddr)
		if err != nil {
			return nil, coded("bad-request", err)
		}
		repo, err := browser.Open(src, e.store, progress)
		if err != nil {
			return nil, coded("download", err)
		}
		m := &resolvedModel{src: src, repo: repo, configs: repo}
		for name := range repo.Files {
			if strings.HasPrefix(name, "unet/") && strings.Contains(name, ".fp16.") {
				m.f16 = true
			}
		}
		return m, nil
	}
	m := &resolvedModel{src: hub.Source{Base: source}}
	if browser.IsBlobURL(source) {
		f, name, err := e.openFile(source, hubAddr, "model.safetensors")
		if err != nil {
			return nil, coded("bad-request", err)
		}
		m.file, m.name = f, name
	} else {
		i := strings.LastIndex(source, "/")
		dir := source[:i+1]
		if !strings.Contains(dir, "://") {
			dir = strings.TrimSuffix(dir, "/")
		}
		src, err := hub.ParseSource(dir, hubAddr)
		if err != nil {
			return nil, coded("bad-request", err)
		}
		m.src = src
		if m.repo, err = browser.Open(src, e.store, progress); err != nil {
			return nil, coded("download", err)
		}
		m.file, m.name = m.repo, path.Base(source)
	}
	sf, err := singlefile.OpenIn(m.file, m.name)
	if err != nil {
		return nil, coded(codeOrBadModel(err), err)
	}
	defer sf.Close()
	if dt, _, ok := sf.Weights().Lookup(singlefile.UNetPrefix + "input_blocks.0.0.weight"); ok {
		m.f16 = dt != tensor.F32
	}
	if config != "" {
		csrc, err := hub.ParseSource(config, hubAddr)
		if err != nil {
			return nil, coded("bad-request", err)
		}
		repo, err := browser.Open(csrc, e.store, progress)
		if err != nil {
			return nil, coded("download", err)
		}
		m.config, m.configs = repo, repo
		return m, nil
	}
	fam, err := singlefile.InferFamily(sf)
	if err != nil {
		return nil, coded("bad-model", err)
	}
	m.configs = fam.Folder()
	return m, nil
}

// opened lists the weight files the load read (none are listed for a
// picked file, which is not downloaded).
func (m *resolvedModel) opened() []browser.File {
	if m.repo == nil {
		return []browser.File{}
	}
	return m.repo.Opened()
}
