package devserver

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// The Hub's error codes, sent in X-Error-Code.
const (
	codeRepoNotFound     = "RepoNotFound"
	codeEntryNotFound    = "EntryNotFound"
	codeRevisionNotFound = "RevisionNotFound"
)

// hubError answers as the Hub does when something is missing: the status,
// X-Error-Code and X-Error-Message headers, and a JSON body {"error": msg}.
func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeJSON answers with v encoded as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// repoFor opens owner/name and checks rev, answering the Hub's 404 when
// either is unknown; ok is false when an answer has been written.
func (s *Server) repoFor(w http.ResponseWriter, owner, name, rev string) (*repo, bool) {
	rp, err := s.openRepo(owner, name)
	if errors.Is(err, fs.ErrNotExist) {
		hubError(w, http.StatusNotFound, codeRepoNotFound, "Repository not found")
		return nil, false
	}
	if err != nil {
		hubError(w, http.StatusInternalServerError, "", err.Error())
		return nil, false
	}
	if !rp.knowsRevision(rev) {
		hubError(w, http.StatusNotFound, codeRevisionNotFound, "Invalid rev id: "+rev)
		return nil, false
	}
	return rp, true
}

// fileFor opens a repository at a revision and finds the file named by the
// path segments, answering the Hub's 404s; ok is false when an answer has
// been written.
func (s *Server) fileFor(w http.ResponseWriter, owner, name, rev string, pathSegs []string) (*repo, repoFile, bool) {
	rp, ok := s.repoFor(w, owner, name, rev)
	if !ok {
		return nil, repoFile{}, false
	}
	// A client may escape the slashes of a file path (unet%2Fconfig.json),
	// as the Hub allows: each part is checked on its own.
	rel := strings.Join(pathSegs, "/")
	f, found := repoFile{}, false
	if plainPath(strings.Split(rel, "/")) {
		f, found = rp.file(rel)
	}
	if !found {
		hubError(w, http.StatusNotFound, codeEntryNotFound, "Entry not found")
		return nil, repoFile{}, false
	}
	return rp, f, true
}

// serveResolve answers /<owner>/<name>/resolve/<rev>/<path...>: small files
// directly, LFS files with a redirect to their /_lfs/ URL.
func (s *Server) serveResolve(w http.ResponseWriter, r *http.Request, segs []string) {
	owner, name, rev, pathSegs := segs[0], segs[1], segs[3], segs[4:]
	repoPath := owner + "/" + name + "/" + strings.Join(pathSegs, "/")
	if s.injectedFailure(w, r, repoPath) {
		return
	}
	rp, f, ok := s.fileFor(w, owner, name, rev, pathSegs)
	if !ok {
		return
	}
	b, err := s.blob(f)
	if err != nil {
		hubError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	h := w.Header()
	h.Set("X-Repo-Commit", rp.sha)
	if !b.lfs {
		h.Set("ETag", `"`+b.blobID+`"`)
		s.serveRepoBytes(w, r, repoPath, f)
		return
	}
	loc := (&url.URL{Path: "/_lfs/" + owner + "/" + name + "/" + rev + "/" + f.rel}).EscapedPath()
	h.Set("Location", loc)
	h.Set("ETag", `"`+b.blobID+`"`)
	h.Set("X-Linked-Etag", `"`+b.sha256+`"`)
	h.Set("X-Linked-Size", strconv.FormatInt(f.size, 10))
	body := "Found. Redirecting to " + loc
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusFound)
	w.Write([]byte(body))
}

// serveLFS answers /_lfs/<owner>/<name>/<rev>/<path...>, where resolve
// redirects LFS files: the bytes, with ETag set to their sha256.
func (s *Server) serveLFS(w http.ResponseWriter, r *http.Request, segs []string) {
	if len(segs) < 4 {
		hubError(w, http.StatusNotFound, codeEntryNotFound, "Entry not found")
		return
	}
	owner, name, rev, pathSegs := segs[0], segs[1], segs[2], segs[3:]
	repoPath := owner + "/" + name + "/" + strings.Join(pathSegs, "/")
	if s.injectedFailure(w, r, repoPath) {
		return
	}
	_, f, ok := s.fileFor(w, owner, name, rev, pathSegs)
	if !ok {
		return
	}
	sum, err := s.hashes.sum(f, sumSHA256)
	if err != nil {
		hubError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	w.Header().Set("ETag", `"`+sum+`"`)
	s.serveRepoBytes(w, r, repoPath, f)
}

// serveRepoBytes answers with a repository file's bytes (Range, HEAD and
// conditional requests included), counting GETs and applying a pending
// CutOnce.
func (s *Server) serveRepoBytes(w http.ResponseWriter, r *http.Request, repoPath string, f repoFile) {
	file, err := os.Open(f.path)
	if err != nil {
		hubError(w, http.StatusNotFound, codeEntryNotFound, "Entry not found")
		return
	}
	defer file.Close()
	w.Header().Set("Content-Type", contentType(f.rel))
	if r.Method == http.MethodGet {
		w = &faultWriter{ResponseWriter: w, faults: &s.faults, repoPath: repoPath}
	}
	http.ServeContent(w, r, "", f.mod, file)
}

// modelInfo is the Hub's model info JSON (the fields clients read).
type modelInfo struct {
	MongoID      string    `json:"_id"`
	ID           string    `json:"id"`
	ModelID      string    `json:"modelId"`
	Author       string    `json:"author"`
	SHA          string    `json:"sha"`
	LastModified string    `json:"lastModified"`
	Private      bool      `json:"private"`
	Disabled     bool      `json:"disabled"`
	Gated        bool      `json:"gated"`
	Siblings     []sibling `json:"siblings"`
	UsedStorage  *int64    `json:"usedStorage,omitempty"`
}

// sibling is one file in modelInfo.
type sibling struct {
	RFilename string   `json:"rfilename"`
	Size      *int64   `json:"size,omitempty"`
	BlobID    string   `json:"blobId,omitempty"`
	LFS       *lfsInfo `json:"lfs,omitempty"`
}

// lfsInfo describes an LFS file in sibling.
type lfsInfo struct {
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	PointerSize int    `json:"pointerSize"`
}

// serveModelAPI answers /api/models/<owner>/<name> and
// /api/models/<owner>/<name>/revision/<rev> (segs start after "api").
func (s *Server) serveModelAPI(w http.ResponseWriter, r *http.Request, segs []string) {
	rev := "main"
	switch {
	case len(segs) == 3 && segs[0] == "models":
	case len(segs) == 5 && segs[0] == "models" && segs[3] == "revision":
		rev = segs[4]
	default:
		hubError(w, http.StatusNotFound, "", "Not found")
		return
	}
	rp, ok := s.repoFor(w, segs[1], segs[2], rev)
	if !ok {
		return
	}
	id := sha1.Sum([]byte(rp.id))
	info := modelInfo{
		MongoID:      hex.EncodeToString(id[:12]),
		ID:           rp.id,
		ModelID:      rp.id,
		Author:       segs[1],
		SHA:          rp.sha,
		LastModified: rp.mod.UTC().Format("2006-01-02T15:04:05.000Z"),
		Siblings:     make([]sibling, 0, len(rp.files)),
	}
	blobs := r.URL.Query().Get("blobs") == "true"
	var used int64
	for _, f := range rp.files {
		sb := sibling{RFilename: f.rel}
		if blobs {
			b, err := s.blob(f)
			if err != nil {
				hubError(w, http.StatusInternalServerError, "", err.Error())
				return
			}
			size := f.size
			sb.Size, sb.BlobID = &size, b.blobID
			if b.lfs {
				sb.LFS = &lfsInfo{SHA256: b.sha256, Size: f.size, PointerSize: b.pointerSz}
			}
			used += f.size
		}
		info.Siblings = append(info.Siblings, sb)
	}
	if blobs {
		info.UsedStorage = &used
	}
	w.Header().Set("X-Repo-Commit", rp.sha)
	writeJSON(w, http.StatusOK, info)
}

// serveLocalModels answers /api/local-models: the JSON array of "owner/name"
// repositories holding a model_index.json.
func (s *Server) serveLocalModels(w http.ResponseWriter, r *http.Request) {
	list, err := s.localModels()
	if err != nil {
		hubError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, list)
}
