package devserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

var hex40 = regexp.MustCompile(`^[0-9a-f]{40}$`)

// TestResolveLFSRedirect checks that a weight file answers 302 with the
// X-Linked headers, and that the redirect target serves the bytes with the
// sha256 as ETag.
func TestResolveLFSRedirect(t *testing.T) {
	s := newSite(t)
	want := s.files[weights]
	sum := sha256Hex(want)
	for _, method := range []string{"GET", "HEAD"} {
		resp, _ := s.do(method, "/tgate/tiny-sd/resolve/main/"+weights)
		expect(t, resp, http.StatusFound)
		header(t, resp, "Location", "/_lfs/tgate/tiny-sd/main/"+weights)
		header(t, resp, "X-Linked-Etag", `"`+sum+`"`)
		header(t, resp, "X-Linked-Size", strconv.Itoa(len(want)))
		if !hex40.MatchString(resp.Header.Get("X-Repo-Commit")) {
			t.Errorf("X-Repo-Commit = %q", resp.Header.Get("X-Repo-Commit"))
		}
	}

	resp, body := s.do("GET", "/_lfs/tgate/tiny-sd/main/"+weights)
	expect(t, resp, http.StatusOK)
	header(t, resp, "ETag", `"`+sum+`"`)
	header(t, resp, "Accept-Ranges", "bytes")
	header(t, resp, "Content-Length", strconv.Itoa(len(want)))
	if !bytes.Equal(body, want) {
		t.Fatalf("body differs from the file (%d bytes, want %d)", len(body), len(want))
	}

	// A client that follows redirects, as fetch does, ends at the bytes.
	full, err := http.Get(s.ts.URL + "/tgate/tiny-sd/resolve/main/" + weights)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(full.Body)
	full.Body.Close()
	if full.StatusCode != 200 || !bytes.Equal(got, want) || full.Header.Get("ETag") != `"`+sum+`"` {
		t.Fatalf("followed redirect: status %d, %d bytes, ETag %s", full.StatusCode, len(got), full.Header.Get("ETag"))
	}
}

// TestLFSRangeAndHead checks Range answers (the size probe bytes=0-0 and a
// middle range) and HEAD on the LFS URL, also through the redirect.
func TestLFSRangeAndHead(t *testing.T) {
	s := newSite(t)
	want := s.files[weights]
	n := len(want)
	url := "/_lfs/tgate/tiny-sd/main/" + weights
	resp, body := s.do("GET", url, "Range", "bytes=0-0")
	expect(t, resp, http.StatusPartialContent)
	header(t, resp, "Content-Range", fmt.Sprintf("bytes 0-0/%d", n))
	if !bytes.Equal(body, want[:1]) {
		t.Errorf("bytes=0-0: body %x", body)
	}
	resp, body = s.do("GET", url, "Range", "bytes=1000-1999")
	expect(t, resp, http.StatusPartialContent)
	header(t, resp, "Content-Range", fmt.Sprintf("bytes 1000-1999/%d", n))
	header(t, resp, "Content-Length", "1000")
	if !bytes.Equal(body, want[1000:2000]) {
		t.Errorf("bytes=1000-1999: wrong body")
	}
	resp, body = s.do("HEAD", url)
	expect(t, resp, http.StatusOK)
	header(t, resp, "Content-Length", strconv.Itoa(n))
	header(t, resp, "ETag", `"`+sha256Hex(want)+`"`)
	if len(body) != 0 {
		t.Errorf("HEAD has a body of %d bytes", len(body))
	}

	// fetch forwards Range through the redirect.
	req, _ := http.NewRequest("GET", s.ts.URL+"/tgate/tiny-sd/resolve/main/"+weights, nil)
	req.Header.Set("Range", "bytes=0-0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	expect(t, resp, http.StatusPartialContent)
	header(t, resp, "Content-Range", fmt.Sprintf("bytes 0-0/%d", n))
}

// TestResolveSmallFile checks that small files are served at the resolve URL
// with their git blob sha1 as ETag, with Range and HEAD.
func TestResolveSmallFile(t *testing.T) {
	s := newSite(t)
	for _, rel := range []string{"unet/config.json", "model_index.json", "empty.txt"} {
		want := s.files[rel]
		resp, body := s.do("GET", "/tgate/tiny-sd/resolve/main/"+rel)
		expect(t, resp, http.StatusOK)
		header(t, resp, "ETag", `"`+gitSHA1(want)+`"`)
		header(t, resp, "Access-Control-Allow-Origin", "*")
		if !bytes.Equal(body, want) {
			t.Errorf("%s: body %q, want %q", rel, body, want)
		}
	}
	resp, body := s.do("GET", "/tgate/tiny-sd/resolve/main/unet%2Fconfig.json")
	expect(t, resp, http.StatusOK)
	if !bytes.Equal(body, s.files["unet/config.json"]) {
		t.Errorf("escaped slash: body %q", body)
	}
	resp, body = s.do("GET", "/tgate/tiny-sd/resolve/main/unet/config.json", "Range", "bytes=2-5")
	expect(t, resp, http.StatusPartialContent)
	header(t, resp, "Content-Range", fmt.Sprintf("bytes 2-5/%d", len(s.files["unet/config.json"])))
	if string(body) != string(s.files["unet/config.json"][2:6]) {
		t.Errorf("range body %q", body)
	}
	resp, body = s.do("HEAD", "/tgate/tiny-sd/resolve/main/unet/config.json")
	expect(t, resp, http.StatusOK)
	header(t, resp, "Content-Length", strconv.Itoa(len(s.files["unet/config.json"])))
	if len(body) != 0 {
		t.Error("HEAD has a body")
	}
}

// TestLargeFileIsLFS checks that a file over 10 MiB goes through the LFS
// redirect whatever its extension.
func TestLargeFileIsLFS(t *testing.T) {
	s := newSite(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), (10<<20)/16+1)
	s.write(filepath.Join(s.models, "tgate", "tiny-sd", "big.txt"), big)
	resp, _ := s.do("GET", "/tgate/tiny-sd/resolve/main/big.txt")
	expect(t, resp, http.StatusFound)
	header(t, resp, "X-Linked-Etag", `"`+sha256Hex(big)+`"`)
	header(t, resp, "X-Linked-Size", strconv.Itoa(len(big)))
}

// modelJSON is the model info as a client decodes it.
type modelJSON struct {
	MongoID  string `json:"_id"`
	ID       string `json:"id"`
	ModelID  string `json:"modelId"`
	SHA      string `json:"sha"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
		Size      *int64 `json:"size"`
		BlobID    string `json:"blobId"`
		LFS       *struct {
			SHA256      string `json:"sha256"`
			Size        int64  `json:"size"`
			PointerSize int    `json:"pointerSize"`
		} `json:"lfs"`
	} `json:"siblings"`
}

// getModel fetches and decodes the model info at path.
func getModel(t *testing.T, s *site, path string) modelJSON {
	t.Helper()
	resp, body := s.do("GET", path)
	expect(t, resp, http.StatusOK)
	header(t, resp, "Access-Control-Allow-Origin", "*")
	var m modelJSON
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, body)
	}
	return m
}

// TestModelAPI checks the model info with and without blobs=true, and the
// revision route.
func TestModelAPI(t *testing.T) {
	s := newSite(t)
	m := getModel(t, s, "/api/models/tgate/tiny-sd")
	if m.ID != repoID || m.ModelID != repoID || !hex40.MatchString(m.SHA) || m.MongoID == "" {
		t.Fatalf("info: %+v", m)
	}
	wantNames := []string{"empty.txt", "model_index.json", "text_encoder/vocab.txt", "unet/config.json", weights}
	if len(m.Siblings) != len(wantNames) {
		t.Fatalf("siblings: %+v, want %v", m.Siblings, wantNames)
	}
	for i, sb := range m.Siblings {
		if sb.RFilename != wantNames[i] || sb.Size != nil || sb.BlobID != "" || sb.LFS != nil {
			t.Errorf("sibling %d: %+v, want only rfilename %s", i, sb, wantNames[i])
		}
	}

	mb := getModel(t, s, "/api/models/tgate/tiny-sd?blobs=true")
	if mb.SHA != m.SHA {
		t.Errorf("sha differs with blobs=true: %s vs %s", mb.SHA, m.SHA)
	}
	for _, sb := range mb.Siblings {
		want := s.files[sb.RFilename]
		if sb.Size == nil || *sb.Size != int64(len(want)) {
			t.Errorf("%s: size %v, want %d", sb.RFilename, sb.Size, len(want))
		}
		if sb.RFilename != weights {
			if sb.LFS != nil || sb.BlobID != gitSHA1(want) {
				t.Errorf("%s: blobId %s lfs %v, want blobId %s", sb.RFilename, sb.BlobID, sb.LFS, gitSHA1(want))
			}
			continue
		}
		pointer := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", sha256Hex(want), len(want))
		if sb.LFS == nil || sb.LFS.SHA256 != sha256Hex(want) || sb.LFS.Size != int64(len(want)) || sb.LFS.PointerSize != len(pointer) {
			t.Errorf("%s: lfs %+v", sb.RFilename, sb.LFS)
		}
		if sb.BlobID != gitSHA1([]byte(pointer)) {
			t.Errorf("%s: blobId %s, want the pointer's %s", sb.RFilename, sb.BlobID, gitSHA1([]byte(pointer)))
		}
	}

	for _, rev := range []string{"main", m.SHA} {
		r := getModel(t, s, "/api/models/tgate/tiny-sd/revision/"+rev)
		if r.SHA != m.SHA || len(r.Siblings) != len(wantNames) {
			t.Errorf("revision %s: %+v", rev, r)
		}
		resp, _ := s.do("GET", "/tgate/tiny-sd/resolve/"+rev+"/unet/config.json")
		expect(t, resp, http.StatusOK)
	}
}

// TestRepoSHAFollowsFiles checks that changing a file changes the repository
// sha (the old sha becomes unknown) and the file's sha256.
func TestRepoSHAFollowsFiles(t *testing.T) {
	s := newSite(t)
	before := getModel(t, s, "/api/models/tgate/tiny-sd").SHA
	if again := getModel(t, s, "/api/models/tgate/tiny-sd").SHA; again != before {
		t.Fatalf("sha not stable: %s then %s", before, again)
	}
	resp, _ := s.do("GET", "/tgate/tiny-sd/resolve/main/"+weights)
	oldTag := resp.Header.Get("X-Linked-Etag")

	changed := append([]byte{}, s.files[weights]...)
	changed[0] ^= 0xff
	name := filepath.Join(s.models, "tgate", "tiny-sd", filepath.FromSlash(weights))
	s.write(name, changed)
	later := time.Now().Add(time.Second)
	os.Chtimes(name, later, later)

	after := getModel(t, s, "/api/models/tgate/tiny-sd").SHA
	if after == before {
		t.Fatal("sha did not change with the file")
	}
	resp, _ = s.do("GET", "/tgate/tiny-sd/resolve/"+before+"/unet/config.json")
	expect(t, resp, http.StatusNotFound)
	header(t, resp, "X-Error-Code", "RevisionNotFound")
	resp, _ = s.do("GET", "/tgate/tiny-sd/resolve/main/"+weights)
	header(t, resp, "X-Linked-Etag", `"`+sha256Hex(changed)+`"`)
	if resp.Header.Get("X-Linked-Etag") == oldTag {
		t.Error("sha256 was not recomputed")
	}
}

// TestHubErrors checks the Hub's 404s: codes and JSON bodies.
func TestHubErrors(t *testing.T) {
	s := newSite(t)
	cases := []struct{ path, code string }{
		{"/nobody/nothing/resolve/main/config.json", "RepoNotFound"},
		{"/api/models/nobody/nothing", "RepoNotFound"},
		{"/api/models/nobody/nothing/revision/main", "RepoNotFound"},
		{"/_lfs/nobody/nothing/main/x.safetensors", "RepoNotFound"},
		{"/tgate/tiny-sd/resolve/main/missing.json", "EntryNotFound"},
		{"/tgate/tiny-sd/resolve/main/unet", "EntryNotFound"},
		{"/tgate/tiny-sd/resolve/main/.gitattributes", "EntryNotFound"},
		{"/_lfs/tgate/tiny-sd/main/unet/missing.safetensors", "EntryNotFound"},
		{"/tgate/tiny-sd/resolve/v1.0/unet/config.json", "RevisionNotFound"},
		{"/tgate/tiny-sd/resolve/refs%2Fpr%2F1/unet/config.json", "RevisionNotFound"},
		{"/tgate/tiny-sd/resolve/0123456789012345678901234567890123456789/unet/config.json", "RevisionNotFound"},
		{"/api/models/tgate/tiny-sd/revision/dev", "RevisionNotFound"},
		{"/_lfs/tgate/tiny-sd/dev/" + weights, "RevisionNotFound"},
	}
	for _, c := range cases {
		for _, method := range []string{"GET", "HEAD"} {
			resp, body := s.do(method, c.path)
			expect(t, resp, http.StatusNotFound)
			header(t, resp, "X-Error-Code", c.code)
			header(t, resp, "Access-Control-Allow-Origin", "*")
			if method == "HEAD" {
				continue
			}
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Errorf("%s: body %q is not {\"error\":...}", c.path, body)
			}
		}
	}
}

// TestCORS checks the preflight answer and the headers on ordinary answers.
func TestCORS(t *testing.T) {
	s := newSite(t)
	for _, path := range []string{"/tgate/tiny-sd/resolve/main/" + weights, "/api/models/tgate/tiny-sd", "/_lfs/tgate/tiny-sd/main/" + weights} {
		resp, _ := s.do("OPTIONS", path, "Origin", "http://example.test", "Access-Control-Request-Method", "GET",
			"Access-Control-Request-Headers", "range")
		expect(t, resp, http.StatusNoContent)
		header(t, resp, "Access-Control-Allow-Origin", "*")
		header(t, resp, "Access-Control-Allow-Headers", "Range, Content-Type")
		header(t, resp, "Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
	}
	resp, _ := s.do("GET", "/_lfs/tgate/tiny-sd/main/"+weights, "Origin", "http://example.test", "Range", "bytes=0-0")
	header(t, resp, "Access-Control-Allow-Origin", "*")
	exp := resp.Header.Get("Access-Control-Expose-Headers")
	for _, h := range []string{"Content-Range", "Content-Length", "ETag", "X-Linked-Etag", "X-Linked-Size", "Accept-Ranges", "X-Error-Code"} {
		if !regexp.MustCompile(`(^|, )` + h + `(,|$)`).MatchString(exp) {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", exp, h)
		}
	}
	resp, _ = s.do("POST", "/api/models/tgate/tiny-sd")
	expect(t, resp, http.StatusMethodNotAllowed)
}

// TestLocalModels checks the list of repositories with a model_index.json.
func TestLocalModels(t *testing.T) {
	s := newSite(t)
	resp, body := s.do("GET", "/api/local-models")
	expect(t, resp, http.StatusOK)
	header(t, resp, "Content-Type", "application/json; charset=utf-8")
	var list []string
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(list) != "[acme/sd-turbo tgate/tiny-sd]" {
		t.Errorf("local models %q", list)
	}

	// No models folder: an empty list, and every repository is unknown.
	srv, err := New(Config{WebDir: s.web, WasmExec: filepath.Join(s.root, "wasm_exec.js")})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := srv.LocalModels(); err != nil || len(l) != 0 {
		t.Errorf("no models folder: %q, %v", l, err)
	}
	srv, err = New(Config{WebDir: s.web, WasmExec: filepath.Join(s.root, "wasm_exec.js"), ModelsDir: filepath.Join(s.root, "none")})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := srv.LocalModels(); err != nil || len(l) != 0 {
		t.Errorf("missing models folder: %q, %v", l, err)
	}
}

// TestSymlinkedRepo checks that a repository folder reached through a link,
// with files that are links (a Hub cache snapshot), is served.
func TestSymlinkedRepo(t *testing.T) {
	s := newSite(t)
	blobs := filepath.Join(s.root, "cache", "blobs")
	snap := filepath.Join(s.root, "cache", "snapshots", "abc")
	s.write(filepath.Join(blobs, "1"), []byte(`{"a":1}`))
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(blobs, "1"), filepath.Join(snap, "config.json")); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	if err := os.Symlink(snap, filepath.Join(s.models, "other", "linked")); err != nil {
		t.Fatal(err)
	}
	resp, body := s.do("GET", "/other/linked/resolve/main/config.json")
	expect(t, resp, http.StatusOK)
	if string(body) != `{"a":1}` {
		t.Errorf("body %q", body)
	}
	m := getModel(t, s, "/api/models/other/linked")
	if len(m.Siblings) != 1 || m.Siblings[0].RFilename != "config.json" {
		t.Errorf("siblings %+v", m.Siblings)
	}
}
