package tokenizer

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

type goldenCase struct {
	Text string `json:"text"`
	IDs  []int  `json:"ids"`
}

func loadGoldenCases(t *testing.T) []goldenCase {
	t.Helper()
	var g struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(readFile(t, golden.Dir(t, "assets", "goldens", "clip_tokenizer_goldens.json")), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) < 15 {
		t.Fatalf("clip_tokenizer_goldens.json: %d cases, want at least 15", len(g.Cases))
	}
	return g.Cases
}

// withBOSEOS wraps prompt ids as the goldens list them.
func withBOSEOS(tok *CLIP, ids []int) []int {
	return append(append([]int{tok.BOS()}, ids...), tok.EOS())
}

func hasCJK(s string) bool {
	for _, r := range s {
		if r >= 0x4E00 && r <= 0x9FFF {
			return true
		}
	}
	return false
}

// spaceCJK puts a space on both sides of every CJK ideograph of s.
func spaceCJK(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x4E00 && r <= 0x9FFF {
			b.WriteString(" " + string(r) + " ")
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// The goldens were verified with openai/CLIP simple_tokenizer semantics
// (whitespace_clean + lower, no CJK splitting). Every case must match in
// CleanWhitespace mode. In CleanBasic mode (transformers without ftfy)
// every case without CJK ideographs must match too; with them, CleanBasic
// must equal the golden-verified CleanWhitespace result for the text with
// each ideograph surrounded by spaces, and differ from the golden ids.
func TestGoldenCases(t *testing.T) {
	tok := loadDir(t, "assets", "clip")
	if tok.Cleaning != CleanBasic {
		t.Fatalf("default cleaning %v, want basic", tok.Cleaning)
	}
	ws := loadDir(t, "assets", "clip")
	ws.Cleaning = CleanWhitespace
	cjk := 0
	for _, c := range loadGoldenCases(t) {
		if got := withBOSEOS(ws, ws.Encode(c.Text)); !slices.Equal(got, c.IDs) {
			t.Errorf("whitespace %q:\n got %v\nwant %v", c.Text, got, c.IDs)
		}
		basic := withBOSEOS(tok, tok.Encode(c.Text))
		if !hasCJK(c.Text) {
			if !slices.Equal(basic, c.IDs) {
				t.Errorf("basic %q:\n got %v\nwant %v", c.Text, basic, c.IDs)
			}
			continue
		}
		cjk++
		want := withBOSEOS(ws, ws.Encode(spaceCJK(c.Text)))
		if !slices.Equal(basic, want) {
			t.Errorf("basic %q:\n got %v\nwant %v (ideographs separated)", c.Text, basic, want)
		}
		if slices.Equal(basic, c.IDs) {
			t.Errorf("basic %q equals the unsplit golden ids; CJK ideographs were not separated", c.Text)
		}
	}
	if cjk != 2 {
		t.Errorf("%d golden cases with CJK ideographs, want 2", cjk)
	}
}

// The golden ids of SD_SEMANTICS.md §5, including the SD2 quirk: with pad
// token '!' every literal '!' is split out as id 0 before BPE.
func TestSpecTable(t *testing.T) {
	sd15 := clipVocabWith(t, "assets", "configs", "runwayml", "stable-diffusion-v1-5", "tokenizer")
	sd21 := clipVocabWith(t, "assets", "configs", "stabilityai", "stable-diffusion-2-1", "tokenizer")
	cases := []struct {
		text       string
		sd15, sd21 []int
	}{
		{"a photograph of an astronaut riding a horse", []int{49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407}, nil},
		{"a photo of a cat", []int{49406, 320, 1125, 539, 320, 2368, 49407}, nil},
		{"man wearing a blue shirt", []int{49406, 786, 3309, 320, 1746, 2523, 49407}, nil},
		{"test tokenization", []int{49406, 1628, 32634, 10847, 49407}, nil},
		{"A painting of a squirrel eating a burger", []int{49406, 320, 3086, 539, 320, 14004, 4371, 320, 6548, 49407}, nil},
		{"Hello, World! 123 it's 4K",
			[]int{49406, 3306, 267, 1002, 256, 272, 273, 274, 585, 568, 275, 330, 49407},
			[]int{49406, 3306, 267, 1002, 0, 272, 273, 274, 585, 568, 275, 330, 49407}},
		{"! !! !!!", nil, []int{49406, 0, 0, 0, 0, 0, 0, 49407}},
		{"", []int{49406, 49407}, []int{49406, 49407}},
	}
	for _, c := range cases {
		want21 := c.sd21
		if want21 == nil {
			want21 = c.sd15 // no '!': identical
		}
		if c.sd15 != nil {
			if got := withBOSEOS(sd15, sd15.Encode(c.text)); !slices.Equal(got, c.sd15) {
				t.Errorf("SD1.5 %q: got %v, want %v", c.text, got, c.sd15)
			}
		}
		if got := withBOSEOS(sd21, sd21.Encode(c.text)); !slices.Equal(got, want21) {
			t.Errorf("SD2.1 %q: got %v, want %v", c.text, got, want21)
		}
	}
}

// openai's bpe_simple_vocab_16e6.txt.gz must derive exactly the Hugging
// Face vocab.json and merges.txt.
func TestOpenAIBPEMatchesVocabJSON(t *testing.T) {
	hf := loadDir(t, "assets", "clip")
	oa, err := NewCLIP(CLIPFiles{OpenAIBPE: readFile(t, golden.Dir(t, "assets", "clip", OpenAIBPEFile))})
	if err != nil {
		t.Fatal(err)
	}
	if hf.VocabSize() != 49408 || oa.VocabSize() != 49408 {
		t.Fatalf("vocab sizes %d (vocab.json) and %d (openai), want 49408", hf.VocabSize(), oa.VocabSize())
	}
	for tok, id := range hf.vocab {
		if got, ok := oa.vocab[tok]; !ok || got != id {
			t.Fatalf("token %q: vocab.json id %d, openai id %d (present %v)", tok, id, got, ok)
		}
	}
	if len(hf.bpe.ranks) != 48894 || len(oa.bpe.ranks) != 48894 {
		t.Fatalf("merge counts %d and %d, want 48894", len(hf.bpe.ranks), len(oa.bpe.ranks))
	}
	for p, r := range hf.bpe.ranks {
		if oa.bpe.ranks[p] != r {
			t.Fatalf("merge %q %q: rank %d in merges.txt, %d in openai", p.a, p.b, r, oa.bpe.ranks[p])
		}
	}
	if oa.BOS() != 49406 || oa.EOS() != 49407 || oa.Pad() != 49407 {
		t.Errorf("openai specials bos %d eos %d pad %d, want 49406 49407 49407", oa.BOS(), oa.EOS(), oa.Pad())
	}
	texts := []string{"a photo of an astronaut riding a horse on mars, 8k, highly detailed!!",
		"Ünïcödé façade — “quotes” and emoji 🐱🚀", "don't 'll 're x²³ ½ ⅷ 東京タワー"}
	for _, c := range loadGoldenCases(t) {
		texts = append(texts, c.Text)
	}
	for _, s := range texts {
		a, b := hf.Encode(s), oa.Encode(s)
		if !slices.Equal(a, b) {
			t.Errorf("%q: vocab.json %v, openai %v", s, a, b)
		}
	}
}

// The text encoder module goldens store the padded ids of three prompts,
// once with pad 49407 (SD1.5 tokenizer) and once with pad 0 (SD2 rule).
func TestModuleGoldenIDs(t *testing.T) {
	prompts := []string{
		"a photo of an astronaut riding a horse on mars",
		"A painting of a squirrel eating a burger",
		"a high-quality photograph of a red fox in the snow, 4k, detailed",
	}
	sd15 := loadDir(t, "golden", "sd15_tiny_pipeline", "tokenizer")
	sd2 := clipVocabWith(t, "assets", "configs", "stabilityai", "stable-diffusion-2-1", "tokenizer")
	if sd15.Pad() != 49407 || sd2.Pad() != 0 {
		t.Fatalf("pads %d and %d, want 49407 and 0", sd15.Pad(), sd2.Pad())
	}
	for _, folder := range [][]string{{"golden", "sd15_tiny_pipeline", "text_encoder"}, {"golden", "clip_text_tiny_gelu"}} {
		path := golden.Dir(t, append(folder, "io.safetensors")...)
		for _, c := range []struct {
			name string
			tok  *CLIP
		}{{"sd15pad.in.input_ids", sd15}, {"sd2pad.in.input_ids", sd2}} {
			checkPaddedIDs(t, path, c.name, c.tok, prompts)
		}
	}

	sdxlPrompts := []string{"Astronaut in a jungle, cold color palette, muted colors, detailed, 8k", "", prompts[0]}
	tok1 := loadDir(t, "golden", "sdxl_tiny_pipeline", "tokenizer")
	tok2 := loadDir(t, "golden", "sdxl_tiny_pipeline", "tokenizer_2")
	if tok1.Pad() != 49407 || tok2.Pad() != 0 {
		t.Fatalf("SDXL pads %d and %d, want 49407 and 0", tok1.Pad(), tok2.Pad())
	}
	te2 := golden.Dir(t, "golden", "sdxl_tiny_pipeline", "text_encoder_2", "io.safetensors")
	checkPaddedIDs(t, te2, "pad0.in.input_ids", tok2, sdxlPrompts)
	checkPaddedIDs(t, te2, "pad49407.in.input_ids", tok1, sdxlPrompts)
	checkPaddedIDs(t, golden.Dir(t, "golden", "sdxl_tiny_pipeline", "text_encoder", "io.safetensors"), "pad49407.in.input_ids", tok1, sdxlPrompts)
}

func checkPaddedIDs(t *testing.T, path, name string, tok *CLIP, prompts []string) {
	t.Helper()
	shape, data := readI64Tensor(t, path, name)
	if len(shape) != 2 || shape[0] != len(prompts) || shape[1] != 77 {
		t.Fatalf("%s %s: shape %v, want [%d 77]", path, name, shape, len(prompts))
	}
	for i, p := range prompts {
		got, tr := tok.EncodeForModel(p)
		if tr != nil {
			t.Errorf("%q: unexpected truncation %+v", p, tr)
		}
		want := data[i*77 : (i+1)*77]
		if !intsEqual(got, want) {
			t.Errorf("%s %s[%d] %q:\n got %v\nwant %v", filepath.Base(filepath.Dir(path)), name, i, p, fmtIDs(got), fmtIDs(want))
		}
	}
}

// The SDXL pipeline runs store the ids each tokenizer fed its encoder.
func TestRunGoldenIDs(t *testing.T) {
	tok1 := loadDir(t, "golden", "sdxl_tiny_pipeline", "tokenizer")
	tok2 := loadDir(t, "golden", "sdxl_tiny_pipeline", "tokenizer_2")
	for _, run := range []string{"sdxl_euler_baseline", "sdxl_euler_tgate_v2"} {
		var meta struct {
			Call struct {
				Prompt string `json:"prompt"`
			} `json:"call"`
		}
		if err := json.Unmarshal(readFile(t, golden.Dir(t, "golden", "runs", run+".json")), &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Call.Prompt == "" {
			t.Fatalf("%s.json: no call.prompt", run)
		}
		path := golden.Dir(t, "golden", "runs", run+".safetensors")
		checkPaddedIDs(t, path, "text.prompt_input_ids", tok1, []string{meta.Call.Prompt})
		checkPaddedIDs(t, path, "text.prompt_input_ids_2", tok2, []string{meta.Call.Prompt})
	}
}

// Prompts longer than 75 tokens keep BOS, the first 75 tokens and EOS; the
// rest is reported. Expected ids come from the golden case
// "a photo of a cat" (320, 1125, 539, 320, 2368) repeated.
func TestTruncation(t *testing.T) {
	unit := []int{320, 1125, 539, 320, 2368}
	for _, dir := range []string{"sd15_tiny_pipeline/tokenizer", "sdxl_tiny_pipeline/tokenizer_2"} {
		tok := loadDir(t, "golden", dir)
		prompt := strings.TrimSpace(strings.Repeat("a photo of a cat ", 20)) // 100 tokens
		ids, tr := tok.EncodeForModel(prompt)
		if len(ids) != 77 {
			t.Fatalf("%s: %d ids, want 77", dir, len(ids))
		}
		want := []int{49406}
		for len(want) < 76 {
			want = append(want, unit...)
		}
		want = append(want[:76], 49407)
		if !intsEqual(ids, want) {
			t.Errorf("%s: got %v\nwant %v", dir, ids, want)
		}
		if tr == nil {
			t.Fatalf("%s: truncation not reported", dir)
		}
		if len(tr.DroppedIDs) != 25 || tr.MaxLength != 77 {
			t.Errorf("%s: dropped %d ids (max %d), want 25 (77)", dir, len(tr.DroppedIDs), tr.MaxLength)
		}
		// Tokens 75..99 are the last 25: unit offset 0 (75 = 15*5).
		wantText := strings.TrimSpace(strings.Repeat("a photo of a cat ", 5))
		if tr.DroppedText != wantText {
			t.Errorf("%s: dropped text %q, want %q", dir, tr.DroppedText, wantText)
		}
		if w := tr.Warning(); !strings.Contains(w, "truncated because CLIP can only handle sequences up to 77 tokens") || !strings.Contains(w, wantText) {
			t.Errorf("%s: warning %q", dir, w)
		}
	}

	// Exactly 75 tokens fit with no truncation; 76 drop one.
	tok := loadDir(t, "golden", "sd15_tiny_pipeline", "tokenizer")
	p75 := strings.TrimSpace(strings.Repeat("a photo of a cat ", 15))
	if ids, tr := tok.EncodeForModel(p75); tr != nil || ids[76] != 49407 || ids[75] != 2368 {
		t.Errorf("75 tokens: truncation %+v, tail %v", tr, ids[74:])
	}
	if ids, tr := tok.EncodeForModel(p75 + " a"); tr == nil || len(tr.DroppedIDs) != 1 || tr.DroppedIDs[0] != 320 || tr.DroppedText != "a" || ids[76] != 49407 {
		t.Errorf("76 tokens: truncation %+v, tail %v", tr, ids[74:])
	}
}

// Padding follows the resolved pad token; everything up to EOS does not
// depend on it.
func TestPadding(t *testing.T) {
	sd15 := loadDir(t, "golden", "sd15_tiny_pipeline", "tokenizer")
	sd2 := loadDir(t, "golden", "sdxl_tiny_pipeline", "tokenizer_2")
	a, _ := sd15.EncodeForModel("a photo of a cat")
	b, _ := sd2.EncodeForModel("a photo of a cat")
	want := []int{49406, 320, 1125, 539, 320, 2368, 49407}
	if !intsEqual(a[:7], want) || !intsEqual(b[:7], want) {
		t.Fatalf("heads %v / %v, want %v", a[:7], b[:7], want)
	}
	for i := 7; i < 77; i++ {
		if a[i] != 49407 || b[i] != 0 {
			t.Fatalf("position %d: pads %d / %d, want 49407 / 0", i, a[i], b[i])
		}
	}
	empty, _ := sd15.EncodeForModel("")
	if empty[0] != 49406 || empty[1] != 49407 || empty[76] != 49407 {
		t.Errorf("empty prompt: %v", empty)
	}
}
