package clip

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// tol is the allowed max |got − want| relative to max |want|.
const tol = 1e-4

// open loads a golden text-encoder folder onto b.
func open(t *testing.T, b backend.Backend, rel ...string) (*TextModel, *hub.Component) {
	t.Helper()
	comp, err := hub.OpenComponent(golden.Dir(t, rel...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { comp.Close() })
	var cfg Config
	if err := comp.DecodeConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	m, err := Load(b, comp, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, comp
}

// idsOf converts a golden [B, L] id tensor to rows of int32.
func idsOf(h *tensor.Host) [][]int32 {
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

// cases returns the case names of an io.safetensors map.
func cases(io map[string]*tensor.Host) []string {
	var out []string
	for k := range io {
		if c, ok := strings.CutSuffix(k, ".in.input_ids"); ok {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// TestGoldens runs every case of the CLIP goldens (quick_gelu, gelu, the
// SDXL pair with 3 layers and a projection) and compares every stored
// output: last_hidden_state, pooler_output or text_embeds, and each
// hidden state.
func TestGoldens(t *testing.T) {
	for _, dir := range [][]string{
		{"golden", "sd15_tiny_pipeline", "text_encoder"},
		{"golden", "clip_text_tiny_gelu"},
		{"golden", "sdxl_tiny_pipeline", "text_encoder"},
		{"golden", "sdxl_tiny_pipeline", "text_encoder_2"},
	} {
		t.Run(strings.Join(dir[1:], "/"), func(t *testing.T) {
			b := cpu.New()
			m, _ := open(t, b, dir...)
			io := golden.Tensors(t, filepath.Join(golden.Dir(t, dir...), "io.safetensors"))
			cs := cases(io)
			if len(cs) == 0 {
				t.Fatal("no cases in io.safetensors")
			}
			for _, c := range cs {
				out, err := m.Forward(b, idsOf(io[c+".in.input_ids"]), Options{HiddenStates: true})
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]backend.Tensor{
					"last_hidden_state": out.LastHiddenState,
					"pooler_output":     out.Pooled,
				}
				if out.TextEmbeds != nil {
					got["text_embeds"] = out.TextEmbeds
				}
				if len(out.HiddenStates) != m.Config.NumHiddenLayers+1 {
					t.Fatalf("%d hidden states for %d layers", len(out.HiddenStates), m.Config.NumHiddenLayers)
				}
				for i, h := range out.HiddenStates {
					got[fmt.Sprintf("hidden_states.%d", i)] = h
				}
				checked := 0
				for k, want := range io {
					name, ok := strings.CutPrefix(k, c+".out.")
					if !ok {
						continue
					}
					g, ok := got[name]
					if !ok {
						t.Errorf("%s: golden output %q has no counterpart", c, name)
						continue
					}
					golden.AssertClose(t, c+"."+name, golden.ReadBack(t, b, g), want, tol)
					checked++
				}
				if checked < 4 {
					t.Errorf("%s: only %d outputs compared", c, checked)
				}
				// clip_skip path: final_layer_norm(hidden_states[-1]) is
				// last_hidden_state.
				fn := m.FinalNorm(b, out.HiddenStates[len(out.HiddenStates)-1])
				golden.AssertClose(t, c+".FinalNorm(hidden_states[-1])", golden.ReadBack(t, b, fn), io[c+".out.last_hidden_state"], tol)
				b.Free(fn)
				out.Release(b)
			}
		})
	}
}

// TestPooledIndex checks both pooling rules of modeling_clip.py against
// hand-worked rows.
func TestPooledIndex(t *testing.T) {
	row := []int32{49406, 320, 1125, 49407, 0, 49407}
	if got := PooledIndex(row, 2); got != 3 {
		t.Errorf("legacy eos 2: index %d, want 3 (first maximum)", got)
	}
	if got := PooledIndex(row, 49407); got != 3 {
		t.Errorf("eos 49407: index %d, want 3", got)
	}
	if got := PooledIndex(row, 1125); got != 2 {
		t.Errorf("eos 1125: index %d, want 2 (first occurrence, not the maximum)", got)
	}
	if got := PooledIndex(row, 7); got != 0 {
		t.Errorf("eos absent: index %d, want 0", got)
	}
}

// TestPooledFollowsEOSToken sets a non-legacy eos_token_id that occurs in
// mid-prompt and checks that the pooled output is the golden
// last_hidden_state row at its first occurrence.
func TestPooledFollowsEOSToken(t *testing.T) {
	b := cpu.New()
	dir := []string{"golden", "clip_text_tiny_gelu"}
	m, _ := open(t, b, dir...)
	io := golden.Tensors(t, filepath.Join(golden.Dir(t, dir...), "io.safetensors"))
	ids := idsOf(io["sd15pad.in.input_ids"])
	last := io["sd15pad.out.last_hidden_state"]
	eos := ids[0][3] // an ordinary word token of prompt 0
	m.Config.EOSTokenID = int(eos)
	out, err := m.Forward(b, ids, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release(b)
	if out.HiddenStates != nil {
		t.Error("hidden states returned without being requested")
	}
	d := m.Config.HiddenSize
	l := len(ids[0])
	want := tensor.New(len(ids), d)
	for r, row := range ids {
		pos := slices.Index(row, eos)
		if pos < 0 {
			pos = 0
		}
		copy(want.Data[r*d:(r+1)*d], last.Data[(r*l+pos)*d:(r*l+pos+1)*d])
	}
	golden.AssertClose(t, "pooled at eos", golden.ReadBack(t, b, out.Pooled), want, tol)
}

// TestMemory checks that a forward pass frees every intermediate (only
// the weights stay live once the outputs are released) and that Release
// frees the weights.
func TestMemory(t *testing.T) {
	b := cpu.New()
	m, _ := open(t, b, "golden", "sdxl_tiny_pipeline", "text_encoder_2")
	weights := b.Memory().Live
	if weights == 0 {
		t.Fatal("no live memory after loading")
	}
	ids := [][]int32{{49406, 320, 1125, 49407, 0, 0}, {49406, 49407, 0, 0, 0, 0}}
	for _, opt := range []Options{{}, {HiddenStates: true}} {
		out, err := m.Forward(b, ids, opt)
		if err != nil {
			t.Fatal(err)
		}
		out.Release(b)
		if live := b.Memory().Live; live != weights {
			t.Errorf("options %+v: %d bytes live after releasing the outputs, want the %d of the weights", opt, live, weights)
		}
	}
	m.Release(b)
	if live := b.Memory().Live; live != 0 {
		t.Errorf("%d bytes live after Release", live)
	}
	if _, err := m.Forward(b, ids, Options{}); err == nil {
		t.Error("Forward after Release did not fail")
	}
}

// TestShapeMismatch loads weights of hidden size 32 with a config saying
// 48: the error names the first tensor and both shapes, and nothing stays
// allocated.
func TestShapeMismatch(t *testing.T) {
	b := cpu.New()
	comp, err := hub.OpenComponent(golden.Dir(t, "golden", "clip_text_tiny_gelu"))
	if err != nil {
		t.Fatal(err)
	}
	defer comp.Close()
	var cfg Config
	if err := comp.DecodeConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	cfg.HiddenSize = 48
	_, err = Load(b, comp, &cfg)
	if err == nil {
		t.Fatal("no error for hidden_size 48 against 32-wide weights")
	}
	for _, s := range []string{"text_model.embeddings.token_embedding.weight", "[49408,32]", "[49408,48]"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
	// A deeper config fails on the first missing layer.
	cfg.HiddenSize = 32
	cfg.NumHiddenLayers = 3
	_, err = Load(b, comp, &cfg)
	if err == nil || !strings.Contains(err.Error(), "text_model.encoder.layers.2.") || !strings.Contains(err.Error(), "missing") {
		t.Errorf("3-layer config on 2-layer weights: error %v", err)
	}
	// The projection model needs text_projection.weight.
	cfg.NumHiddenLayers = 2
	cfg.WithProjection = true
	_, err = Load(b, comp, &cfg)
	if err == nil || !strings.Contains(err.Error(), "text_projection.weight") {
		t.Errorf("projection config without the projection: error %v", err)
	}
	if live := b.Memory().Live; live != 0 {
		t.Errorf("%d bytes live after failed loads", live)
	}
}

func TestForwardErrors(t *testing.T) {
	b := cpu.New()
	m, _ := open(t, b, "golden", "clip_text_tiny_gelu")
	long := make([]int32, 78)
	for _, c := range []struct {
		name string
		ids  [][]int32
		want string
	}{
		{"empty", nil, "empty batch"},
		{"too long", [][]int32{long}, "sequence length 78"},
		{"ragged", [][]int32{{1, 2, 3}, {1, 2}}, "row 1 has length 2"},
		{"out of vocabulary", [][]int32{{49406, 49408}}, "token id 49408 at row 0 position 1"},
		{"negative", [][]int32{{-1}}, "token id -1"},
	} {
		_, err := m.Forward(b, c.ids, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}

func TestConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{"architectures": ["CLIPTextModelWithProjection"], "hidden_size": 1280,
		"intermediate_size": 5120, "num_attention_heads": 20, "num_hidden_layers": 32, "hidden_act": "gelu",
		"projection_dim": 1280, "eos_token_id": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.WithProjection || c.HeadDim() != 64 || c.VocabSize != 49408 || c.MaxPositionEmbeddings != 77 || c.LayerNormEps != 1e-5 || c.EOSTokenID != 2 {
		t.Errorf("parsed %+v", c)
	}
	// Defaults when keys are missing; a nested text_config is used.
	c, err = ParseConfig([]byte(`{"text_config": {"hidden_size": 768, "num_attention_heads": 12}, "architectures": ["CLIPModel"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.HiddenSize != 768 || c.NumHiddenLayers != 12 || c.HiddenAct != "quick_gelu" || c.EOSTokenID != 49407 || c.WithProjection {
		t.Errorf("parsed %+v", c)
	}
	for _, bad := range []struct{ json, want string }{
		{`{"hidden_size": 30, "num_attention_heads": 4}`, "not divisible"},
		{`{"hidden_act": "swish"}`, `hidden_act "swish"`},
		{`{"num_hidden_layers": 0}`, "num_hidden_layers = 0"},
		{`{"layer_norm_eps": 0}`, "layer_norm_eps"},
		{`{"hidden_size": "big"}`, "clip config"},
	} {
		_, err := ParseConfig([]byte(bad.json))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: error %v, want one mentioning %q", bad.json, err, bad.want)
		}
	}
}

// TestRealConfigs builds the SD1.5 and SDXL text encoders from their real
// config.json files on the shape-only meter backend, checks the parameter
// counts against the published sizes (CLIP ViT-L/14 text tower
// 123,060,480; OpenCLIP bigG text tower with projection 694,659,840), and
// runs a 77-token forward pass, after which only the weights are live.
func TestRealConfigs(t *testing.T) {
	for _, c := range []struct {
		dir    []string
		params int64
		proj   bool
	}{
		{[]string{"runwayml", "stable-diffusion-v1-5", "text_encoder"}, 123060480, false},
		{[]string{"stabilityai", "stable-diffusion-xl-base-1.0", "text_encoder_2"}, 694659840, true},
	} {
		comp, err := hub.OpenConfigOnly(golden.Dir(t, append([]string{"assets", "configs"}, c.dir...)...))
		if err != nil {
			t.Fatal(err)
		}
		var cfg Config
		if err := comp.DecodeConfig(&cfg); err != nil {
			t.Fatal(err)
		}
		mb := meter.New()
		s := nn.NewDeclaredScope(mb, tensor.F16)
		m, err := New(s, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, p := range s.Params() {
			n += int64(p.Shape.Numel())
		}
		if n != c.params {
			t.Errorf("%s: %d parameters, want %d", c.dir[1], n, c.params)
		}
		weights := mb.Memory().Live
		ids := make([]int32, 77)
		out, err := m.Forward(mb, [][]int32{ids, ids}, Options{HiddenStates: true})
		if err != nil {
			t.Fatal(err)
		}
		if sh := out.LastHiddenState.Shape(); !sh.Equal(tensor.Shape{2, 77, cfg.HiddenSize}) {
			t.Errorf("%s: last_hidden_state %v", c.dir[1], sh)
		}
		if (out.TextEmbeds != nil) != c.proj {
			t.Errorf("%s: text_embeds %v, want present=%v", c.dir[1], out.TextEmbeds, c.proj)
		}
		out.Release(mb)
		if live := mb.Memory().Live; live != weights {
			t.Errorf("%s: %d bytes live after the forward pass, want the %d of the weights", c.dir[1], live, weights)
		}
	}
}
