package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tgate-web/tgate/tensor"
)

// Store is the lookup a model loader binds weights through; *File and
// *Checkpoint implement it.
type Store interface {
	// Names returns every tensor name (file order; shard by shard).
	Names() []string
	// Info describes the named tensor.
	Info(name string) (Info, bool)
	// ReadRaw reads the named tensor in its stored encoding.
	ReadRaw(name string) (*tensor.Raw, error)
	// ReadFloat32 reads the named tensor widened to float32.
	ReadFloat32(name string) (*tensor.Host, error)
}

var (
	_ Store = (*File)(nil)
	_ Store = (*Checkpoint)(nil)
)

// ErrNoWeights is returned (wrapped) by OpenDir when a folder holds none of
// the weight file names it looks for.
var ErrNoWeights = errors.New("no safetensors weights")

// Weight file stems: diffusers models save diffusion_pytorch_model.*,
// transformers models save model.* (diffusers utils/constants.py
// SAFETENSORS_WEIGHTS_NAME; transformers utils SAFE_WEIGHTS_NAME).
var weightStems = []string{"diffusion_pytorch_model", "model"}

// AddVariant inserts variant before the last dot of name, as diffusers'
// utils/hub_utils.py _add_variant does: "model.safetensors" with "fp16"
// becomes "model.fp16.safetensors", and "model.safetensors.index.json"
// becomes "model.safetensors.index.fp16.json". An empty variant returns
// name unchanged.
func AddVariant(name, variant string) string {
	if variant == "" {
		return name
	}
	i := strings.LastIndex(name, ".")
	if i < 0 {
		return name + "." + variant
	}
	return name[:i] + "." + variant + name[i:]
}

// Candidate is one weight file a component folder may hold.
type Candidate struct {
	Name    string // file name inside the folder
	Sharded bool   // Name is a shard index (…safetensors.index[.variant].json)
}

// Candidates lists, in the order they are tried, the weight files of a
// model component folder for a variant ("" for none, or e.g. "fp16"): for
// each stem (diffusion_pytorch_model, then model) the single file
// stem[.variant].safetensors, then the index
// stem.safetensors.index[.variant].json. Other *.safetensors files in the
// folder (such as golden io.safetensors) are never weights.
func Candidates(variant string) []Candidate {
	var out []Candidate
	for _, stem := range weightStems {
		out = append(out,
			Candidate{AddVariant(stem+".safetensors", variant), false},
			Candidate{AddVariant(stem+".safetensors.index.json", variant), true})
	}
	return out
}

// Locate returns the first of Candidates(variant) for which exists
// reports true. exists may stat a local file or probe a URL.
func Locate(exists func(name string) bool, variant string) (Candidate, bool) {
	for _, c := range Candidates(variant) {
		if exists(c.Name) {
			return c, true
		}
	}
	return Candidate{}, false
}

// Opener opens a file of a checkpoint by its name relative to the
// checkpoint's folder (a shard named in an index). For a file that does
// not exist it returns an error wrapping fs.ErrNotExist.
type Opener func(name string) (RangeReader, error)

// Checkpoint is the set of tensors of one model component: a single
// safetensors file, or every shard named by an index. Names are unique
// across shards.
type Checkpoint struct {
	files []*File
	names []string
	where map[string]*File
}

// Single wraps one parsed file as a Checkpoint.
func Single(f *File) *Checkpoint {
	c, _ := newCheckpoint([]*File{f})
	return c
}

func newCheckpoint(files []*File) (*Checkpoint, error) {
	c := &Checkpoint{files: files, where: map[string]*File{}}
	for _, f := range files {
		for _, n := range f.Names() {
			if g, dup := c.where[n]; dup {
				return nil, &FormatError{File: f.Name(), Tensor: n,
					Problem: fmt.Sprintf("also stored in shard %s", g.Name())}
			}
			c.where[n] = f
			c.names = append(c.names, n)
		}
	}
	return c, nil
}

// Files returns the files (shards) of the checkpoint.
func (c *Checkpoint) Files() []*File { return append([]*File(nil), c.files...) }

// Names returns every tensor name: shard by shard, each in file order.
func (c *Checkpoint) Names() []string { return append([]string(nil), c.names...) }

// Len returns the number of tensors.
func (c *Checkpoint) Len() int { return len(c.names) }

// Info describes the named tensor; Info.File names its shard.
func (c *Checkpoint) Info(name string) (Info, bool) {
	f, ok := c.where[name]
	if !ok {
		return Info{}, false
	}
	return f.Info(name)
}

// Where returns the shard holding the named tensor and the tensor's Info,
// for loaders that read the bytes themselves (File.Source, Info.DataStart).
func (c *Checkpoint) Where(name string) (*File, Info, bool) {
	f, ok := c.where[name]
	if !ok {
		return nil, Info{}, false
	}
	info, ok := f.Info(name)
	return f, info, ok
}

// ReadRaw reads the named tensor from its shard in its stored encoding.
func (c *Checkpoint) ReadRaw(name string) (*tensor.Raw, error) {
	f, ok := c.where[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: tensor %q not found in the checkpoint", name)
	}
	return f.ReadRaw(name)
}

// ReadFloat32 reads the named tensor widened to float32.
func (c *Checkpoint) ReadFloat32(name string) (*tensor.Host, error) { return readFloat32(c, name) }

// Close closes every shard.
func (c *Checkpoint) Close() error {
	var first error
	for _, f := range c.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Index is a parsed shard index (*.safetensors.index.json).
type Index struct {
	// WeightMap maps each tensor name to the shard file holding it.
	WeightMap map[string]string
	// TotalSize is metadata.total_size when present, else -1.
	TotalSize int64
}

// Shards returns the distinct shard file names, sorted.
func (ix *Index) Shards() []string {
	set := map[string]bool{}
	for _, s := range ix.WeightMap {
		set[s] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// ParseIndex decodes a shard index {"metadata": {...}, "weight_map":
// {tensor: shard file}}. A tensor listed twice, a non-string shard, a
// shard name that is not a plain file name, or an empty weight_map is an
// error.
func ParseIndex(data []byte) (*Index, error) {
	ix := &Index{WeightMap: map[string]string{}, TotalSize: -1}
	p := &jsonWalker{dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	if _, err := p.open('{', "", "the index"); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	haveMap := false
	for p.dec.More() {
		k, err := p.key("")
		if err != nil {
			return nil, err
		}
		if seen[k] {
			return nil, formatErr("", "index key %q appears more than once", k)
		}
		seen[k] = true
		switch k {
		case "weight_map":
			haveMap = true
			if _, err := p.open('{', "", "weight_map"); err != nil {
				return nil, err
			}
			for p.dec.More() {
				name, err := p.key("")
				if err != nil {
					return nil, err
				}
				tok, err := p.token(name)
				if err != nil {
					return nil, err
				}
				shard, ok := tok.(string)
				if !ok {
					return nil, formatErr(name, "weight_map value must be a shard file name, found %s", kind(tok))
				}
				if _, dup := ix.WeightMap[name]; dup {
					return nil, formatErr(name, "weight_map lists this tensor more than once")
				}
				if shard == "" || shard == "." || shard == ".." || strings.ContainsAny(shard, `/\`) {
					return nil, formatErr(name, "weight_map shard %q is not a plain file name", shard)
				}
				ix.WeightMap[name] = shard
			}
			if err := p.close('}', ""); err != nil {
				return nil, err
			}
		case "metadata":
			if err := p.indexMetadata(ix); err != nil {
				return nil, err
			}
		default:
			if err := p.skip(""); err != nil {
				return nil, err
			}
		}
	}
	if err := p.close('}', ""); err != nil {
		return nil, err
	}
	if !haveMap {
		return nil, formatErr("", "index has no weight_map")
	}
	if len(ix.WeightMap) == 0 {
		return nil, formatErr("", "index weight_map is empty")
	}
	return ix, nil
}

func (p *jsonWalker) indexMetadata(ix *Index) error {
	tok, err := p.token("")
	if err != nil {
		return err
	}
	if tok == nil {
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return formatErr("", "index metadata must be an object, found %s", kind(tok))
	}
	for p.dec.More() {
		k, err := p.key("")
		if err != nil {
			return err
		}
		if k == "total_size" {
			v, err := p.uint("", "metadata.total_size")
			if err != nil {
				return err
			}
			ix.TotalSize = v
			continue
		}
		if err := p.skip(""); err != nil {
			return err
		}
	}
	return p.close('}', "")
}

// LoadIndex parses a shard index and opens every shard it names through
// open. Each tensor of the weight_map must be in the shard it names, and
// no tensor may be stored in two shards. indexName is used in errors;
// shards are named as the index names them.
func LoadIndex(indexName string, data []byte, open Opener) (*Checkpoint, error) {
	return loadIndex(indexName, data, open, func(s string) string { return s })
}

// loadIndex is LoadIndex with display giving the name a shard is reported
// by (its path, for a local folder).
func loadIndex(indexName string, data []byte, open Opener, display func(string) string) (*Checkpoint, error) {
	ix, err := ParseIndex(data)
	if err != nil {
		return nil, withFile(err, indexName)
	}
	var files []*File
	fail := func(err error) (*Checkpoint, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	byShard := map[string]*File{}
	for _, shard := range ix.Shards() {
		src, err := open(shard)
		if errors.Is(err, fs.ErrNotExist) {
			return fail(&FormatError{File: indexName,
				Problem: fmt.Sprintf("shard %s named in weight_map does not exist", display(shard))})
		}
		if err != nil {
			return fail(fmt.Errorf("safetensors: %s: shard %s: %w", indexName, display(shard), err))
		}
		f, err := ParseReader(src)
		if err != nil {
			if c, ok := src.(interface{ Close() error }); ok {
				c.Close()
			}
			return fail(withFile(err, display(shard)))
		}
		f.SetName(display(shard))
		files = append(files, f)
		byShard[shard] = f
	}
	names := make([]string, 0, len(ix.WeightMap))
	for n := range ix.WeightMap {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		shard := ix.WeightMap[n]
		if _, ok := byShard[shard].Info(n); !ok {
			return fail(&FormatError{File: indexName, Tensor: n,
				Problem: fmt.Sprintf("weight_map places it in %s, which does not contain it", shard)})
		}
	}
	// A tensor in two shards is an error, so every listed tensor is read
	// from the shard the index names.
	c, err := newCheckpoint(files)
	if err != nil {
		return fail(err)
	}
	return c, nil
}

// dirOpener opens files of a local folder; shard names are reported
// relative to the folder but opened by full path.
func dirOpener(dir string) Opener {
	return func(name string) (RangeReader, error) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		r, err := FromOSFile(f)
		if err != nil {
			f.Close()
		}
		return r, err
	}
}

// OpenIndex opens a local shard index and all its shards, which live in
// the index's folder.
func OpenIndex(path string) (*Checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	return loadIndex(path, data, dirOpener(dir), func(s string) string { return filepath.Join(dir, s) })
}

// OpenDir opens the weights of a model component folder (unet/, vae/,
// text_encoder/, ...) for a variant ("" or e.g. "fp16"): the first of
// Candidates(variant) present in dir. When none is, the error wraps
// ErrNoWeights and lists the names looked for.
func OpenDir(dir, variant string) (*Checkpoint, error) {
	c, ok := Locate(func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && st.Mode().IsRegular()
	}, variant)
	if !ok {
		var names []string
		for _, c := range Candidates(variant) {
			names = append(names, c.Name)
		}
		return nil, fmt.Errorf("safetensors: %s: %w (looked for %s)", dir, ErrNoWeights, strings.Join(names, ", "))
	}
	path := filepath.Join(dir, c.Name)
	if c.Sharded {
		return OpenIndex(path)
	}
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	return Single(f), nil
}

// OpenPath opens a checkpoint from a path that is a .safetensors file, a
// shard index (*.json), or a component folder (OpenDir with no variant).
func OpenPath(path string) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return OpenDir(path, "")
	}
	if strings.HasSuffix(path, ".json") {
		return OpenIndex(path)
	}
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	return Single(f), nil
}
