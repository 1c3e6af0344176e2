package hub

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// Folder is a diffusers model folder reached by slash-separated paths
// relative to its root ("unet/config.json"): a directory on disk (Dir), or
// a Hub repository or base URL in the browser. The loaders see only this
// interface, so they do not know where the bytes come from.
type Folder interface {
	// ReadFile returns the whole content of a small file (a config, a
	// tokenizer file). A missing file gives an error wrapping
	// fs.ErrNotExist.
	ReadFile(name string) ([]byte, error)
	// Exists reports whether the folder holds the file; the error is for
	// failures to find out (a network error), never for absence.
	Exists(name string) (bool, error)
	// Open opens a (weight) file for ranged reads. A missing file gives an
	// error wrapping fs.ErrNotExist. The reader may implement io.Closer
	// and DirectSource.
	Open(name string) (safetensors.RangeReader, error)
	// String names the folder in messages (a path or a URL).
	String() string
}

// DirectSource is implemented by byte sources that can put a range of
// their bytes straight into a new tensor on a backend, without the bytes
// passing through Go memory (the browser's cached files on the WebGPU
// backend). ok is false when it cannot do so for b; the caller then reads
// the bytes and uploads them.
type DirectSource interface {
	UploadRange(b backend.Backend, dt tensor.DType, shape tensor.Shape, off, n int64) (t backend.Tensor, ok bool, err error)
}

// Dir is a model folder on the local disk.
type Dir string

// ReadFile reads dir/name.
func (d Dir) ReadFile(name string) ([]byte, error) {
	return os.ReadFile(d.path(name))
}

// Exists reports whether dir/name is a regular file.
func (d Dir) Exists(name string) (bool, error) {
	st, err := os.Stat(d.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.Mode().IsRegular(), nil
}

// Open opens dir/name for ranged reads.
func (d Dir) Open(name string) (safetensors.RangeReader, error) {
	f, err := os.Open(d.path(name))
	if err != nil {
		return nil, err
	}
	r, err := safetensors.FromOSFile(f)
	if err != nil {
		f.Close()
	}
	return r, err
}

func (d Dir) path(name string) string { return filepath.Join(string(d), filepath.FromSlash(name)) }

// String returns the directory path.
func (d Dir) String() string { return string(d) }

// sub is the folder below a parent's path prefix.
type sub struct {
	parent Folder
	prefix string
}

// Sub returns the folder dir inside f ("unet", "text_encoder").
func Sub(f Folder, dir string) Folder {
	if dir == "" || dir == "." {
		return f
	}
	if d, ok := f.(Dir); ok {
		return Dir(filepath.Join(string(d), filepath.FromSlash(dir)))
	}
	return sub{f, strings.Trim(dir, "/")}
}

func (s sub) ReadFile(name string) ([]byte, error) {
	return s.parent.ReadFile(path.Join(s.prefix, name))
}
func (s sub) Exists(name string) (bool, error) { return s.parent.Exists(path.Join(s.prefix, name)) }
func (s sub) Open(name string) (safetensors.RangeReader, error) {
	return s.parent.Open(path.Join(s.prefix, name))
}
func (s sub) String() string { return strings.TrimSuffix(s.parent.String(), "/") + "/" + s.prefix }

// readFile reads name from f with an error that names the folder.
func readFile(f Folder, name string) ([]byte, error) {
	data, err := f.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("hub: %s: reading %s: %w", f, name, err)
	}
	return data, nil
}
