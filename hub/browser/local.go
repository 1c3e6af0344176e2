//go:build js && wasm

package browser

import (
	"fmt"
	"io/fs"
	"strings"
	"syscall/js"

	"github.com/tgate-web/tgate/internal/jsutil"
	"github.com/tgate-web/tgate/safetensors"
)

// Local is a folder holding one file the user picked from disk, reached
// through a blob: URL the page made with URL.createObjectURL. Nothing is
// downloaded or stored: the file stays a JS Blob, read by range like a
// cached one.
type Local struct {
	URL  string
	Name string
	blob *Blob
}

// IsBlobURL reports whether s is a blob: URL.
func IsBlobURL(s string) bool { return strings.HasPrefix(s, "blob:") }

// OpenLocal fetches the Blob behind the blob: URL url; name is the file
// name the folder answers to.
func OpenLocal(url, name string) (*Local, error) {
	resp, err := jsutil.Await(js.Global().Call("fetch", url))
	if err != nil {
		return nil, fmt.Errorf("%s: the picked file could not be read (was the page reloaded since it was picked?): %w", url, err)
	}
	if !resp.Get("ok").Truthy() {
		return nil, fmt.Errorf("%s: the picked file could not be read: status %d", url, resp.Get("status").Int())
	}
	v, err := jsutil.Await(resp.Call("blob"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return &Local{URL: url, Name: name, blob: &Blob{v: v, size: int64(v.Get("size").Float())}}, nil
}

// String names the file in messages.
func (l *Local) String() string { return l.URL }

// ReadFile returns the file's bytes when name is the file, else an error
// wrapping fs.ErrNotExist (a picked file has no configs beside it).
func (l *Local) ReadFile(name string) ([]byte, error) {
	if name != l.Name {
		return nil, fmt.Errorf("%s: %s: %w", l.URL, name, fs.ErrNotExist)
	}
	p := make([]byte, l.blob.size)
	if _, err := l.blob.ReadAt(p, 0); err != nil {
		return nil, err
	}
	return p, nil
}

// Exists reports whether name is the file.
func (l *Local) Exists(name string) (bool, error) { return name == l.Name, nil }

// Open returns the file's Blob reader.
func (l *Local) Open(name string) (safetensors.RangeReader, error) {
	if name != l.Name {
		return nil, fmt.Errorf("%s: %s: %w", l.URL, name, fs.ErrNotExist)
	}
	return l.blob, nil
}
