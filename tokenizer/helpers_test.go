package tokenizer

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// sharedPath joins elem to the shared data folder next to the project root
// (the directory holding go.mod).
func sharedPath(t testing.TB, elem ...string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
	return filepath.Join(append([]string{dir, "..", "shared"}, elem...)...)
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	loadedMu sync.Mutex
	loaded   = map[string]*CLIP{}
)

// loadDir loads a shared tokenizer folder once per test binary and returns
// a private copy (so a test may change its Cleaning).
func loadDir(t testing.TB, elem ...string) *CLIP {
	t.Helper()
	path := sharedPath(t, elem...)
	loadedMu.Lock()
	defer loadedMu.Unlock()
	tok, ok := loaded[path]
	if !ok {
		var err error
		if tok, err = LoadCLIP(path); err != nil {
			t.Fatal(err)
		}
		loaded[path] = tok
	}
	c := *tok
	return &c
}

// clipVocabWith builds a tokenizer from the real vocabulary and merges in
// assets/clip and the given config folder (which holds only JSON configs).
func clipVocabWith(t testing.TB, configDir ...string) *CLIP {
	t.Helper()
	f := CLIPFiles{
		Vocab:  readFile(t, sharedPath(t, "assets", "clip", VocabFile)),
		Merges: readFile(t, sharedPath(t, "assets", "clip", MergesFile)),
		Name:   filepath.Join(configDir...),
	}
	if len(configDir) > 0 {
		dir := sharedPath(t, configDir...)
		f.TokenizerConfig = readFile(t, filepath.Join(dir, TokenizerConfigFile))
		f.SpecialTokensMap = readFile(t, filepath.Join(dir, SpecialTokensMapFile))
	}
	tok, err := NewCLIP(f)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// readI64Tensor reads one I64 tensor from a safetensors file: an 8-byte
// little-endian header length, a JSON header mapping names to
// {dtype, shape, data_offsets}, then the data (offsets relative to the end
// of the header).
func readI64Tensor(t testing.TB, path, name string) (shape []int, data []int64) {
	t.Helper()
	raw := readFile(t, path)
	if len(raw) < 8 {
		t.Fatalf("%s: too short for a safetensors header", path)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	if n > uint64(len(raw)-8) {
		t.Fatalf("%s: header length %d exceeds the file", path, n)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatalf("%s: header: %v", path, err)
	}
	entry, ok := header[name]
	if !ok {
		t.Fatalf("%s: no tensor %q", path, name)
	}
	var info struct {
		DType   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(entry, &info); err != nil {
		t.Fatalf("%s: %s: %v", path, name, err)
	}
	if info.DType != "I64" {
		t.Fatalf("%s: %s has dtype %s, want I64", path, name, info.DType)
	}
	body := raw[8+n:]
	lo, hi := info.Offsets[0], info.Offsets[1]
	if lo < 0 || hi < lo || hi > int64(len(body)) || (hi-lo)%8 != 0 {
		t.Fatalf("%s: %s: bad data offsets %v", path, name, info.Offsets)
	}
	count := 1
	for _, d := range info.Shape {
		count *= d
	}
	if int64(count*8) != hi-lo {
		t.Fatalf("%s: %s: shape %v does not match %d bytes", path, name, info.Shape, hi-lo)
	}
	data = make([]int64, count)
	for i := range data {
		data[i] = int64(binary.LittleEndian.Uint64(body[lo+int64(8*i):]))
	}
	return info.Shape, data
}

func intsEqual[A, B int | int32 | int64](a []A, b []B) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if int64(a[i]) != int64(b[i]) {
			return false
		}
	}
	return true
}

func fmtIDs[A int | int32 | int64](ids []A) string { return fmt.Sprint(ids) }
