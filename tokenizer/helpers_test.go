package tokenizer

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

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
	path := golden.Dir(t, elem...)
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
		Vocab:  readFile(t, golden.Dir(t, "assets", "clip", VocabFile)),
		Merges: readFile(t, golden.Dir(t, "assets", "clip", MergesFile)),
		Name:   filepath.Join(configDir...),
	}
	if len(configDir) > 0 {
		dir := golden.Dir(t, configDir...)
		f.TokenizerConfig = readFile(t, filepath.Join(dir, TokenizerConfigFile))
		f.SpecialTokensMap = readFile(t, filepath.Join(dir, SpecialTokensMapFile))
	}
	tok, err := NewCLIP(f)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// readI64Tensor reads one I64 tensor of a safetensors file exactly (token
// ids), failing the test if the tensor is missing or has another dtype.
func readI64Tensor(t testing.TB, path, name string) (shape []int, data []int64) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw, err := f.ReadRaw(name)
	if err != nil {
		t.Fatal(err)
	}
	if raw.DType != tensor.I64 {
		t.Fatalf("%s: %s has dtype %s, want I64", path, name, raw.DType)
	}
	data = make([]int64, raw.Shape.Numel())
	if len(raw.Bytes) != 8*len(data) {
		t.Fatalf("%s: %s: shape %v does not match %d bytes", path, name, raw.Shape, len(raw.Bytes))
	}
	for i := range data {
		data[i] = int64(binary.LittleEndian.Uint64(raw.Bytes[8*i:]))
	}
	return raw.Shape, data
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
