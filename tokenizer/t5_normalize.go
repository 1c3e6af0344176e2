package tokenizer

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// spaceSymbol is SentencePiece's whitespace mark U+2581 '▁'.
const spaceSymbol = "\u2581"

// charsMap is a SentencePiece precompiled_charsmap: a darts-clone
// double-array trie over UTF-8 byte strings whose values are offsets of
// NUL-terminated replacement strings. The nmt_nfkc map of T5's
// spiece.model holds NFKC composition and compatibility mappings plus the
// NMT rules (control characters removed, the Unicode spaces mapped to ' ').
type charsMap struct {
	units      []uint32
	normalized []byte
}

// parseCharsMap splits a precompiled_charsmap blob (sentencepiece
// normalizer.cc DecodePrecompiledCharsMap): a little-endian uint32 trie
// size in bytes, the trie units, then the replacement strings.
func parseCharsMap(blob []byte) (*charsMap, error) {
	if len(blob) == 0 {
		return nil, nil
	}
	if len(blob) < 4 {
		return nil, fmt.Errorf("precompiled_charsmap of %d bytes is too short", len(blob))
	}
	size := binary.LittleEndian.Uint32(blob)
	if size%4 != 0 || uint64(size) > uint64(len(blob)-4) {
		return nil, fmt.Errorf("precompiled_charsmap trie size %d does not fit the %d-byte blob", size, len(blob))
	}
	units := make([]uint32, size/4)
	for i := range units {
		units[i] = binary.LittleEndian.Uint32(blob[4+4*i:])
	}
	if len(units) == 0 {
		return nil, fmt.Errorf("precompiled_charsmap has an empty trie")
	}
	return &charsMap{units: units, normalized: blob[4+size:]}, nil
}

// Darts-clone DoubleArrayUnit accessors.
func dartsHasLeaf(u uint32) bool  { return (u>>8)&1 == 1 }
func dartsValue(u uint32) uint32  { return u & (1<<31 - 1) }
func dartsLabel(u uint32) uint32  { return u & (1<<31 | 0xFF) }
func dartsOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }

// longestMatch returns the replacement of the longest key that s starts
// with and that key's length in bytes (0 when none matches): darts-clone
// commonPrefixSearch, keeping the longest result as
// Normalizer::NormalizePrefix does.
func (m *charsMap) longestMatch(s string) (string, int) {
	pos := dartsOffset(m.units[0])
	bestLen, bestVal := 0, uint32(0)
	for i := 0; i < len(s); i++ {
		c := uint32(s[i])
		pos ^= c
		if int(pos) >= len(m.units) {
			break
		}
		u := m.units[pos]
		if dartsLabel(u) != c {
			break
		}
		pos ^= dartsOffset(u)
		if dartsHasLeaf(u) && int(pos) < len(m.units) {
			bestLen, bestVal = i+1, dartsValue(m.units[pos])
		}
	}
	if bestLen == 0 || int(bestVal) > len(m.normalized) {
		return "", 0
	}
	rest := m.normalized[bestVal:]
	if end := indexByte(rest, 0); end >= 0 {
		rest = rest[:end]
	}
	return string(rest), bestLen
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// normalizePrefix is Normalizer::NormalizePrefix: the normalized form of
// the start of s and how many bytes of s it consumed. A user-defined
// piece at the start passes through unchanged; otherwise the longest
// charsmap key is replaced; otherwise one UTF-8 character is copied (an
// invalid byte becomes U+FFFD).
func (t *T5) normalizePrefix(s string) (string, int) {
	if n := t.userDefinedPrefix(s); n > 0 {
		return s[:n], n
	}
	if t.charsMap != nil {
		if rep, n := t.charsMap.longestMatch(s); n > 0 {
			return rep, n
		}
	}
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n <= 1 {
		return "\uFFFD", 1
	}
	return s[:n], n
}

// userDefinedPrefix returns the byte length of the longest user-defined
// piece s starts with, or 0.
func (t *T5) userDefinedPrefix(s string) int {
	best := 0
	for _, p := range t.userDefined {
		if len(p) > best && strings.HasPrefix(s, p) {
			best = len(p)
		}
	}
	return best
}

// normalize is Normalizer::Normalize of sentencepiece (normalizer.cc) for
// whitespace as a prefix: each prefix of the text is normalized
// (normalizePrefix); with remove_extra_whitespaces, leading spaces are
// dropped, runs of spaces collapse to one and trailing ones are removed;
// with add_dummy_prefix a space is put in front of non-empty text; with
// escape_whitespaces every space becomes '▁'.
func (t *T5) normalize(text string) string {
	n := &t.normSpec
	if n.removeExtraSpace {
		for text != "" {
			rep, k := t.normalizePrefix(text)
			if rep != " " {
				break
			}
			text = text[k:]
		}
	}
	if text == "" {
		return ""
	}
	space := " "
	if n.escapeSpaces {
		space = spaceSymbol
	}
	var b strings.Builder
	b.Grow(len(text) + 16)
	if n.addDummyPrefix {
		b.WriteString(space)
	}
	prevSpace := n.removeExtraSpace
	for text != "" {
		rep, k := t.normalizePrefix(text)
		text = text[k:]
		for prevSpace && strings.HasPrefix(rep, " ") {
			rep = rep[1:]
		}
		if rep == "" {
			continue
		}
		if n.escapeSpaces {
			b.WriteString(strings.ReplaceAll(rep, " ", spaceSymbol))
		} else {
			b.WriteString(rep)
		}
		prevSpace = strings.HasSuffix(rep, " ")
	}
	out := b.String()
	if n.removeExtraSpace {
		for strings.HasSuffix(out, space) {
			out = out[:len(out)-len(space)]
		}
	}
	return out
}
