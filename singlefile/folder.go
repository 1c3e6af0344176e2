package singlefile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// weightFile is the weight file name each component's folder shows, as
// diffusers and transformers save them.
var weightFile = map[string]string{
	UNet:         "diffusion_pytorch_model.safetensors",
	VAE:          "diffusion_pytorch_model.safetensors",
	TextEncoder:  "model.safetensors",
	TextEncoder2: "model.safetensors",
}

// Folder is a single-file checkpoint seen as a diffusers model folder, so
// that every loader of a folder (text-to-image, the VAE encoder of
// image-to-image, LoRA, reloading after T-GATE) loads it unchanged: each
// of unet/, vae/, text_encoder/ (and SD-XL's text_encoder_2/) holds the
// config.json of the config folder and one weight file, a safetensors
// view whose header lists the component's diffusers keys and shapes and
// whose data ranges are the original file's byte ranges (nothing is copied
// or converted in memory but SD-XL's text projection, which is
// transposed).
// Every other file (model_index.json, tokenizer/, scheduler/) is the
// config folder's; weight files the config folder may hold are hidden.
// The original file is closed when the Folder is released and every view
// opened from it is closed.
type Folder struct {
	file   *File
	config hub.Folder
	comps  map[string]*Component

	mu   sync.Mutex
	refs int // the Folder's own reference plus one per open view
}

// AsFolder converts the components of f present in the file under the
// configs of config (a diffusers model folder, or a Family's Folder) and
// returns the folder view. The Folder takes over f: the file closes once
// the Folder is released and every view opened from it is closed. On an
// error f stays open.
func (f *File) AsFolder(config hub.Folder) (*Folder, error) {
	v := &Folder{file: f, config: config, comps: map[string]*Component{}, refs: 1}
	for _, c := range components {
		if !f.Has(c) {
			continue
		}
		cfg, err := config.ReadFile(c + "/config.json")
		if err != nil {
			return nil, fmt.Errorf("singlefile: %s: the %s config: %w", f.Name, c, err)
		}
		if v.comps[c], err = f.Component(c, cfg); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Component returns the converted component name (nil if the file lacks
// it).
func (v *Folder) Component(name string) *Component { return v.comps[name] }

// Release drops the Folder's own hold on the file: it closes when every
// view opened from it is closed too.
func (v *Folder) Release() error { return v.unref() }

func (v *Folder) unref() error {
	v.mu.Lock()
	v.refs--
	last := v.refs == 0
	v.mu.Unlock()
	if last {
		return v.file.Close()
	}
	return nil
}

// quoted finds the quoted strings of an error message.
var quoted = regexp.MustCompile(`"([^"\\]+)"`)

// Explain adds to err, an error of a loader reading the folder, the file
// key of the first diffusers key it quotes: a shape mismatch then names
// the tensor under both names.
func (v *Folder) Explain(err error) error {
	if err == nil {
		return nil
	}
	for _, m := range quoted.FindAllStringSubmatch(err.Error(), -1) {
		for _, comp := range components {
			if c := v.comps[comp]; c != nil {
				if orig, ok := c.Original(m[1]); ok {
					return fmt.Errorf("%w (the file's %q)", err, orig)
				}
			}
		}
	}
	return err
}

// split returns the component a path lies in ("" for none) and the rest.
func (v *Folder) split(name string) (comp, rest string) {
	name = path.Clean(name)
	dir, file := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if _, ok := weightFile[dir]; ok {
		return dir, file
	}
	return "", name
}

// isWeights reports whether a file name is a weight file or shard index
// (model weights never come from the config folder).
func isWeights(name string) bool {
	base := path.Base(name)
	return strings.HasSuffix(base, ".safetensors") || strings.HasSuffix(base, ".bin") ||
		strings.Contains(base, ".safetensors.index")
}

// ReadFile returns the config folder's file; weight files are not read
// whole.
func (v *Folder) ReadFile(name string) ([]byte, error) {
	if isWeights(name) {
		return nil, fmt.Errorf("%s: %s is a weight file: %w", v, name, fs.ErrNotExist)
	}
	return v.config.ReadFile(name)
}

// Exists reports whether the folder holds name: a component's weight view,
// or a file of the config folder other than weights.
func (v *Folder) Exists(name string) (bool, error) {
	if !isWeights(name) {
		return v.config.Exists(name)
	}
	comp, rest := v.split(name)
	return comp != "" && v.comps[comp] != nil && rest == weightFile[comp], nil
}

// Open opens a component's weight view.
func (v *Folder) Open(name string) (safetensors.RangeReader, error) {
	comp, rest := v.split(name)
	c := v.comps[comp]
	if c == nil || rest != weightFile[comp] {
		return nil, fmt.Errorf("%s: no weight file %s: %w", v, name, fs.ErrNotExist)
	}
	view, err := newView(c, v)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.refs++
	v.mu.Unlock()
	return view, nil
}

// String names the folder in messages: the file.
func (v *Folder) String() string { return v.file.Name }

// segment is a view's data range [at, at+n) read from src at from (the
// original file, or the memory of a tensor transposed when the view was
// made).
type segment struct {
	at, n, from int64
	src         io.ReaderAt
}

// view is one component's weights as a safetensors file: a header of
// diffusers keys, then segments of the original file.
type view struct {
	header []byte
	segs   []segment
	size   int64
	owner  *Folder
	once   sync.Once
}

// newView lays out c's weights in key order after a header naming them.
func newView(c *Component, owner *Folder) (*view, error) {
	type entry struct {
		DType   string  `json:"dtype"`
		Shape   []int   `json:"shape"`
		Offsets []int64 `json:"data_offsets"`
	}
	names := c.Names()
	hdr := make(map[string]entry, len(names))
	var segs []segment
	var off int64
	for _, n := range names {
		p := c.parts[n]
		f, info, ok := c.ckpt.Where(p.original)
		if !ok {
			return nil, fmt.Errorf("singlefile: %s: tensor %q is not in the file", c.Name, p.original)
		}
		hdr[n] = entry{DType: p.dtypeStr, Shape: append([]int{}, p.shape...), Offsets: []int64{off, off + p.bytes}}
		seg := segment{at: off, n: p.bytes, from: info.DataStart + info.Begin + p.offset, src: f.Source()}
		if p.transpose {
			raw, err := c.read(p, f, seg.from)
			if err != nil {
				return nil, err
			}
			seg.src, seg.from = bytes.NewReader(raw.Bytes), 0
		}
		segs = append(segs, seg)
		off += p.bytes
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	if pad := (8 - len(js)%8) % 8; pad > 0 {
		js = append(js, bytes.Repeat([]byte{' '}, pad)...)
	}
	head := make([]byte, 8, 8+len(js))
	binary.LittleEndian.PutUint64(head, uint64(len(js)))
	head = append(head, js...)
	start := int64(len(head))
	for i := range segs {
		segs[i].at += start
	}
	return &view{header: head, segs: segs, size: start + off, owner: owner}, nil
}

// Size is the view's length in bytes.
func (v *view) Size() int64 { return v.size }

// ReadAt reads the header from memory and data from the original file.
func (v *view) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("singlefile: negative offset %d", off)
	}
	n := 0
	for len(p) > 0 && off < v.size {
		var k int
		if off < int64(len(v.header)) {
			k = copy(p, v.header[off:])
		} else {
			i := sort.Search(len(v.segs), func(i int) bool { return v.segs[i].at+v.segs[i].n > off })
			s := v.segs[i]
			within := off - s.at
			want := min(int64(len(p)), s.n-within)
			got, err := s.src.ReadAt(p[:want], s.from+within)
			if int64(got) < want {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return n + got, err
			}
			k = got
		}
		n += k
		p = p[k:]
		off += int64(k)
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}

// UploadRange puts a tensor's range of the view on b straight from the
// original file's source when that is a hub.DirectSource; ok is false
// otherwise, and the caller reads the bytes.
func (v *view) UploadRange(b backend.Backend, dt tensor.DType, shape tensor.Shape, off, n int64) (backend.Tensor, bool, error) {
	i := sort.Search(len(v.segs), func(i int) bool { return v.segs[i].at+v.segs[i].n > off })
	if i == len(v.segs) || off < v.segs[i].at || off+n > v.segs[i].at+v.segs[i].n {
		return nil, false, nil
	}
	s := v.segs[i]
	d, ok := s.src.(hub.DirectSource)
	if !ok {
		return nil, false, nil
	}
	return d.UploadRange(b, dt, shape, s.from+off-s.at, n)
}

// Close releases the view's hold on the original file.
func (v *view) Close() error {
	var err error
	v.once.Do(func() { err = v.owner.unref() })
	return err
}
