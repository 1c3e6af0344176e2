package shaders

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompile validates every kernel file, with the prelude, using the
// naga and tint compilers where they are installed. The browser tests of
// the webgpu package compile them for real.
func TestCompile(t *testing.T) {
	var tools [][]string
	if p, err := exec.LookPath("naga"); err == nil {
		tools = append(tools, []string{p})
	}
	if p, err := exec.LookPath("tint"); err == nil {
		tools = append(tools, []string{p, "--format", "wgsl", "-o", os.DevNull})
	}
	if len(tools) == 0 {
		t.Skip("neither naga nor tint is installed; kernels are compiled by the browser tests")
	}
	names := Names()
	if len(names) < 6 {
		t.Fatalf("only %d kernel files embedded: %v", len(names), names)
	}
	dir := t.TempDir()
	for _, name := range names {
		src, err := Source(name)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tool := range tools {
			cmd := exec.Command(tool[0], append(tool[1:], path)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s", filepath.Base(tool[0]), name, err, out)
			}
		}
	}
}

// TestSourceUnknown checks the error for a missing kernel names the file.
func TestSourceUnknown(t *testing.T) {
	_, err := Source("nope.wgsl")
	if err == nil || !strings.Contains(err.Error(), "nope.wgsl") {
		t.Fatalf("Source(nope.wgsl) error = %v", err)
	}
}

// TestEntryPoints checks that each file declares the compute entry points
// the backend binds.
func TestEntryPoints(t *testing.T) {
	want := map[string][]string{
		"elementwise.wgsl": {"fn unary(", "fn binary(", "fn lincomb("},
		"copy.wgsl":        {"fn strided(", "fn resize_nearest(", "fn gather("},
		"norm.wgsl":        {"fn group_norm(", "fn layer_norm(", "fn softmax("},
		"matmul.wgsl":      {"fn matmul("},
		"conv2d.wgsl":      {"fn conv2d("},
		"attention.wgsl":   {"fn attention("},
	}
	for file, eps := range want {
		src, err := Source(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range eps {
			if !strings.Contains(src, "@compute") || !strings.Contains(src, ep) {
				t.Errorf("%s lacks entry point %s", file, ep)
			}
		}
	}
}
