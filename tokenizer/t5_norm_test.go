package tokenizer

import (
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// The nmt_nfkc charsmap of spiece.model composes and maps compatibility
// characters as Unicode NFKC does (x/text's norm.NFKC is the independent
// reference here), and the whitespace rules of sentencepiece's Normalizer
// apply around it: '▁' dummy prefix, runs of spaces (tabs and newlines
// included) collapsed, ends trimmed.
func TestT5Normalize(t *testing.T) {
	tok := t5Sources(t)["spiece.model"]
	if tok.charsMap == nil {
		t.Fatal("spiece.model has no precompiled_charsmap")
	}
	for _, s := range []string{"ＡＢＣ ｄｅｆ", "ﬁne ﬂower", "① ㈱ ㎏", "cafe\u0301", "Å Ω K", "x² y₃", "½ cup"} {
		want := spaceSymbol + strings.ReplaceAll(norm.NFKC.String(s), " ", spaceSymbol)
		if got := tok.normalize(s); got != want {
			t.Errorf("normalize(%q) = %q, want %q", s, got, want)
		}
	}
	for in, want := range map[string]string{
		"  a \t b\n\nc  ": "▁a▁b▁c",
		"\u3000x\u00a0y":  "▁x▁y",
		"":                "",
		"   ":             "",
	} {
		if got := tok.normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
