package devserver

import (
	"net/http"
	"strconv"
	"sync"
)

// This file holds the hooks tests use to break downloads on purpose and to
// count them. A repoPath names a file as "<owner>/<name>/<path>", for
// example "tgate/tiny-sd/unet/diffusion_pytorch_model.safetensors"; "a GET
// of the file's bytes" is a GET answered 200 or 206 with the file's content,
// at its resolve URL (small files) or its /_lfs/ URL (LFS files).

// FileStats counts the GETs that were answered with a file's bytes.
type FileStats struct {
	Gets  int   // GETs answered 200 or 206 with the file's bytes
	Full  int   // of those, whole-file (200) answers
	Bytes int64 // body bytes written for them
}

// faults holds pending fault injections and per-file counters.
type faults struct {
	mu    sync.Mutex
	cut   map[string]int64
	fail  map[string]int
	stats map[string]FileStats
}

// CutOnce is a test hook: it makes the next GET of repoPath's bytes send its
// headers (Content-Length as usual) and then only the first after bytes of
// the body, and then abort the connection, as a download that fails halfway.
// A body no longer than after is sent whole.
func (s *Server) CutOnce(repoPath string, after int64) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if s.faults.cut == nil {
		s.faults.cut = map[string]int64{}
	}
	s.faults.cut[repoPath] = after
}

// FailOnce is a test hook: it makes the next GET that names repoPath (its
// resolve URL or its /_lfs/ URL, whichever comes first) answer status with
// a JSON error body instead of the file.
func (s *Server) FailOnce(repoPath string, status int) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if s.faults.fail == nil {
		s.faults.fail = map[string]int{}
	}
	s.faults.fail[repoPath] = status
}

// Stats is a test hook: it returns the counters of GETs answered with
// repoPath's bytes since the server started.
func (s *Server) Stats(repoPath string) FileStats {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.stats[repoPath]
}

// Requests is a test hook: it returns how many GETs were answered with
// repoPath's bytes (whole or a range) since the server started.
func (s *Server) Requests(repoPath string) int { return s.Stats(repoPath).Gets }

// injectedFailure answers a GET with the status a FailOnce set for
// repoPath, if one is pending, and reports whether it did.
func (s *Server) injectedFailure(w http.ResponseWriter, r *http.Request, repoPath string) bool {
	if r.Method != http.MethodGet {
		return false
	}
	s.faults.mu.Lock()
	status, ok := s.faults.fail[repoPath]
	delete(s.faults.fail, repoPath)
	s.faults.mu.Unlock()
	if !ok {
		return false
	}
	hubError(w, status, "", "injected failure: "+strconv.Itoa(status)+" "+http.StatusText(status))
	return true
}

// takeCut removes and returns the pending CutOnce for repoPath.
func (f *faults) takeCut(repoPath string) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	after, ok := f.cut[repoPath]
	delete(f.cut, repoPath)
	return after, ok
}

// faultWriter stands between http.ServeContent and the connection for a
// GET of a repository file: it counts the answer and, when a CutOnce is
// pending as the body starts, cuts the body short. Counters move before the
// bytes go out, so a client that has its answer sees them updated.
type faultWriter struct {
	http.ResponseWriter
	faults   *faults
	repoPath string
	status   int
	counted  bool // the answer carries the file's bytes
	written  int64
	cut      bool
	limit    int64
}

// WriteHeader records the status; an answer with the file's bytes is
// counted and takes the pending CutOnce, if any.
func (w *faultWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if code == http.StatusOK || code == http.StatusPartialContent {
			w.counted = true
			w.limit, w.cut = w.faults.takeCut(w.repoPath)
			w.faults.add(w.repoPath, func(st *FileStats) {
				st.Gets++
				if code == http.StatusOK {
					st.Full++
				}
			})
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write passes body bytes on; past a cut's limit it flushes what was sent
// and aborts the connection.
func (w *faultWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	chunk, cut := p, false
	if w.cut && w.written+int64(len(p)) > w.limit {
		chunk, cut = p[:w.limit-w.written], true
	}
	w.count(int64(len(chunk)))
	n, err := w.ResponseWriter.Write(chunk)
	w.written += int64(n)
	if n < len(chunk) {
		w.count(int64(n - len(chunk)))
	}
	if cut {
		http.NewResponseController(w.ResponseWriter).Flush()
		panic(http.ErrAbortHandler)
	}
	return n, err
}

// count adds n body bytes to the file's counters, for answers that carry
// the file's bytes.
func (w *faultWriter) count(n int64) {
	if w.counted && n != 0 {
		w.faults.add(w.repoPath, func(st *FileStats) { st.Bytes += n })
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *faultWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// add updates repoPath's counters with f.
func (f *faults) add(repoPath string, update func(*FileStats)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stats == nil {
		f.stats = map[string]FileStats{}
	}
	st := f.stats[repoPath]
	update(&st)
	f.stats[repoPath] = st
}
