//go:build js && wasm

package webgpu

import (
	"fmt"
	"os"
	"testing"

	"github.com/tgate-web/tgate/backend/backendtest"
)

// shared is the backend all tests use: one device for the whole binary.
var shared *Backend

func TestMain(m *testing.M) {
	b, err := New(Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "webgpu: no device:", err)
		os.Exit(1)
	}
	l := b.Limits()
	fmt.Printf("webgpu adapter: %s; maxStorageBufferBindingSize %d, maxComputeWorkgroupsPerDimension %d\n",
		b.AdapterInfo(), l.MaxStorageBufferBindingSize, l.MaxComputeWorkgroupsPerDimension)
	shared = b
	os.Exit(m.Run())
}

// TestConformance runs the backend conformance suite.
func TestConformance(t *testing.T) {
	backendtest.RunAll(t, shared)
	s := shared.Stats()
	t.Logf("stats: %+v", s)
}
