// Package hub finds a model's files: the components of a diffusers model
// folder (model_index.json, each component's config.json and weights) on
// the local disk. The browser build reaches the same layout over HTTP.
package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// Component is one model component folder (unet/, vae/, text_encoder/...):
// its config.json and its weights. It implements nn.Source.
type Component struct {
	Dir    string
	config []byte
	ckpt   *safetensors.Checkpoint
}

// Variants are the weight variants OpenComponent tries, in order: the
// plain file first, then diffusers' fp16 variant.
var Variants = []string{"", "fp16"}

// OpenComponent opens the component folder dir: its config.json and the
// first weights found among the plain and fp16 variants, single file or
// sharded.
func OpenComponent(dir string) (*Component, error) {
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("hub: %s: reading config.json: %w", dir, err)
	}
	var firstErr error
	for _, v := range Variants {
		ck, err := safetensors.OpenDir(dir, v)
		if err == nil {
			return &Component{Dir: dir, config: cfg, ckpt: ck}, nil
		}
		if !errors.Is(err, safetensors.ErrNoWeights) {
			return nil, err
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// OpenConfigOnly opens a component folder that has a config.json and
// perhaps no weights; Lookup then finds nothing. It serves shape-only work.
func OpenConfigOnly(dir string) (*Component, error) {
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("hub: %s: reading config.json: %w", dir, err)
	}
	return &Component{Dir: dir, config: cfg}, nil
}

// OpenFile opens a single safetensors file (or a shard index) as a
// component with no config.
func OpenFile(path string) (*Component, error) {
	ck, err := safetensors.OpenPath(path)
	if err != nil {
		return nil, err
	}
	return &Component{Dir: filepath.Dir(path), ckpt: ck}, nil
}

// ConfigJSON returns the raw config.json bytes (nil for OpenFile).
func (c *Component) ConfigJSON() []byte { return c.config }

// DecodeConfig unmarshals config.json into v.
func (c *Component) DecodeConfig(v any) error {
	if c.config == nil {
		return fmt.Errorf("hub: %s has no config.json", c.Dir)
	}
	if err := json.Unmarshal(c.config, v); err != nil {
		return fmt.Errorf("hub: %s/config.json: %w", c.Dir, err)
	}
	return nil
}

// Checkpoint returns the component's weights (nil for OpenConfigOnly).
func (c *Component) Checkpoint() *safetensors.Checkpoint { return c.ckpt }

// Names lists every weight name.
func (c *Component) Names() []string {
	if c.ckpt == nil {
		return nil
	}
	return c.ckpt.Names()
}

// Lookup returns the stored dtype and shape of the named weight.
func (c *Component) Lookup(name string) (tensor.DType, tensor.Shape, bool) {
	if c.ckpt == nil {
		return 0, nil, false
	}
	info, ok := c.ckpt.Info(name)
	if !ok {
		return 0, nil, false
	}
	dt, err := tensor.ParseDType(info.DType)
	if err != nil {
		return -1, info.Shape, true // not a weight dtype: the binder rejects it by name
	}
	return dt, info.Shape, true
}

// Load reads the named weight and uploads it to b in its stored dtype.
func (c *Component) Load(b backend.Backend, name string) (backend.Tensor, error) {
	raw, err := c.ckpt.ReadRaw(name)
	if err != nil {
		return nil, err
	}
	return b.UploadRaw(raw), nil
}

// Close closes the weight files.
func (c *Component) Close() error {
	if c.ckpt == nil {
		return nil
	}
	return c.ckpt.Close()
}
