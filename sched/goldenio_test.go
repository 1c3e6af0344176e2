package sched

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/tensor"
)

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := quoteNonFinite(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fixed, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// runTensors holds every tensor of a run's safetensors file as float32
// (golden.Tensors; the recorded integer timesteps are below 2^24, so their
// conversion is exact).
type runTensors struct {
	path string
	m    map[string]*tensor.Host
}

func openRun(t testing.TB, path string) runTensors {
	t.Helper()
	return runTensors{path: path, m: golden.Tensors(t, path)}
}

func (r runTensors) has(name string) bool { _, ok := r.m[name]; return ok }

// get returns the named tensor, failing the test if the run lacks it.
func (r runTensors) get(t testing.TB, name string) *tensor.Host {
	t.Helper()
	h, ok := r.m[name]
	if !ok {
		t.Fatalf("%s: no tensor %q", r.path, name)
	}
	return h
}

// scalar reads a 0-d or 1-element tensor (a recorded timestep).
func (r runTensors) scalar(t testing.TB, name string) float64 {
	t.Helper()
	h := r.get(t, name)
	if len(h.Data) == 0 {
		t.Fatalf("%s: %s is empty", r.path, name)
	}
	return float64(h.Data[0])
}

// shaped wraps got, a scheduler output, in want's shape so that golden.Diff
// compares them element for element; it fails the test if their sizes
// differ.
func shaped(t testing.TB, got []float32, want *tensor.Host) *tensor.Host {
	t.Helper()
	if len(got) != len(want.Data) {
		t.Fatalf("%d values, the reference has %d (shape %v)", len(got), len(want.Data), want.Shape)
	}
	return &tensor.Host{Shape: want.Shape, Data: got}
}
