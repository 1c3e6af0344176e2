package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Cleaning selects how text is normalised before the pre-tokenization
// regex. transformers' slow CLIPTokenizer picks one of two paths depending
// on whether the Python package ftfy is installed.
type Cleaning int

const (
	// CleanBasic is transformers' CLIPTokenizer without ftfy (the default,
	// and how the reference goldens were made):
	// BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize,
	// joined with spaces. It drops NUL, U+FFFD and control characters, maps
	// whitespace to spaces, surrounds every CJK ideograph with spaces,
	// NFC-normalises, splits on whitespace and lowercases each piece.
	CleanBasic Cleaning = iota
	// CleanWhitespace is NFC, whitespace_clean (runs of Unicode whitespace
	// become one space, then strip) and lowercasing: openai/CLIP
	// simple_tokenizer without ftfy and html.unescape, transformers'
	// CLIPTokenizer with ftfy for text ftfy leaves unchanged, and
	// CLIPTokenizerFast's normaliser. It differs from CleanBasic mainly on
	// CJK ideographs, which it does not separate.
	CleanWhitespace
)

// String names the cleaning mode.
func (c Cleaning) String() string {
	switch c {
	case CleanBasic:
		return "basic"
	case CleanWhitespace:
		return "whitespace"
	}
	return "unknown"
}

// clean normalises one piece of text (between added tokens) according to
// the mode. The result contains no whitespace other than single ASCII
// spaces, so the pre-tokenization regex sees the same separators as the
// reference's Unicode-aware \s.
func (c Cleaning) clean(text string) string {
	if c == CleanWhitespace {
		return whitespaceClean(text)
	}
	return basicClean(text)
}

// basicClean follows transformers' BasicTokenizer.tokenize with
// do_lower_case=True, never_split empty, tokenize_chinese_chars=True,
// strip_accents=False and do_split_on_punc=False
// (models/clip/tokenization_clip.py), then " ".join of its tokens
// (CLIPTokenizer._tokenize when ftfy is absent):
//
//  1. _clean_text: drop code points 0 and U+FFFD and every character whose
//     category starts with "C" except \t \n \r; map " ", \t, \n, \r and
//     category Zs to a space;
//  2. _tokenize_chinese_chars: put a space on both sides of every CJK
//     ideograph (isChineseChar);
//  3. unicodedata.normalize("NFC");
//  4. whitespace_tokenize (str.split()), lowercase each token with
//     str.lower(); join with single spaces.
func basicClean(text string) string {
	var b strings.Builder
	b.Grow(len(text) + 8)
	for _, r := range text {
		switch {
		case r == 0 || r == utf8.RuneError || isControl(r):
			// dropped (invalid UTF-8 decodes to U+FFFD and is dropped too)
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || unicode.Is(unicode.Zs, r):
			b.WriteByte(' ')
		case isChineseChar(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	s := norm.NFC.String(b.String())
	words := strings.FieldsFunc(s, isPySpace)
	for i, w := range words {
		words[i] = pyLower(w)
	}
	return strings.Join(words, " ")
}

// whitespaceClean computes whitespace_clean(NFC(text)).lower() with
// whitespace_clean = re.sub(r"\s+", " ", text).strip() as in
// tokenization_clip.py: the regex module's \s is the Unicode White_Space
// property (unicode.IsSpace), strip() removes Python whitespace.
func whitespaceClean(text string) string {
	s := norm.NFC.String(strings.ToValidUTF8(text, "\uFFFD"))
	var b strings.Builder
	b.Grow(len(s))
	inSpace := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			if !inSpace {
				b.WriteByte(' ')
			}
			inSpace = true
			continue
		}
		inSpace = false
		b.WriteRune(r)
	}
	return pyLower(strings.TrimFunc(b.String(), isPySpace))
}

// isControl is transformers' tokenization_utils._is_control: \t, \n and
// \r are not control characters; everything whose Unicode category starts
// with "C" (Cc, Cf, Cs, Co, Cn) is.
func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.Is(unicode.C, r)
}

// isPySpace reports whether Python's str.isspace() holds for r (the
// separators of str.split() and str.strip()): bidirectional class WS, B or
// S, or category Zs. This is unicode.IsSpace plus U+001C..U+001F.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1C && r <= 0x1F)
}

// isChineseChar is BasicTokenizer._is_chinese_char: the CJK Unified
// Ideographs blocks and extensions A-E, and the CJK Compatibility
// Ideographs (with the supplement). Hangul, Hiragana and Katakana are not
// included.
func isChineseChar(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) ||
		(r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) ||
		(r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) ||
		(r >= 0x2F800 && r <= 0x2FA1F)
}

// pyLower is Python's str.lower(): the simple lowercase mapping of every
// character (unicode.ToLower), except U+0130 'İ', whose full mapping is
// "i̇" (U+0069 U+0307, SpecialCasing.txt), and U+03A3 'Σ', which becomes
// final sigma 'ς' in the Final_Sigma context and 'σ' elsewhere
// (CPython unicodeobject.c handle_capital_sigma).
func pyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	runes := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range runes {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3A3:
			if finalSigma(runes, i) {
				b.WriteRune(0x3C2)
			} else {
				b.WriteRune(0x3C3)
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma reports whether the capital sigma at runes[i] is in the
// Final_Sigma context of the Unicode standard (Table 3-17):
// \p{cased} \p{case-ignorable}* Σ !( \p{case-ignorable}* \p{cased} ),
// as CPython's handle_capital_sigma tests it.
func finalSigma(runes []rune, i int) bool {
	j := i - 1
	for j >= 0 && isCaseIgnorable(runes[j]) {
		j--
	}
	if j < 0 || !isCased(runes[j]) {
		return false
	}
	j = i + 1
	for j < len(runes) && isCaseIgnorable(runes[j]) {
		j++
	}
	return j == len(runes) || !isCased(runes[j])
}

// isCased is the Unicode Cased property: Lowercase, Uppercase or
// Titlecase_Letter (Ll + Other_Lowercase, Lu + Other_Uppercase, Lt).
func isCased(r rune) bool {
	return unicode.In(r, unicode.Ll, unicode.Lu, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// isCaseIgnorable is the Unicode Case_Ignorable property: categories Mn,
// Me, Cf, Lm and Sk, plus Word_Break MidLetter, MidNumLet and Single_Quote.
func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', // Single_Quote
		'.', 0x2018, 0x2019, 0x2024, 0xFE52, 0xFF07, 0xFF0E, // MidNumLet
		':', 0x00B7, 0x0387, 0x055F, 0x05F4, 0x2027, 0xFE13, 0xFE55, 0xFF1A: // MidLetter
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
