package tokenizer

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

// The pad id of every real config folder, as diffusers' pipelines get it.
func TestPadResolution(t *testing.T) {
	cases := []struct {
		dir []string
		pad int
	}{
		{[]string{"assets", "configs", "runwayml", "stable-diffusion-v1-5", "tokenizer"}, 49407},
		// legacy folder: special_tokens_map.json's "!" beats tokenizer_config.json's <|endoftext|>
		{[]string{"assets", "configs", "stabilityai", "stable-diffusion-2-1", "tokenizer"}, 0},
		{[]string{"assets", "configs", "stabilityai", "stable-diffusion-xl-base-1.0", "tokenizer"}, 49407},
		{[]string{"assets", "configs", "stabilityai", "stable-diffusion-xl-base-1.0", "tokenizer_2"}, 0},
		// added_tokens_decoder folders (SD3): the config's own tokens
		{[]string{"assets", "configs", "stabilityai", "stable-diffusion-3-medium-diffusers", "tokenizer"}, 49407},
		{[]string{"assets", "configs", "stabilityai", "stable-diffusion-3-medium-diffusers", "tokenizer_2"}, 0},
	}
	for _, c := range cases {
		tok := clipVocabWith(t, c.dir...)
		if tok.Pad() != c.pad || tok.BOS() != 49406 || tok.EOS() != 49407 || tok.MaxLength() != 77 {
			t.Errorf("%s: pad %d bos %d eos %d max %d, want pad %d, 49406, 49407, 77",
				filepath.Join(c.dir...), tok.Pad(), tok.BOS(), tok.EOS(), tok.MaxLength(), c.pad)
		}
	}
}

func newWithConfigs(t *testing.T, config, specialMap string) (*CLIP, error) {
	t.Helper()
	f := CLIPFiles{
		Vocab:  readFile(t, golden.Dir(t, "assets", "clip", VocabFile)),
		Merges: readFile(t, golden.Dir(t, "assets", "clip", MergesFile)),
		Name:   "test",
	}
	if config != "" {
		f.TokenizerConfig = []byte(config)
	}
	if specialMap != "" {
		f.SpecialTokensMap = []byte(specialMap)
	}
	return NewCLIP(f)
}

func TestConfigPrecedence(t *testing.T) {
	const atd = `"added_tokens_decoder": {
		"49406": {"content": "<|startoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false, "special": true},
		"49407": {"content": "<|endoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false, "special": true}}`
	cases := []struct {
		name, config, specialMap string
		pad, maxLength           int
		bangIsAdded              bool
	}{
		{"no configs", "", "", 49407, 77, false},
		{"legacy: map wins", `{"pad_token": "<|endoftext|>", "model_max_length": 77}`, `{"pad_token": "!"}`, 0, 77, true},
		{"decoder: map ignored", `{"pad_token": "<|endoftext|>", "model_max_length": 77, ` + atd + `}`, `{"pad_token": "!"}`, 49407, 77, false},
		{"AddedToken object", `{"pad_token": {"__type": "AddedToken", "content": "!", "lstrip": false}}`, "", 0, 77, true},
		{"very large model_max_length", `{"model_max_length": 1000000000000000019884624838656}`, "", 49407, 77, false},
		{"shorter model_max_length", `{"model_max_length": 16}`, "", 49407, 16, false},
		{"pad not in vocab gets the next id", `{"pad_token": "<pad>"}`, "", 49408, 77, false},
	}
	for _, c := range cases {
		tok, err := newWithConfigs(t, c.config, c.specialMap)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if tok.Pad() != c.pad || tok.MaxLength() != c.maxLength {
			t.Errorf("%s: pad %d max %d, want %d %d", c.name, tok.Pad(), tok.MaxLength(), c.pad, c.maxLength)
		}
		ids := tok.Encode("hi!")
		if got := ids[len(ids)-1] == 0; got != c.bangIsAdded {
			t.Errorf("%s: '!' encoded as %v", c.name, ids)
		}
		out, tr := tok.EncodeForModel(strings.Repeat("cat ", 30))
		eos := min(31, c.maxLength-1) // 30 tokens after BOS, or truncated
		if len(out) != c.maxLength || out[eos] != 49407 || int(out[c.maxLength-1]) != map[bool]int{true: 49407, false: c.pad}[eos == c.maxLength-1] || (tr == nil) != (c.maxLength > 32) {
			t.Errorf("%s: EncodeForModel gave %v, truncation %v", c.name, out, tr)
		}
	}
}

// lstrip/rstrip flags of added tokens strip the whitespace next to them.
func TestAddedTokenStripFlags(t *testing.T) {
	plain, err := newWithConfigs(t, "", "")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := newWithConfigs(t, `{"additional_special_tokens": [{"content": "zzz</w>", "lstrip": true, "rstrip": true}]}`, "")
	if err != nil {
		t.Fatal(err)
	}
	id, ok := plain.ID("zzz</w>")
	if !ok {
		t.Fatal("zzz</w> not in the vocabulary")
	}
	// With stripping, the pieces are "a" and "b" whatever the spaces.
	want := slices.Concat(plain.Encode("a"), []int{id}, plain.Encode("b"))
	for _, s := range []string{"azzz</w>b", "a   zzz</w>   b"} {
		if got := tok.Encode(s); !slices.Equal(got, want) {
			t.Errorf("%q: got %v, want %v", s, got, want)
		}
	}
}

func gzipBytes(t *testing.T, s string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBadInput(t *testing.T) {
	vocab := []byte(`{"a": 0, "b</w>": 1, "<|startoftext|>": 2, "<|endoftext|>": 3, "ab</w>": 4}`)
	merges := []byte("#version: 0.2\na b</w>\n")
	cases := []struct {
		name string
		f    CLIPFiles
		want string
	}{
		{"vocab not JSON", CLIPFiles{Vocab: []byte(`{"a": `), Merges: merges}, "vocab.json"},
		{"vocab empty", CLIPFiles{Vocab: []byte(`{}`), Merges: merges}, "vocab.json is empty"},
		{"negative id", CLIPFiles{Vocab: []byte(`{"a": -1}`), Merges: merges}, `token "a" has id -1`},
		{"shared id", CLIPFiles{Vocab: []byte(`{"a": 0, "b": 0}`), Merges: merges}, "share id 0"},
		{"merge line", CLIPFiles{Vocab: vocab, Merges: []byte("#version: 0.2\na b\nc\n")}, "merges.txt line 3"},
		{"no merges", CLIPFiles{Vocab: vocab, Merges: []byte("#version: 0.2\n")}, "holds no merges"},
		{"only vocab", CLIPFiles{Vocab: vocab}, "need both"},
		{"both kinds", CLIPFiles{Vocab: vocab, Merges: merges, OpenAIBPE: []byte{1}}, "need both"},
		{"bad gzip", CLIPFiles{OpenAIBPE: []byte("not gzip")}, OpenAIBPEFile},
		{"bad config", CLIPFiles{Vocab: vocab, Merges: merges, TokenizerConfig: []byte(`{"pad_token": 3}`)}, "pad_token"},
		{"token without content", CLIPFiles{Vocab: vocab, Merges: merges, TokenizerConfig: []byte(`{"pad_token": {"lstrip": true}}`)}, `no "content"`},
		{"null pad", CLIPFiles{Vocab: vocab, Merges: merges, TokenizerConfig: []byte(`{"pad_token": null}`)}, "no pad_token"},
		{"short model_max_length", CLIPFiles{Vocab: vocab, Merges: merges, TokenizerConfig: []byte(`{"model_max_length": 1}`)}, "model_max_length 1"},
		{"decoder key", CLIPFiles{Vocab: vocab, Merges: merges, TokenizerConfig: []byte(`{"added_tokens_decoder": {"x": {"content": "a"}}}`)}, `key "x"`},
		{"map not JSON", CLIPFiles{Vocab: vocab, Merges: merges, SpecialTokensMap: []byte(`[`)}, "special_tokens_map.json"},
	}
	for _, c := range cases {
		c.f.Name = "folder"
		_, err := NewCLIP(c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	// A tiny well-formed vocabulary works, from files and from a gzip.
	tok, err := NewCLIP(CLIPFiles{Vocab: vocab, Merges: merges})
	if err != nil {
		t.Fatal(err)
	}
	// "ab" -> a, b</w> -> merge (a, b</w>) -> ab</w> (4); "ba" -> b, a</w>:
	// no merge, b is unknown and a</w> too -> unk (<|endoftext|>, 3) twice.
	if got := tok.Encode("ab ba"); !slices.Equal(got, []int{4, 3, 3}) {
		t.Errorf("tiny vocab: \"ab ba\" -> %v, want [4 3 3]", got)
	}
	if _, err := NewCLIP(CLIPFiles{OpenAIBPE: gzipBytes(t, "#version\n")}); err == nil || !strings.Contains(err.Error(), "holds no merges") {
		t.Errorf("empty gzip merges: %v", err)
	}

	if _, err := LoadCLIP(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("missing folder: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, VocabFile), vocab, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCLIP(dir); err == nil || !strings.Contains(err.Error(), "need both") {
		t.Errorf("folder without merges.txt: %v", err)
	}
}
