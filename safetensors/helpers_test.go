package safetensors

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// shared returns the path of rel under ../shared next to the module root
// (the nearest folder above the working directory holding go.mod).
func shared(t testing.TB, rel ...string) string {
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
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
	p := filepath.Join(append([]string{dir, "..", "shared"}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("reference data missing: %v", err)
	}
	return p
}

// file assembles a safetensors file by hand: the 8-byte little-endian
// length of header, the header bytes as given, then data.
func file(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}
