//go:build js && wasm

// Package browser is the hub.Folder of the browser: a Hub repository or a
// diffusers folder URL whose files are fetched through the page's model
// store (web/store.js: Cache Storage under the resolve URL, size and
// sha256 checked before anything is stored). Small files (configs,
// tokenizer) come into Go memory; weight files stay JS Blobs, and their
// tensors go from the Blob straight into GPU buffers (DirectSource).
package browser

import (
	"fmt"
	"io/fs"
	"sort"
	"sync"
	"syscall/js"

	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/jsutil"
	"github.com/tgate-web/tgate/safetensors"
)

// Progress reports a weight file's download (or cache read): bytes of
// total (−1 when unknown) so far.
type Progress func(file string, bytes, total int64, fromCache, done bool)

// File is a file the folder opened, for reports.
type File struct {
	Name   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	Cached bool   `json:"cached"`
}

// Repo is a remote model folder. It implements hub.Folder.
type Repo struct {
	Source hub.Source
	// Files lists the repository's files from the Hub's model API; nil for
	// a base URL (files are then found by asking the server).
	Files    map[string]hub.RemoteFile
	store    js.Value
	progress Progress

	mu     sync.Mutex
	opened []File
}

// Open resolves src: for a Hub repository it reads the file list from the
// Hub's model API. store is the JS model store (globalThis.tgateStore).
func Open(src hub.Source, store js.Value, progress Progress) (*Repo, error) {
	r := &Repo{Source: src, store: store, progress: progress}
	if api := src.APIURL(); api != "" {
		v, err := await(store.Call("fetchAPI", api))
		if err != nil {
			return nil, err
		}
		if v.IsNull() {
			return nil, &jsutil.Error{Code: "download", Message: fmt.Sprintf("%s: repository %s (revision %s) not found on %s", api, src.Repo, src.Rev, src.Hub)}
		}
		files, err := hub.ParseSiblings(jsutil.Bytes(v))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", api, err)
		}
		r.Files = files
	}
	return r, nil
}

func await(p js.Value) (js.Value, error) { return jsutil.Await(p) }

// String is the folder's URL.
func (r *Repo) String() string { return r.Source.Base }

func (r *Repo) meta(name string) js.Value {
	m := map[string]any{"model": r.Source.ID(), "file": name}
	if f, ok := r.Files[name]; ok {
		if f.Size >= 0 {
			m["size"] = f.Size
		}
		if f.SHA256 != "" {
			m["sha256"] = f.SHA256
		}
	}
	return js.ValueOf(m)
}

func (r *Repo) listed(name string) (known, ok bool) {
	if r.Files == nil {
		return false, false
	}
	_, ok = r.Files[name]
	return true, ok
}

// ReadFile fetches a small file (cached after the first time).
func (r *Repo) ReadFile(name string) ([]byte, error) {
	if known, ok := r.listed(name); known && !ok {
		return nil, fmt.Errorf("%s%s: %w", r.Source.Base, name, fs.ErrNotExist)
	}
	v, err := await(r.store.Call("fetchSmall", r.Source.FileURL(name), r.meta(name)))
	if err != nil {
		return nil, err
	}
	if v.IsNull() {
		return nil, fmt.Errorf("%s: %w", r.Source.FileURL(name), fs.ErrNotExist)
	}
	return jsutil.Bytes(v), nil
}

// Exists looks the file up in the file list, or asks the server.
func (r *Repo) Exists(name string) (bool, error) {
	if known, ok := r.listed(name); known {
		return ok, nil
	}
	v, err := await(r.store.Call("exists", r.Source.FileURL(name)))
	if err != nil {
		return false, err
	}
	return v.Truthy(), nil
}

// Open downloads a weight file into the store (or finds it there) and
// returns a reader over the stored Blob.
func (r *Repo) Open(name string) (safetensors.RangeReader, error) {
	if known, ok := r.listed(name); known && !ok {
		return nil, fmt.Errorf("%s%s: %w", r.Source.Base, name, fs.ErrNotExist)
	}
	var cached bool
	cb := js.FuncOf(func(this js.Value, args []js.Value) any {
		n, total := int64(args[0].Float()), int64(args[1].Float())
		cached = args[2].Truthy()
		if r.progress != nil {
			r.progress(name, n, total, cached, false)
		}
		return nil
	})
	defer cb.Release()
	v, err := await(r.store.Call("fetchFile", r.Source.FileURL(name), r.meta(name), cb))
	if err != nil {
		return nil, err
	}
	b := &Blob{v: v, size: int64(v.Get("size").Float())}
	if r.progress != nil {
		r.progress(name, b.size, b.size, cached, true)
	}
	r.mu.Lock()
	r.opened = append(r.opened, File{Name: name, Bytes: b.size, Cached: cached})
	r.mu.Unlock()
	return b, nil
}

// Opened lists the weight files opened so far, by name.
func (r *Repo) Opened() []File {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]File(nil), r.opened...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
