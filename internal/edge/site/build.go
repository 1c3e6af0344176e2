// Package site is the Worker's hosting of the page: which files make the
// site, how they are laid out for Workers Static Assets, and the headers
// each answer carries (Serve, in serve.go).
//
// # Versioned names
//
// The page's modules load each other by relative URL: index.html loads
// app.js, which imports ./tgate.js, which starts engine-worker.js, which
// loads tgate.wasm and wasm_exec.js relative to its own URL. Renaming
// each file after its hash would mean rewriting those specifiers inside
// the JavaScript (and import maps do not reach into Web Workers). So the
// whole set is versioned as one: every file except the HTML pages is also
// published under /v/<version>/, where version is a hash of every file's
// name and content. Inside that folder every relative load stays inside
// it, so a page always gets one consistent set (never a new tgate.js with
// an old engine), and those answers are immutable (cached for a year,
// never revalidated). The HTML pages are served at their own names,
// revalidated on every visit (no-cache and an ETag), and their relative
// src/href attributes that name a file of the set are rewritten to the
// /v/<version>/ copy. Each file also stays at its plain name (revalidated
// the same way), for the widget's one script tag on other sites
// (https://<host>/tgate-widget.js) and any link made before a deploy.
package site

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// File is one file of the site.
type File struct {
	// Name is its slash path from the site's root ("ui/form.js").
	Name string
	Data []byte
}

// Site is the set of files the Worker hosts.
type Site struct {
	// Version names the set: the first 12 hex digits of a sha256 over
	// every file's name and content (before HTML rewriting).
	Version string
	// Files, sorted by name; HTML pages already rewritten.
	Files []File
}

// published lists the extensions of web/ files that are part of the site.
var published = map[string]bool{
	".html": true, ".js": true, ".mjs": true, ".css": true, ".json": true, ".webmanifest": true,
	".svg": true, ".png": true, ".ico": true, ".webp": true, ".jpg": true, ".woff2": true, ".txt": true,
}

// skipDirs are folders of web/ that are not served: tests and the Worker.
var skipDirs = map[string]bool{"e2e": true, "worker": true, "node_modules": true, "testdata": true}

// Include reports whether a file of the web folder (slash path) is part of
// the site: a published extension, no hidden path element, not a test
// file (*.test.js, *.test.mjs, *_test.*), not in e2e/, worker/,
// node_modules/ or testdata/.
func Include(name string) bool {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		if p == "" || strings.HasPrefix(p, ".") || (i < len(parts)-1 && skipDirs[p]) {
			return false
		}
	}
	base := parts[len(parts)-1]
	if strings.Contains(base, ".test.") || strings.Contains(base, "_test.") {
		return false
	}
	return published[strings.ToLower(path.Ext(base))]
}

// Collect reads the site: the files of webDir that Include accepts, plus
// extra files (site name → path on disk, such as "tgate.wasm" and
// "wasm_exec.js"). It computes the version and rewrites the HTML pages.
func Collect(webDir string, extra map[string]string) (*Site, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(webDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(webDir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (skipDirs[d.Name()] || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !Include(rel) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("site: reading %s: %w", webDir, err)
	}
	for name, p := range extra {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("site: %s: %w", name, err)
		}
		files[name] = data
	}
	if _, ok := files["index.html"]; !ok {
		return nil, fmt.Errorf("site: %s has no index.html", webDir)
	}
	return New(files), nil
}

// New makes a Site of the given files (name → content): it computes the
// version and rewrites the HTML pages' references to the versioned copies.
func New(files map[string][]byte) *Site {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		fmt.Fprintf(h, "%s\x00%x\n", n, sum)
	}
	s := &Site{Version: hex.EncodeToString(h.Sum(nil))[:12]}
	for _, n := range names {
		data := files[n]
		if isHTML(n) {
			data = s.rewrite(n, data, files)
		}
		s.Files = append(s.Files, File{Name: n, Data: data})
	}
	return s
}

// isHTML reports whether a site name is an HTML page.
func isHTML(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	return ext == ".html" || ext == ".htm"
}

// attrRef matches a src or href attribute with a quoted value.
var attrRef = regexp.MustCompile(`(\s(?:src|href)\s*=\s*)("[^"]*"|'[^']*')`)

// rewrite returns an HTML page with each relative src/href attribute that
// names a non-HTML file of the site pointing at its /v/<version>/ copy.
// Absolute URLs, root paths, fragments, queries and names outside the
// site are left alone.
func (s *Site) rewrite(page string, html []byte, files map[string][]byte) []byte {
	dir := path.Dir(page)
	return attrRef.ReplaceAllFunc(html, func(m []byte) []byte {
		sub := attrRef.FindSubmatch(m)
		q := sub[2][0]
		val := string(sub[2][1 : len(sub[2])-1])
		if val == "" || strings.ContainsAny(val, ":#?\\") || strings.HasPrefix(val, "/") {
			return m
		}
		target := path.Clean(path.Join(dir, val))
		if _, ok := files[target]; !ok || isHTML(target) || strings.HasPrefix(target, "../") {
			return m
		}
		return []byte(string(sub[1]) + string(q) + s.VersionedPath(target) + string(q))
	})
}

// VersionedPath is the URL path of a file's immutable copy.
func (s *Site) VersionedPath(name string) string {
	return "/v/" + s.Version + "/" + name
}

// File returns the file with the given name.
func (s *Site) File(name string) (File, bool) {
	i := sort.Search(len(s.Files), func(i int) bool { return s.Files[i].Name >= name })
	if i < len(s.Files) && s.Files[i].Name == name {
		return s.Files[i], true
	}
	return File{}, false
}

// Write lays the site out in dir for Workers Static Assets: every file at
// its name, and every file but the HTML pages again under v/<version>/.
// dir is emptied first.
func (s *Site) Write(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	put := func(name string, data []byte) error {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, data, 0o644)
	}
	for _, f := range s.Files {
		if err := put(f.Name, f.Data); err != nil {
			return err
		}
		if !isHTML(f.Name) {
			if err := put(strings.TrimPrefix(s.VersionedPath(f.Name), "/"), f.Data); err != nil {
				return err
			}
		}
	}
	return nil
}
