package t5

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/tensor"
	"github.com/tgate-web/tgate/tokenizer"
)

// tol is the allowed max |got − want| relative to max |want|.
const tol = 1e-5

// open loads a golden T5 encoder folder's config and weights.
func open(t *testing.T, rel ...string) (*hub.Component, *Config) {
	t.Helper()
	comp, err := hub.OpenComponent(golden.Dir(t, rel...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { comp.Close() })
	cfg, err := ParseConfig(comp.ConfigJSON())
	if err != nil {
		t.Fatal(err)
	}
	return comp, cfg
}

// rows converts a golden [B, L] integer tensor to rows of int32.
func rows(h *tensor.Host) [][]int32 {
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

// TestGoldenTiny compares last_hidden_state and every hidden state of the
// t5_encoder_tiny golden (two prompts padded to 120, with their masks).
func TestGoldenTiny(t *testing.T) {
	comp, cfg := open(t, "golden", "t5_encoder_tiny")
	b := cpu.New()
	m, err := Load(b, comp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release(b)
	io := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "t5_encoder_tiny"), "io.safetensors"))
	ids, mask := rows(io["prompts.in.input_ids"]), rows(io["prompts.in.attention_mask"])
	out, err := m.Forward(b, ids, mask, Options{HiddenStates: true})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release(b)
	if len(out.HiddenStates) != cfg.NumLayers+1 {
		t.Fatalf("%d hidden states for %d layers", len(out.HiddenStates), cfg.NumLayers)
	}
	got := map[string]backend.Tensor{"last_hidden_state": out.LastHiddenState}
	for i, h := range out.HiddenStates {
		got[fmt.Sprintf("hidden_states.%d", i)] = h
	}
	checked := 0
	for k, want := range io {
		name, ok := strings.CutPrefix(k, "prompts.out.")
		if !ok {
			continue
		}
		g, ok := got[name]
		if !ok {
			t.Errorf("golden output %q has no counterpart", name)
			continue
		}
		golden.AssertClose(t, name, golden.ReadBack(t, b, g), want, tol)
		checked++
	}
	if checked != 4 {
		t.Errorf("%d outputs compared, want 4", checked)
	}
}

// TestGoldenPixArtText encodes the PixArt run's prompt and negative
// prompt from their text, as the pipeline does (lower and strip, T5
// tokenizer padded to 120, the pipeline's text encoder with the mask),
// and compares with the run's prompt_embeds / negative_prompt_embeds.
func TestGoldenPixArtText(t *testing.T) {
	comp, cfg := open(t, "golden", "pixart_tiny_pipeline", "text_encoder")
	b := cpu.New()
	m, err := Load(b, comp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release(b)
	tok, err := tokenizer.LoadT5(golden.Dir(t, "golden", "pixart_tiny_pipeline", "tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Call struct {
			Prompt         string `json:"prompt"`
			NegativePrompt string `json:"negative_prompt"`
		} `json:"call"`
	}
	data, err := os.ReadFile(golden.Dir(t, "golden", "runs", "pixart_dpm_baseline.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	run := golden.Tensors(t, golden.Dir(t, "golden", "runs", "pixart_dpm_baseline.safetensors"))
	for p, text := range map[string]string{"prompt": meta.Call.Prompt, "negative_prompt": meta.Call.NegativePrompt} {
		want := run["text."+p+"_embeds"]
		if want == nil {
			t.Fatalf("run has no text.%s_embeds", p)
		}
		ids, mask, _ := tok.EncodePadded(tokenizer.PixArtPreprocess(text, false), tokenizer.PixArtAlphaMaxLength)
		out, err := m.Forward(b, [][]int32{ids}, [][]int32{mask}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		golden.AssertClose(t, p+"_embeds", golden.ReadBack(t, b, out.LastHiddenState), want, tol)
		out.Release(b)
	}
}

// TestStreaming checks that ForwardStreaming and EncodeStreaming give
// Forward's result exactly, free every weight they bound, and never hold
// more than one block: after the embedding lookup EncodeStreaming holds
// less than the embedding table, and the live memory does not grow from
// block to block.
func TestStreaming(t *testing.T) {
	comp, cfg := open(t, "golden", "t5_encoder_tiny")
	io := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "t5_encoder_tiny"), "io.safetensors"))
	ids, mask := rows(io["prompts.in.input_ids"]), rows(io["prompts.in.attention_mask"])
	b := cpu.New()

	m, err := Load(b, comp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := m.Forward(b, ids, mask, Options{HiddenStates: true})
	if err != nil {
		t.Fatal(err)
	}
	m.Release(b)
	want := golden.ReadBack(t, b, ref.LastHiddenState)
	wantHidden := golden.ReadBack(t, b, ref.HiddenStates[1])
	ref.Release(b)
	if live := b.Memory().Live; live != 0 {
		t.Fatalf("%d bytes live after releasing the resident encoder", live)
	}

	s, err := LoadStreaming(b, comp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Streaming() {
		t.Fatal("LoadStreaming gave a resident encoder")
	}
	if _, err := s.Forward(b, ids, mask, Options{}); err == nil {
		t.Error("Forward on a streaming encoder did not fail")
	}
	held := b.Memory().Live
	var perBlock []int64
	out, err := s.ForwardStreaming(b, comp, ids, mask, Options{HiddenStates: true, Progress: func(done, total int) {
		perBlock = append(perBlock, b.Memory().Live)
	}})
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "ForwardStreaming last_hidden_state", golden.ReadBack(t, b, out.LastHiddenState), want)
	assertEqual(t, "ForwardStreaming hidden_states.1", golden.ReadBack(t, b, out.HiddenStates[1]), wantHidden)
	out.Release(b)
	if len(perBlock) != cfg.NumLayers {
		t.Fatalf("progress called %d times for %d blocks", len(perBlock), cfg.NumLayers)
	}
	if live := b.Memory().Live; live != held {
		t.Errorf("ForwardStreaming left %d bytes live, %d before", live, held)
	}
	s.Release(b)

	embBytes := int64(cfg.VocabSize * cfg.DModel * 4)
	var lives []int64
	out, err = EncodeStreaming(b, comp, cfg, ids, mask, Options{Progress: func(done, total int) {
		lives = append(lives, b.Memory().Live)
	}})
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "EncodeStreaming last_hidden_state", golden.ReadBack(t, b, out.LastHiddenState), want)
	out.Release(b)
	for i, l := range lives {
		if l >= embBytes {
			t.Errorf("after block %d: %d bytes live, not below the %d-byte embedding table", i, l, embBytes)
		}
		if i > 0 && l > lives[0] {
			t.Errorf("after block %d: %d bytes live, more than %d after block 0", i, l, lives[0])
		}
	}
	if live := b.Memory().Live; live != 0 {
		t.Errorf("EncodeStreaming left %d bytes live", live)
	}
}

func assertEqual(t *testing.T, name string, got, want *tensor.Host) {
	t.Helper()
	if abs, _ := golden.Diff(got, want); abs != 0 {
		t.Errorf("%s differs from Forward by up to %g", name, abs)
	}
}

// RelativeBucket against the bucket formula computed independently in
// float64 for every distance the goldens use and beyond, for T5's
// (32, 128) and a (64, 256) configuration: exact buckets below
// num_buckets/4, logarithmic ones up to the last bucket of each half.
func TestRelativeBucket(t *testing.T) {
	for _, c := range []struct{ buckets, dist int }{{32, 128}, {64, 256}} {
		half := c.buckets / 2
		exact := half / 2
		for rel := -600; rel <= 600; rel++ {
			n := math.Abs(float64(rel))
			want := 0
			if rel > 0 {
				want = half
			}
			if n < float64(exact) {
				want += int(n)
			} else {
				v := float64(exact) + math.Floor(math.Log(n/float64(exact))/math.Log(float64(c.dist)/float64(exact))*float64(half-exact)+1e-9)
				want += int(math.Min(v, float64(half-1)))
			}
			if got := RelativeBucket(rel, c.buckets, c.dist); got != want {
				t.Errorf("buckets %d max %d: RelativeBucket(%d) = %d, want %d", c.buckets, c.dist, rel, got, want)
			}
		}
	}
	// Fixed points of the (32, 128) table: 0..7 exact; 8 → 8; 16 → 10;
	// 32 → 12; 64 → 14; 128 and beyond → 15; positive offsets add 16.
	for rel, want := range map[int]int{0: 0, -7: 7, -8: 8, -16: 10, -32: 12, -64: 14, -128: 15, -1000: 15, 1: 17, 64: 30, 500: 31} {
		if got := RelativeBucket(rel, 32, 128); got != want {
			t.Errorf("RelativeBucket(%d, 32, 128) = %d, want %d", rel, got, want)
		}
	}
}

// Configs: gated-gelu means the tanh GELU; bad values name the key.
func TestConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"feed_forward_proj": "gated-gelu"}`))
	if err != nil {
		t.Fatal(err)
	}
	if act, _ := cfg.Activation(); act != backend.GELUTanh || !cfg.Gated() {
		t.Errorf("gated-gelu: activation %v gated %v, want gelu_tanh and gated", act, cfg.Gated())
	}
	for js, key := range map[string]string{
		`{"num_heads": 0}`:                   "num_heads",
		`{"feed_forward_proj": "gated-foo"}`: "feed_forward_proj",
		`{"layer_norm_epsilon": 0}`:          "layer_norm_epsilon",
	} {
		if _, err := ParseConfig([]byte(js)); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error %v, want one naming %s", js, err, key)
		}
	}
}
