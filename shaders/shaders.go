// Package shaders holds the WGSL compute kernels of the WebGPU backend, one
// file per op family, embedded in the binary. Every file is compiled with
// prelude.wgsl (dtype decoding, dispatch helpers) prepended.
//
// Conventions shared by all kernels: binding 0 is the kernel's parameter
// struct (a uniform with a dynamic offset) whose first member `base` is a
// vec4<u32> workgroup offset; binding 1 is the f32 output; bindings 2.. are
// the inputs, bound as array<u32> and decoded by the override constants
// DT_A, DT_B, ... (0 f32, 1 f16, 2 bf16). Workgroup sizes are the override
// constant WG.
//
// A tensor above the device's maxStorageBufferBindingSize is bound in
// windows: a range of its buffer starting at a multiple of
// minStorageBufferOffsetAlignment. Kernels that run over such windows
// (binary, strided, resize_nearest, the norms, conv2d) take, in their
// parameter struct, the element index where each windowed binding starts
// and subtract it from their global indices, along with the part of the
// index space the dispatch covers.
package shaders

import (
	"embed"
	"fmt"
	"sort"
	"strings"
)

//go:embed *.wgsl
var files embed.FS

// Prelude is the source prepended to every kernel file.
func Prelude() string {
	b, err := files.ReadFile("prelude.wgsl")
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Source returns the compilable WGSL of a kernel file (such as
// "matmul.wgsl"): the prelude followed by the file.
func Source(name string) (string, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("shaders: no kernel file %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return Prelude() + "\n" + string(b), nil
}

// Names lists the kernel files (without the prelude), sorted.
func Names() []string {
	ents, err := files.ReadDir(".")
	if err != nil {
		panic(err)
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); n != "prelude.wgsl" && strings.HasSuffix(n, ".wgsl") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
