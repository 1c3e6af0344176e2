package singlefile

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// part is where one diffusers weight lies in the single file: a stored
// tensor, or a contiguous slice of its rows (OpenCLIP's fused in_proj),
// viewed with the diffusers shape.
type part struct {
	original string       // the key in the file
	dtype    tensor.DType // the stored dtype
	dtypeStr string       // the stored dtype as safetensors spells it
	shape    tensor.Shape // the diffusers shape
	offset   int64        // bytes into the stored tensor
	bytes    int64        // how many bytes
	// transpose: the weight is the stored 2-D tensor transposed, made in
	// memory when read.
	transpose bool
}

// Component is one diffusers component (unet, vae or text_encoder) of a
// single-file checkpoint: the file's tensors under the component's
// original prefix, renamed to diffusers' keys and reshaped where diffusers
// reshapes them. It implements nn.Source and unet.Component. Tensors are
// read lazily, each by its byte range of the file, and go straight to the
// backend when the file's source is a hub.DirectSource.
type Component struct {
	// Name names the component in messages: "FILE (unet)".
	Name   string
	config []byte
	ckpt   *safetensors.Checkpoint
	parts  map[string]part
}

// String returns Name.
func (c *Component) String() string { return c.Name }

// ConfigJSON returns the component's config.json bytes.
func (c *Component) ConfigJSON() []byte { return c.config }

// DecodeConfig unmarshals the component's config.json into v.
func (c *Component) DecodeConfig(v any) error {
	if c.config == nil {
		return fmt.Errorf("singlefile: %s has no config", c.Name)
	}
	if err := json.Unmarshal(c.config, v); err != nil {
		return fmt.Errorf("singlefile: %s config.json: %w", c.Name, err)
	}
	return nil
}

// Names lists the component's diffusers keys, sorted.
func (c *Component) Names() []string {
	out := make([]string, 0, len(c.parts))
	for k := range c.parts {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Original returns the file key holding the diffusers key name.
func (c *Component) Original(name string) (string, bool) {
	p, ok := c.parts[name]
	return p.original, ok
}

// Lookup returns the stored dtype and the diffusers shape of the named
// weight.
func (c *Component) Lookup(name string) (tensor.DType, tensor.Shape, bool) {
	p, ok := c.parts[name]
	if !ok {
		return 0, nil, false
	}
	return p.dtype, p.shape, true
}

// Load puts the named weight on b in its stored dtype, reading only its
// byte range of the file: straight from the file's source when that is a
// hub.DirectSource able to write to b, else read into memory and uploaded.
func (c *Component) Load(b backend.Backend, name string) (backend.Tensor, error) {
	p, f, off, err := c.locate(name)
	if err != nil {
		return nil, err
	}
	if d, ok := f.Source().(hub.DirectSource); ok && !p.transpose {
		t, ok, err := d.UploadRange(b, p.dtype, p.shape, off, p.bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", f.Name(), p.original, err)
		}
		if ok {
			return t, nil
		}
	}
	raw, err := c.read(p, f, off)
	if err != nil {
		return nil, err
	}
	return b.UploadRaw(raw), nil
}

// ReadFloat32 reads the named weight into host memory as float32 (for
// tests and tools; the loaders use Load).
func (c *Component) ReadFloat32(name string) (*tensor.Host, error) {
	p, f, off, err := c.locate(name)
	if err != nil {
		return nil, err
	}
	raw, err := c.read(p, f, off)
	if err != nil {
		return nil, err
	}
	return raw.Float32()
}

// locate finds the named weight's part, the file holding it and its
// absolute byte offset there.
func (c *Component) locate(name string) (part, *safetensors.File, int64, error) {
	p, ok := c.parts[name]
	if !ok {
		return part{}, nil, 0, fmt.Errorf("singlefile: %s has no weight %q", c.Name, name)
	}
	f, info, ok := c.ckpt.Where(p.original)
	if !ok {
		return part{}, nil, 0, fmt.Errorf("singlefile: %s: tensor %q is not in the file", c.Name, p.original)
	}
	return p, f, info.DataStart + info.Begin + p.offset, nil
}

// read reads part p at off of f into memory (transposed if p says so).
func (c *Component) read(p part, f *safetensors.File, off int64) (*tensor.Raw, error) {
	buf := make([]byte, p.bytes)
	if n, err := f.Source().ReadAt(buf, off); n != len(buf) {
		return nil, fmt.Errorf("%s: tensor %q: reading %d bytes at offset %d: %v", f.Name(), p.original, len(buf), off, err)
	}
	if p.transpose {
		buf = transpose2D(buf, p.shape[1], p.shape[0], p.dtype.Size())
	}
	return &tensor.Raw{DType: p.dtype, Shape: p.shape.Clone(), Bytes: buf}, nil
}

// transpose2D returns the transpose of a row-major rows×cols matrix of
// size-byte elements.
func transpose2D(src []byte, rows, cols, size int) []byte {
	dst := make([]byte, len(src))
	for r := range rows {
		for c := range cols {
			copy(dst[(c*rows+r)*size:(c*rows+r+1)*size], src[(r*cols+c)*size:(r*cols+c+1)*size])
		}
	}
	return dst
}

// target is one diffusers weight a file tensor becomes: its key; whether
// trailing 1s of the stored shape beyond rank 2 are dropped (a 1×1 conv
// kernel [C, C, 1, 1] read as a Linear weight [C, C]); whether the stored
// matrix is transposed (open_clip's text_projection); and, for a fused
// tensor split along its first dimension, which of how many equal row
// blocks it is.
type target struct {
	key          string
	squeeze      bool
	transpose    bool
	chunk, parts int
}

// add records the targets of the file tensor original (its info given).
func (c *Component) add(original string, info safetensors.Info, ts []target) error {
	dt, err := info.TensorDType()
	if err != nil {
		return fmt.Errorf("singlefile: %s: tensor %q: %w", c.Name, original, err)
	}
	for _, t := range ts {
		p := part{original: original, dtype: dt, dtypeStr: info.DType, shape: info.Shape.Clone(), bytes: info.Bytes()}
		if t.parts > 1 {
			if len(info.Shape) == 0 || info.Shape[0]%t.parts != 0 {
				return fmt.Errorf("singlefile: %s: tensor %q has shape %v; want a first dimension divisible by %d", c.Name, original, info.Shape, t.parts)
			}
			p.shape[0] /= t.parts
			p.bytes /= int64(t.parts)
			p.offset = int64(t.chunk) * p.bytes
		}
		if t.transpose {
			if len(p.shape) != 2 {
				return fmt.Errorf("singlefile: %s: tensor %q has shape %v; want a matrix to transpose", c.Name, original, info.Shape)
			}
			p.shape[0], p.shape[1] = p.shape[1], p.shape[0]
			p.transpose = true
		}
		if t.squeeze {
			for len(p.shape) > 2 && p.shape[len(p.shape)-1] == 1 {
				p.shape = p.shape[:len(p.shape)-1]
			}
		}
		if prev, dup := c.parts[t.key]; dup {
			return fmt.Errorf("singlefile: %s: tensors %q and %q both map to %q", c.Name, prev.original, original, t.key)
		}
		c.parts[t.key] = p
	}
	return nil
}
