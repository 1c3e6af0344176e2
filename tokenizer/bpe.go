package tokenizer

import (
	"fmt"
	"strings"
	"sync"
)

// clipMergeLimit is the number of merges the CLIP tokenizers read:
// transformers' tokenization_clip.py and openai/CLIP simple_tokenizer.py
// both take lines [1 : 49152-256-2+1] of the merges file, i.e. skip the
// "#version" header and keep 48,894 merges.
const clipMergeLimit = 49152 - 256 - 2

// endOfWord is appended to the last symbol of every word before merging.
const endOfWord = "</w>"

// bytesToUnicode returns the byte-to-character table of byte-level BPE
// (transformers tokenization_clip.py::bytes_to_unicode, identical in
// openai/CLIP simple_tokenizer.py and GPT-2). Bytes 33..126, 161..172 and
// 174..255 map to the code point of the same value; every other byte b,
// in increasing order, maps to 256+n with n = 0, 1, 2, ... (space 0x20
// becomes U+0120 'Ġ').
func bytesToUnicode() [256]rune {
	var t [256]rune
	n := 0
	for b := 0; b < 256; b++ {
		if isPrintableByte(b) {
			t[b] = rune(b)
		} else {
			t[b] = rune(256 + n)
			n++
		}
	}
	return t
}

func isPrintableByte(b int) bool {
	return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
}

// byteOrder returns the bytes in the order of bytes_to_unicode's keys:
// first the printable bytes (33..126, 161..172, 174..255), then the rest
// in increasing order. openai/CLIP builds the first 256 vocabulary
// entries in this order.
func byteOrder() []int {
	order := make([]int, 0, 256)
	for b := 0; b < 256; b++ {
		if isPrintableByte(b) {
			order = append(order, b)
		}
	}
	for b := 0; b < 256; b++ {
		if !isPrintableByte(b) {
			order = append(order, b)
		}
	}
	return order
}

// symbolPair is an adjacent pair of BPE symbols, the key of the merge ranks.
type symbolPair struct{ a, b string }

// parseMerges reads merge rules in the merges.txt format: the first line
// (the "#version" header) is skipped, then each line holds two symbols
// separated by whitespace; a line's rank is its order. At most limit merges
// are read, as transformers' CLIPTokenizer slices the file
// (read().strip().split("\n")[1:limit+1]). name is used in errors.
func parseMerges(text, name string, limit int) ([]symbolPair, error) {
	text = strings.TrimSpace(text)
	lines := strings.Split(text, "\n")
	if len(lines) <= 1 {
		return nil, fmt.Errorf("tokenizer: %s holds no merges", name)
	}
	lines = lines[1:]
	if len(lines) > limit {
		lines = lines[:limit]
	}
	merges := make([]symbolPair, len(lines))
	for i, line := range lines {
		a, b, ok := splitMerge(line)
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s line %d: want two symbols separated by a space, got %q", name, i+2, line)
		}
		merges[i] = symbolPair{a, b}
	}
	return merges, nil
}

// splitMerge splits a merges line into exactly two whitespace-separated
// fields (Python's str.split(); byte-level symbols never contain
// whitespace).
func splitMerge(line string) (a, b string, ok bool) {
	f := strings.Fields(line)
	if len(f) != 2 {
		return "", "", false
	}
	return f[0], f[1], true
}

// bpeModel applies byte-level BPE merges to single words, with a cache of
// results as transformers' CLIPTokenizer.bpe keeps.
type bpeModel struct {
	ranks map[symbolPair]int

	mu    sync.Mutex
	cache map[string][]string
}

// maxCacheEntries bounds the word cache; when it is full it is emptied.
const maxCacheEntries = 1 << 16

func newBPEModel(merges []symbolPair) *bpeModel {
	ranks := make(map[symbolPair]int, len(merges))
	for i, m := range merges {
		if _, dup := ranks[m]; !dup {
			ranks[m] = i
		}
	}
	return &bpeModel{ranks: ranks, cache: make(map[string][]string)}
}

// apply returns the BPE symbols of one word whose bytes were already mapped
// through bytesToUnicode (transformers tokenization_clip.py::CLIPTokenizer.bpe):
//
//   - the word becomes its list of characters with "</w>" appended to the
//     last one; a one-character word is returned as that character + "</w>";
//   - repeatedly, the adjacent pair with the lowest merge rank is found and
//     every non-overlapping occurrence of it, scanning left to right, is
//     replaced by the concatenation; this stops when no adjacent pair has a
//     rank or one symbol is left.
//
// The two special tokens "<|startoftext|>" and "<|endoftext|>" are
// returned unchanged, as the reference seeds its cache with them.
func (m *bpeModel) apply(word string) []string {
	if word == "<|startoftext|>" || word == "<|endoftext|>" {
		return []string{word}
	}
	m.mu.Lock()
	if syms, ok := m.cache[word]; ok {
		m.mu.Unlock()
		return syms
	}
	m.mu.Unlock()

	syms := m.merge(word)

	m.mu.Lock()
	if len(m.cache) >= maxCacheEntries {
		clear(m.cache)
	}
	m.cache[word] = syms
	m.mu.Unlock()
	return syms
}

func (m *bpeModel) merge(word string) []string {
	runes := []rune(word)
	if len(runes) == 0 {
		return nil
	}
	syms := make([]string, len(runes))
	for i, r := range runes {
		syms[i] = string(r)
	}
	syms[len(syms)-1] += endOfWord
	for len(syms) > 1 {
		best, bestRank := -1, 0
		for i := 0; i+1 < len(syms); i++ {
			r, ok := m.ranks[symbolPair{syms[i], syms[i+1]}]
			if ok && (best < 0 || r < bestRank) {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		first, second := syms[best], syms[best+1]
		merged := first + second
		out := syms[:0]
		for i := 0; i < len(syms); {
			if i+1 < len(syms) && syms[i] == first && syms[i+1] == second {
				out = append(out, merged)
				i += 2
			} else {
				out = append(out, syms[i])
				i++
			}
		}
		syms = out
	}
	return syms
}
