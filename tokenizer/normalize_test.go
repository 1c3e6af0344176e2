package tokenizer

import (
	"slices"
	"testing"
)

// Expected strings are CPython 3.11 results (str.lower, unicodedata) for
// the same steps, written out by hand.
func TestPyLower(t *testing.T) {
	cases := []struct{ in, want string }{
		{"A PHOTO Of", "a photo of"},
		{"İ", "i\u0307"},         // full lowercase mapping (SpecialCasing)
		{"ΟΔΟΣ", "οδος"},         // final sigma at the end of a word
		{"ΣΑ", "σα"},             // not final: nothing cased before it
		{"Σ", "σ"},               // alone
		{"A.Σ", "a.ς"},           // '.' (MidNumLet) is case-ignorable
		{"AΣ.B", "aσ.b"},         // a cased letter follows the ignorables
		{"AΣ\u0301", "aς\u0301"}, // combining mark is case-ignorable
		{"ǅ", "ǆ"},               // titlecase letter
		{"ẞ", "ß"},
		{"\u212a", "k"}, // Kelvin sign
		{"ÀÉÎ", "àéî"},
	}
	for _, c := range cases {
		if got := pyLower(c.in); got != c.want {
			t.Errorf("pyLower(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestBasicClean(t *testing.T) {
	cases := []struct{ in, want string }{
		{"  A PHOTO of  a Cat!  ", "a photo of a cat!"},
		{"a\u00a0b\tc\u2028d\ne\u3000f", "a b c d e f"}, // Zs and \t\n become spaces; U+2028 splits (str.split)
		{"x\x00y\x01z\ufffd\u200bw\x0bv", "xyzwv"},      // NUL, U+FFFD, Cc and Cf are dropped
		{"你好ab世界", "你 好 ab 世 界"},                        // CJK ideographs separated
		{"한국어 ひらがな", "한국어 ひらがな"},                        // Hangul and kana are not
		{"Cafe\u0301 \u212b", "café å"},                 // NFC (U+212B ANGSTROM SIGN -> Å), then lower
		{"\uf900", "豈"},                                 // compatibility ideograph: spaced, then NFC
		{"ΟΔΟΣ ΟΔΟΣ.", "οδος οδος."},                    // lower per whitespace token
		{"", ""},
	}
	for _, c := range cases {
		if got := basicClean(c.in); got != c.want {
			t.Errorf("basicClean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestWhitespaceClean(t *testing.T) {
	cases := []struct{ in, want string }{
		{"  A PHOTO of  a Cat!  ", "a photo of a cat!"},
		{"a\u00a0b\tc\u2028d\u3000\u3000e", "a b c d e"},
		{"\x1c A \u3000 B\x1c", "a b"}, // strip() also removes U+001C..U+001F
		{"a\x1cb", "a\x1cb"},           // which \s does not match
		{"你好ab", "你好ab"},
		{"Cafe\u0301", "café"},
	}
	for _, c := range cases {
		if got := whitespaceClean(c.in); got != c.want {
			t.Errorf("whitespaceClean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Added tokens are matched in the raw text and the pieces around them are
// tokenized separately; '!' is an added token only when it is the pad token.
func TestAddedTokensInText(t *testing.T) {
	sd15 := loadDir(t, "golden", "sd15_tiny_pipeline", "tokenizer")
	sd2 := loadDir(t, "golden", "sdxl_tiny_pipeline", "tokenizer_2")
	cat := func(parts ...[]int) []int { return slices.Concat(parts...) }
	cases := []struct {
		tok  *CLIP
		text string
		want []int
	}{
		{sd15, "a<|endoftext|>b", cat(sd15.Encode("a"), []int{49407}, sd15.Encode("b"))},
		// Without the split the regex would read "(<|" as one punctuation run.
		{sd15, "(<|endoftext|>", cat(sd15.Encode("("), []int{49407})},
		{sd15, "<|startoftext|>x", cat([]int{49406}, sd15.Encode("x"))},
		// Not an added token (case differs): lowercased, then the regex's
		// own <|endoftext|> alternative and the BPE cache give 49407.
		{sd15, "<|ENDOFTEXT|>", []int{49407}},
		{sd15, "wow!", []int{2781, 256}}, // vocab.json: "wow</w>" 2781, "!</w>" 256
		{sd2, "wow!", []int{2781, 0}},    // '!' split out as the pad token
		{sd2, "a!!b", cat(sd2.Encode("a"), []int{0, 0}, sd2.Encode("b"))},
		{sd15, "a\u0345b", sd15.Encode("a b")}, // U+0345 matches no regex alternative
	}
	for _, c := range cases {
		if got := c.tok.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("%q: got %v, want %v", c.text, got, c.want)
		}
	}
	if id, _ := sd15.ID("wow</w>"); id != 2781 {
		t.Errorf("vocab id of wow</w> = %d, want 2781", id)
	}
	// NFC: decomposed and precomposed spellings give the same ids.
	for _, tok := range []*CLIP{sd15, sd2} {
		for _, mode := range []Cleaning{CleanBasic, CleanWhitespace} {
			tok.Cleaning = mode
			if a, b := tok.Encode("cafe\u0301 u\u0308ber"), tok.Encode("café über"); !slices.Equal(a, b) {
				t.Errorf("%v: decomposed %v, precomposed %v", mode, a, b)
			}
		}
		tok.Cleaning = CleanBasic
	}
}

func TestDecode(t *testing.T) {
	tok := loadDir(t, "golden", "sd15_tiny_pipeline", "tokenizer")
	cases := []struct{ in, want string }{
		// Symbols a</w> photo</w> ... ,</w> 4</w> k</w> !</w>, then
		// clean_up_tokenization removes the spaces before ',' and '!'.
		{"A photo of a cat, 4K!", "a photo of a cat, 4 k!"},
		{"it's", "it's"},
		{"café 你好", "café 你 好"},
	}
	for _, c := range cases {
		if got := tok.Decode(tok.Encode(c.in)); got != c.want {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := tok.Decode([]int{49406, 320, 49407}); got != "<|startoftext|>a <|endoftext|>" {
		t.Errorf("Decode with specials = %q", got)
	}
}
