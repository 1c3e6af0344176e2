//go:build js && wasm

package webgpu

import (
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/models/t5"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// t5Tol bounds the T5 encoder's error against the golden relative to its
// largest magnitude: the host test measures 1.9e-6 on the CPU backend,
// and float32 GPU summation stays within a few times that.
const t5Tol = 1e-5

// fetchSafetensors reads a safetensors file of ../shared into memory as
// raw tensors.
func fetchSafetensors(t *testing.T, rel string) (memSource, *safetensors.File) {
	t.Helper()
	f, err := safetensors.ParseBytes(fetchShared(t, rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	src := memSource{}
	for _, n := range f.Names() {
		raw, err := f.ReadRaw(n)
		if err != nil {
			t.Fatalf("%s: %s: %v", rel, n, err)
		}
		src[n] = raw
	}
	return src, f
}

// t5Rows reads a [B, L] integer tensor of f as rows of int32.
func t5Rows(t *testing.T, f *safetensors.File, name string) [][]int32 {
	t.Helper()
	h, err := f.ReadFloat32(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	b, l := h.Shape[0], h.Shape[1]
	out := make([][]int32, b)
	for i := range out {
		out[i] = make([]int32, l)
		for j := range out[i] {
			out[i][j] = int32(h.Data[i*l+j])
		}
	}
	return out
}

// TestModelT5 runs the tiny T5 encoder golden (t5_encoder_tiny: two
// prompts padded to 120 with their masks) on both backends, resident and
// streaming one block at a time, and compares the WebGPU output with the
// CPU's and with the golden's last_hidden_state.
func TestModelT5(t *testing.T) {
	src, _ := fetchSafetensors(t, "golden/t5_encoder_tiny/model.safetensors")
	_, io := fetchSafetensors(t, "golden/t5_encoder_tiny/io.safetensors")
	cfg, err := t5.ParseConfig(fetchShared(t, "golden/t5_encoder_tiny/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	ids, mask := t5Rows(t, io, "prompts.in.input_ids"), t5Rows(t, io, "prompts.in.attention_mask")
	want, err := io.ReadFloat32("prompts.out.last_hidden_state")
	if err != nil {
		t.Fatal(err)
	}

	gpu, ref := onBoth(t, func(b backend.Backend) []*tensor.Host {
		m, err := t5.Load(b, src, cfg)
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
		out, err := m.Forward(b, ids, mask, t5.Options{})
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
		resident := readBack(t, b, out.LastHiddenState)
		out.Release(b)
		m.Release(b)

		out, err = t5.EncodeStreaming(b, src, cfg, ids, mask, t5.Options{})
		if err != nil {
			t.Fatalf("%s streaming: %v", b.Name(), err)
		}
		streamed := readBack(t, b, out.LastHiddenState)
		out.Release(b)
		return []*tensor.Host{resident, streamed}
	})
	for i, name := range []string{"resident", "streaming"} {
		compare(t, "t5 "+name+" webgpu vs cpu", gpu[i], ref[i], modelTol)
		compare(t, "t5 "+name+" webgpu vs golden", gpu[i], want, t5Tol)
	}
}
