package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

// t5Goldens is assets/goldens/t5_tokenizer_goldens.json.
type t5Goldens struct {
	Published []struct {
		Text       string  `json:"text"`
		IDs        []int32 `json:"ids"`
		IDsNoEOS   []int32 `json:"ids_without_added_eos"`
		MatchesPub bool    `json:"matches_published"`
	} `json:"published"`
	Computed []struct {
		Text string  `json:"text"`
		IDs  []int32 `json:"ids"`
	} `json:"computed_with_sentencepiece"`
}

func loadT5Goldens(t *testing.T) *t5Goldens {
	t.Helper()
	var g t5Goldens
	if err := json.Unmarshal(readFile(t, golden.Dir(t, "assets", "goldens", "t5_tokenizer_goldens.json")), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Published) == 0 || len(g.Computed) == 0 {
		t.Fatal("t5_tokenizer_goldens.json has no cases")
	}
	return &g
}

// t5Sources loads the same vocabulary from every form the tests cover:
// the bare spiece.model (T5Tokenizer('spiece.model', legacy=True)), SD3's
// tokenizer_3/tokenizer.json, and the PixArt pipeline's saved folder.
func t5Sources(t *testing.T) map[string]*T5 {
	t.Helper()
	bare, err := NewT5(T5Files{SentencePiece: readFile(t, golden.Dir(t, "assets", "t5", SentencePieceFile)), Name: "assets/t5"})
	if err != nil {
		t.Fatal(err)
	}
	sd3Dir := golden.Dir(t, "assets", "configs", "stabilityai", "stable-diffusion-3-medium-diffusers", "tokenizer_3")
	sd3, err := LoadT5(sd3Dir)
	if err != nil {
		t.Fatal(err)
	}
	pixart, err := LoadT5(golden.Dir(t, "golden", "pixart_tiny_pipeline", "tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*T5{"spiece.model": bare, "sd3 tokenizer.json": sd3, "pixart folder": pixart}
}

// Every case of the T5 goldens: transformers' published test ids and the
// prompts encoded by sentencepiece 0.1.97 (EOS appended).
func TestT5Goldens(t *testing.T) {
	g := loadT5Goldens(t)
	for name, tok := range t5Sources(t) {
		t.Run(name, func(t *testing.T) {
			n := 0
			for _, c := range g.Published {
				want := c.IDs
				if want == nil {
					want = c.IDsNoEOS
				}
				if got := tok.EncodeWithEOS(c.Text); !intsEqual(got, want) {
					t.Errorf("%q:\n got %v\nwant %v", c.Text, got, want)
				}
				n++
			}
			for _, c := range g.Computed {
				if got := tok.EncodeWithEOS(c.Text); !intsEqual(got, c.IDs) {
					t.Errorf("%q:\n got %v\nwant %v", c.Text, got, c.IDs)
				}
				n++
			}
			if n < 13 {
				t.Errorf("only %d cases checked", n)
			}
		})
	}
}

// The special ids and vocabulary size T5Tokenizer reports for this model:
// 32,000 pieces and 100 extra ids, <extra_id_0> = 32099.
func TestT5Specials(t *testing.T) {
	for name, tok := range t5Sources(t) {
		if tok.Pad() != 0 || tok.EOS() != 1 || tok.Unk() != 2 {
			t.Errorf("%s: pad %d eos %d unk %d, want 0 1 2", name, tok.Pad(), tok.EOS(), tok.Unk())
		}
		if tok.VocabSize() != 32100 {
			t.Errorf("%s: vocab size %d, want 32100", name, tok.VocabSize())
		}
		for content, id := range map[string]int{"<extra_id_0>": 32099, "<extra_id_99>": 32000, "</s>": 1, "▁photo": 1202} {
			if got, ok := tok.ID(content); !ok || got != id {
				t.Errorf("%s: ID(%q) = %d, %v; want %d", name, content, got, ok, id)
			}
		}
		// <extra_id_N> is split out of the text like the other added
		// tokens; its lstrip/rstrip leave the words around it intact.
		got := tok.Encode("a photo<extra_id_0>of a cat")
		want := []int32{3, 9, 1202, 32099, 13, 3, 9, 1712}
		if !intsEqual(got, want) {
			t.Errorf("%s: extra id split: got %v, want %v", name, got, want)
		}
	}
}

// PixArt-α's pipeline (clean_caption=False) lower()s and strip()s the
// prompt and pads to 120; the run records the ids and masks it used.
func TestT5PixArtRunIDs(t *testing.T) {
	tok, err := LoadT5(golden.Dir(t, "golden", "pixart_tiny_pipeline", "tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Call struct {
			Prompt         string `json:"prompt"`
			NegativePrompt string `json:"negative_prompt"`
		} `json:"call"`
	}
	for _, run := range []string{"pixart_dpm_baseline", "pixart_dpm_tgate_v2"} {
		if err := json.Unmarshal(readFile(t, golden.Dir(t, "golden", "runs", run+".json")), &meta); err != nil {
			t.Fatal(err)
		}
		path := golden.Dir(t, "golden", "runs", run+".safetensors")
		for _, c := range []struct{ prompt, ids, mask string }{
			{meta.Call.Prompt, "text.prompt_input_ids", "text.prompt_attention_mask"},
			{meta.Call.NegativePrompt, "text.negative_prompt_input_ids", "text.negative_prompt_attention_mask"},
		} {
			ids, mask, truncated := tok.EncodePadded(PixArtPreprocess(c.prompt, false), PixArtAlphaMaxLength)
			if truncated {
				t.Errorf("%q: unexpected truncation", c.prompt)
			}
			shape, wantIDs := readI64Tensor(t, path, c.ids)
			if len(shape) != 2 || shape[1] != 120 {
				t.Fatalf("%s %s: shape %v", run, c.ids, shape)
			}
			if !intsEqual(ids, wantIDs) {
				t.Errorf("%s %s %q:\n got %v\nwant %v", run, c.ids, c.prompt, ids, wantIDs)
			}
			_, wantMask := readI64Tensor(t, path, c.mask)
			if !intsEqual(mask, wantMask) {
				t.Errorf("%s %s:\n got %v\nwant %v", run, c.mask, mask, wantMask)
			}
		}
	}
}

// The T5 encoder golden's ids: the two prompts padded to 120.
func TestT5EncoderGoldenIDs(t *testing.T) {
	tok, err := LoadT5(golden.Dir(t, "golden", "pixart_tiny_pipeline", "tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	path := golden.Dir(t, "golden", "t5_encoder_tiny", "io.safetensors")
	shape, wantIDs := readI64Tensor(t, path, "prompts.in.input_ids")
	_, wantMask := readI64Tensor(t, path, "prompts.in.attention_mask")
	prompts := []string{"A small cactus with a happy face in the Sahara desert.", "a photo of an astronaut riding a horse on mars"}
	if len(shape) != 2 || shape[0] != 2 || shape[1] != 120 {
		t.Fatalf("input_ids shape %v, want [2 120]", shape)
	}
	for i, p := range prompts {
		ids, mask, _ := tok.EncodePadded(p, 120)
		if !intsEqual(ids, wantIDs[i*120:(i+1)*120]) || !intsEqual(mask, wantMask[i*120:(i+1)*120]) {
			t.Errorf("%q:\n got %v %v\nwant %v %v", p, ids, mask, wantIDs[i*120:(i+1)*120], wantMask[i*120:(i+1)*120])
		}
	}
}

// Truncation keeps maxLen−1 prompt ids and the EOS, as
// tokenizer(truncation=True, max_length=n) does. The expected ids are the
// golden case "a photo of a cat" repeated.
func TestT5Truncation(t *testing.T) {
	tok := t5Sources(t)["spiece.model"]
	unit := []int32{3, 9, 1202, 13, 3, 9, 1712}
	ids, mask, truncated := tok.EncodePadded(strings.Repeat("a photo of a cat ", 10), 20)
	if !truncated {
		t.Error("truncation not reported")
	}
	var want []int32
	for len(want) < 19 {
		want = append(want, unit...)
	}
	want = append(want[:19], 1)
	if !intsEqual(ids, want) {
		t.Errorf("got %v\nwant %v", ids, want)
	}
	for i, m := range mask {
		if m != 1 {
			t.Errorf("mask[%d] = %d, want 1", i, m)
		}
	}
	ids, mask, truncated = tok.EncodePadded("", 4)
	if truncated || !intsEqual(ids, []int32{1, 0, 0, 0}) || !intsEqual(mask, []int32{1, 0, 0, 0}) {
		t.Errorf("empty prompt: %v %v %v, want [1 0 0 0] [1 0 0 0] false", ids, mask, truncated)
	}
}

// Decode inverts Encode for text the normaliser leaves unchanged.
func TestT5Decode(t *testing.T) {
	tok := t5Sources(t)["spiece.model"]
	for _, s := range []string{"A photo of an astronaut riding a horse on mars.", "Pixel art, 16-bit, a castle at sunset"} {
		if got := tok.Decode(tok.EncodeWithEOS(s)); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}
}

// A folder with neither model file names both in its error.
func TestT5MissingModel(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, TokenizerConfigFile), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadT5(dir)
	if err == nil || !strings.Contains(err.Error(), SentencePieceFile) || !strings.Contains(err.Error(), TokenizerJSONFile) {
		t.Errorf("error %v, want one naming %s and %s", err, SentencePieceFile, TokenizerJSONFile)
	}
}
