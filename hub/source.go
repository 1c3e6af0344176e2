package hub

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// DefaultHub is the Hugging Face Hub's address.
const DefaultHub = "https://huggingface.co"

// Source is where a model folder is fetched from over HTTP: a repository
// of a Hub at a revision, or the base URL of a diffusers folder.
type Source struct {
	// Repo is "owner/name"; empty for a base URL.
	Repo string
	// Rev is the revision (branch, tag or commit; "main" by default).
	Rev string
	// Hub is the Hub's address, without a trailing slash ("" for a base
	// URL).
	Hub string
	// Base is the folder's URL, ending in "/": for a repository
	// <hub>/<owner>/<name>/resolve/<rev>/.
	Base string
}

var repoID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ParseSource reads a model source as people write it: a repository id
// "owner/name" or "owner/name@revision", resolved on hub (DefaultHub when
// empty), or a full http(s) URL of a diffusers folder ending in "/".
func ParseSource(s, hub string) (Source, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Source{}, fmt.Errorf("no model given: name a Hub repository (owner/name) or the URL of a diffusers folder")
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Source{}, fmt.Errorf("model URL %q: want an http(s) URL of a diffusers folder", s)
		}
		if !strings.HasSuffix(u.Path, "/") {
			return Source{}, fmt.Errorf("model URL %q: a folder URL ends in \"/\" (the folder holding model_index.json)", s)
		}
		return Source{Base: u.String()}, nil
	}
	repo, rev, _ := strings.Cut(s, "@")
	if !repoID.MatchString(repo) || strings.Contains(repo, "..") {
		return Source{}, fmt.Errorf("model %q: want a Hub repository id owner/name (optionally @revision) or an http(s) folder URL ending in /", s)
	}
	if rev == "" {
		rev = "main"
	}
	if hub == "" {
		hub = DefaultHub
	}
	u, err := url.Parse(hub)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Source{}, fmt.Errorf("hub address %q: want an http(s) URL such as %s", hub, DefaultHub)
	}
	hub = strings.TrimSuffix(u.String(), "/")
	return Source{Repo: repo, Rev: rev, Hub: hub,
		Base: hub + "/" + repo + "/resolve/" + url.PathEscape(rev) + "/"}, nil
}

// ID names the source: "owner/name@rev" or the base URL.
func (s Source) ID() string {
	if s.Repo == "" {
		return s.Base
	}
	return s.Repo + "@" + s.Rev
}

// FileURL is the URL of the folder's file name (a slash path such as
// "unet/config.json"), each path segment escaped.
func (s Source) FileURL(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return s.Base + strings.Join(parts, "/")
}

// APIURL is the Hub's model API address listing the repository's files
// with their sizes and sha256 (blobs=true), or "" for a base URL, whose
// files are found by probing names.
func (s Source) APIURL() string {
	if s.Repo == "" {
		return ""
	}
	return s.Hub + "/api/models/" + s.Repo + "/revision/" + url.PathEscape(s.Rev) + "?blobs=true"
}

// RemoteFile is one file of a repository as the Hub's model API lists it.
type RemoteFile struct {
	Name string
	// Size in bytes (−1 when not listed).
	Size int64
	// SHA256 is the content's sha256 in hex for LFS files, else "".
	SHA256 string
}

// ParseSiblings reads the "siblings" of a Hub model API answer.
func ParseSiblings(data []byte) (map[string]RemoteFile, error) {
	var info struct {
		Siblings []struct {
			Name string `json:"rfilename"`
			Size *int64 `json:"size"`
			LFS  *struct {
				SHA256 string `json:"sha256"`
				Size   int64  `json:"size"`
			} `json:"lfs"`
		} `json:"siblings"`
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("the Hub's model API answer is not the JSON it should be: %w", err)
	}
	if info.Siblings == nil {
		return nil, fmt.Errorf("the Hub's model API answer lists no files (no \"siblings\")")
	}
	files := make(map[string]RemoteFile, len(info.Siblings))
	for _, s := range info.Siblings {
		f := RemoteFile{Name: s.Name, Size: -1}
		if s.Size != nil {
			f.Size = *s.Size
		}
		if s.LFS != nil {
			f.SHA256 = strings.ToLower(s.LFS.SHA256)
			f.Size = s.LFS.Size
		}
		files[s.Name] = f
	}
	return files, nil
}

// SortedNames returns the names of files in order.
func SortedNames(files map[string]RemoteFile) []string {
	out := make([]string, 0, len(files))
	for n := range files {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
