// Package hub finds a model's files: the components of a diffusers model
// folder (model_index.json, each component's config.json and weights) on
// the local disk. The browser build reaches the same layout over HTTP.
package hub

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// Component is one model component folder (unet/, vae/, text_encoder/...):
// its config.json and its weights. It implements nn.Source.
type Component struct {
	// Dir names the folder in messages (a path or a URL).
	Dir    string
	config []byte
	ckpt   *safetensors.Checkpoint
}

// Variants are the weight variants OpenComponent tries, in order: the
// plain file first (what diffusers loads without variant=), then
// diffusers' fp16 variant.
var Variants = []string{"", "fp16"}

// PreferFP16 is the order for downloads: the fp16 variant (half the
// bytes) when the folder has it, else the plain file.
var PreferFP16 = []string{"fp16", ""}

// OpenComponent opens the component folder dir on the local disk (see
// OpenComponentIn) with the Variants order.
func OpenComponent(dir string) (*Component, error) {
	return OpenComponentIn(Dir(dir), Variants)
}

// OpenComponentIn opens the component folder f: its config.json and the
// weights of the first variant of variants found, single file or sharded
// (safetensors.Candidates gives the names, as diffusers looks for them).
func OpenComponentIn(f Folder, variants []string) (*Component, error) {
	cfg, err := readFile(f, "config.json")
	if err != nil {
		return nil, err
	}
	var probeErr error
	exists := func(name string) bool {
		ok, err := f.Exists(name)
		if err != nil && probeErr == nil {
			probeErr = err
		}
		return ok
	}
	var looked []string
	for _, v := range variants {
		c, ok := safetensors.Locate(exists, v)
		if probeErr != nil {
			return nil, fmt.Errorf("hub: %s: %w", f, probeErr)
		}
		if !ok {
			for _, c := range safetensors.Candidates(v) {
				looked = append(looked, c.Name)
			}
			continue
		}
		ck, err := openCheckpoint(f, c)
		if err != nil {
			return nil, err
		}
		return &Component{Dir: f.String(), config: cfg, ckpt: ck}, nil
	}
	return nil, fmt.Errorf("safetensors: %s: %w (looked for %s)", f, safetensors.ErrNoWeights, strings.Join(looked, ", "))
}

// openCheckpoint opens a located weight file or shard index of f.
func openCheckpoint(f Folder, c safetensors.Candidate) (*safetensors.Checkpoint, error) {
	if d, ok := f.(Dir); ok {
		return safetensors.OpenPath(filepath.Join(string(d), c.Name))
	}
	display := strings.TrimSuffix(f.String(), "/") + "/" + c.Name
	if c.Sharded {
		data, err := readFile(f, c.Name)
		if err != nil {
			return nil, err
		}
		return safetensors.LoadIndex(display, data, f.Open)
	}
	src, err := f.Open(c.Name)
	if err != nil {
		return nil, fmt.Errorf("hub: %s: %w", display, err)
	}
	file, err := safetensors.ParseReader(src)
	if err != nil {
		if cl, ok := src.(interface{ Close() error }); ok {
			cl.Close()
		}
		return nil, fmt.Errorf("%s: %w", display, err)
	}
	file.SetName(display)
	return safetensors.Single(file), nil
}

// OpenConfigOnly opens a component folder that has a config.json and
// perhaps no weights; Lookup then finds nothing. It serves shape-only work.
func OpenConfigOnly(dir string) (*Component, error) { return OpenConfigOnlyIn(Dir(dir)) }

// OpenConfigOnlyIn is OpenConfigOnly for any Folder.
func OpenConfigOnlyIn(f Folder) (*Component, error) {
	cfg, err := readFile(f, "config.json")
	if err != nil {
		return nil, err
	}
	return &Component{Dir: f.String(), config: cfg}, nil
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

// OpenFileIn opens the single safetensors file name of f as a component
// with no config.
func OpenFileIn(f Folder, name string) (*Component, error) {
	ck, err := openCheckpoint(f, safetensors.Candidate{Name: name, Sharded: strings.HasSuffix(name, ".json")})
	if err != nil {
		return nil, err
	}
	return &Component{Dir: f.String(), ckpt: ck}, nil
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

// Load puts the named weight on b in its stored dtype: straight from the
// file source when it is a DirectSource that can write to b, else read
// into memory and uploaded.
func (c *Component) Load(b backend.Backend, name string) (backend.Tensor, error) {
	if f, info, ok := c.ckpt.Where(name); ok {
		if d, ok := f.Source().(DirectSource); ok {
			if dt, err := tensor.ParseDType(info.DType); err == nil {
				t, ok, err := d.UploadRange(b, dt, info.Shape, info.DataStart+info.Begin, info.Bytes())
				if err != nil {
					return nil, fmt.Errorf("%s: %w", f.Name(), err)
				}
				if ok {
					return t, nil
				}
			}
		}
	}
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
