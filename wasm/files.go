//go:build js && wasm

package main

import (
	"net/url"
	"strings"

	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/hub/browser"
)

// openFile resolves the spec of one file: the URL of a .safetensors file,
// a Hub path "owner/name/file.safetensors", or a blob: URL of a file the
// user picked (named name in messages). It returns the folder holding the
// file and the file's name inside it.
func (e *engine) openFile(spec, hubAddr, name string) (hub.Folder, string, error) {
	if browser.IsBlobURL(spec) {
		// The page names a picked file in the URL's fragment
		// (blob:…#name.safetensors), which fetch ignores.
		if i := strings.IndexByte(spec, '#'); i >= 0 {
			if frag, err := url.PathUnescape(spec[i+1:]); err == nil && frag != "" {
				name = frag
			}
			spec = spec[:i]
		}
		if name == "" {
			name = "model.safetensors"
		}
		l, err := browser.OpenLocal(spec, name)
		return l, name, err
	}
	i := strings.LastIndex(spec, "/")
	dir, file := spec[:i+1], spec[i+1:]
	if !strings.Contains(dir, "://") {
		dir = strings.TrimSuffix(dir, "/")
	}
	src, err := hub.ParseSource(dir, hubAddr)
	if err != nil {
		return nil, "", err
	}
	repo, err := browser.Open(src, e.store, nil)
	if err != nil {
		return nil, "", err
	}
	return repo, file, nil
}
