package devserver

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// lfsThreshold is the size above which any file is stored as LFS, as the
// Hub's default .gitattributes does for large files.
const lfsThreshold = 10 << 20

// lfsExtensions are the extensions the Hub's default .gitattributes tracks
// with LFS (the weight formats).
var lfsExtensions = map[string]bool{
	".safetensors": true, ".bin": true, ".ckpt": true, ".pt": true, ".pth": true,
	".onnx": true, ".msgpack": true, ".h5": true, ".gguf": true, ".npy": true,
}

// isLFS reports whether the Hub would store a file of this name and size
// with LFS (and so serve it through a redirect).
func isLFS(name string, size int64) bool {
	return size > lfsThreshold || lfsExtensions[strings.ToLower(path.Ext(name))]
}

// repoFile is one file of a repository.
type repoFile struct {
	rel  string // slash path inside the repository
	path string // path on disk
	size int64
	mod  time.Time
}

// repo is a repository folder with its files listed.
type repo struct {
	id    string     // "owner/name"
	files []repoFile // sorted by rel
	sha   string     // 40 hex digits, derived from the listing
	mod   time.Time  // newest file modification time
}

// openRepo lists the repository owner/name under ModelsDir. It returns
// fs.ErrNotExist when there is no such folder.
func (s *Server) openRepo(owner, name string) (*repo, error) {
	if s.cfg.ModelsDir == "" || !plainName(owner) || !plainName(name) {
		return nil, fs.ErrNotExist
	}
	dir := filepath.Join(s.cfg.ModelsDir, owner, name)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fs.ErrNotExist
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	rp := &repo{id: owner + "/" + name}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		fi, err := os.Stat(p) // follows a link to a file
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rp.files = append(rp.files, repoFile{rel: filepath.ToSlash(rel), path: p, size: fi.Size(), mod: fi.ModTime()})
		if fi.ModTime().After(rp.mod) {
			rp.mod = fi.ModTime()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rp.files, func(a, b repoFile) int { return strings.Compare(a.rel, b.rel) })
	h := sha1.New()
	fmt.Fprintf(h, "%s\n", rp.id)
	for _, f := range rp.files {
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", f.rel, f.size, f.mod.UnixNano())
	}
	rp.sha = hex.EncodeToString(h.Sum(nil))
	return rp, nil
}

// file returns the repository's file at the slash path rel.
func (rp *repo) file(rel string) (repoFile, bool) {
	i, ok := slices.BinarySearchFunc(rp.files, rel, func(f repoFile, rel string) int { return strings.Compare(f.rel, rel) })
	if !ok {
		return repoFile{}, false
	}
	return rp.files[i], true
}

// knowsRevision reports whether rev names the repository's only revision:
// "main" or its sha.
func (rp *repo) knowsRevision(rev string) bool {
	return rev == "main" || rev == rp.sha
}

// lfsPointer returns the text of the Git LFS pointer file that stands in
// the repository's git tree for a file with this sha256 and size.
func lfsPointer(sha256hex string, size int64) string {
	return "version https://git-lfs.github.com/spec/v1\noid sha256:" + sha256hex + "\nsize " + strconv.FormatInt(size, 10) + "\n"
}

// gitBlobSHA1 returns git's object id for a blob with these contents: the
// sha1 of "blob <len>\x00" followed by the contents.
func gitBlobSHA1(content []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(content))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

// hashKind says which digest a hashCache entry holds.
type hashKind uint8

const (
	sumSHA256  hashKind = iota // sha256 of the bytes, hex
	sumGitBlob                 // git blob sha1 of the bytes, hex
)

// hashCache keeps file digests, each valid while the file keeps the size and
// modification time it had when it was hashed. Concurrent requests for one
// digest wait for a single computation.
type hashCache struct {
	mu sync.Mutex
	m  map[hashKey]*hashEntry
}

type hashKey struct {
	path string
	kind hashKind
}

type hashEntry struct {
	size int64
	mod  time.Time
	once sync.Once
	sum  string
	err  error
}

// sum returns the digest of the given kind of the file f, computing it on
// first use and whenever f's size or modification time differs from the
// cached one.
func (c *hashCache) sum(f repoFile, kind hashKind) (string, error) {
	k := hashKey{f.path, kind}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[hashKey]*hashEntry{}
	}
	e := c.m[k]
	if e == nil || e.size != f.size || !e.mod.Equal(f.mod) {
		e = &hashEntry{size: f.size, mod: f.mod}
		c.m[k] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.sum, e.err = hashFile(f, kind) })
	if e.err != nil {
		c.mu.Lock()
		if c.m[k] == e {
			delete(c.m, k)
		}
		c.mu.Unlock()
	}
	return e.sum, e.err
}

// hashFile computes a digest of a file's bytes, checking that the file
// still has the size it was listed with.
func hashFile(f repoFile, kind hashKind) (string, error) {
	file, err := os.Open(f.path)
	if err != nil {
		return "", err
	}
	defer file.Close()
	var h hash.Hash
	switch kind {
	case sumSHA256:
		h = sha256.New()
	case sumGitBlob:
		h = sha1.New()
		fmt.Fprintf(h, "blob %d\x00", f.size)
	}
	n, err := io.Copy(h, file)
	if err != nil {
		return "", err
	}
	if n != f.size {
		return "", errors.New(f.rel + " changed while it was being hashed")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// blobInfo is what the Hub knows of one file's git blob.
type blobInfo struct {
	lfs       bool
	sha256    string // LFS files only
	blobID    string // git blob sha1: of the pointer for LFS files
	pointerSz int    // LFS files only
}

// blob returns the git view of f: for LFS files the sha256 of the bytes and
// the blob id and size of the pointer file, for others the blob id of the
// bytes.
func (s *Server) blob(f repoFile) (blobInfo, error) {
	if !isLFS(f.rel, f.size) {
		id, err := s.hashes.sum(f, sumGitBlob)
		return blobInfo{blobID: id}, err
	}
	sum, err := s.hashes.sum(f, sumSHA256)
	if err != nil {
		return blobInfo{}, err
	}
	ptr := lfsPointer(sum, f.size)
	return blobInfo{lfs: true, sha256: sum, blobID: gitBlobSHA1([]byte(ptr)), pointerSz: len(ptr)}, nil
}

// localModels lists the repositories under ModelsDir, two levels deep,
// whose folder holds a model_index.json, as sorted "owner/name" strings.
func (s *Server) localModels() ([]string, error) {
	out := []string{}
	if s.cfg.ModelsDir == "" {
		return out, nil
	}
	owners, err := os.ReadDir(s.cfg.ModelsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, o := range owners {
		if !plainName(o.Name()) {
			continue
		}
		names, err := os.ReadDir(filepath.Join(s.cfg.ModelsDir, o.Name()))
		if err != nil {
			continue // not a folder
		}
		for _, n := range names {
			if !plainName(n.Name()) {
				continue
			}
			fi, err := os.Stat(filepath.Join(s.cfg.ModelsDir, o.Name(), n.Name(), "model_index.json"))
			if err == nil && fi.Mode().IsRegular() {
				out = append(out, o.Name()+"/"+n.Name())
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// LocalModels returns the repositories under ModelsDir that hold a
// model_index.json, as sorted "owner/name" strings (what GET
// /api/local-models answers).
func (s *Server) LocalModels() ([]string, error) { return s.localModels() }
