package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// clipPattern is the pre-tokenization regex of transformers'
// tokenization_clip.py and openai/CLIP simple_tokenizer.py, compiled there
// with re.IGNORECASE by the regex module. Go's RE2 uses leftmost-first
// alternation like Python, and over the cleaned text (lowercase, single
// ASCII spaces, see Cleaning) it finds the same matches as the regex module
// for every assigned code point of Unicode 15 except U+0345, handled in
// pretokenize. Digits are single tokens.
var clipPattern = regexp.MustCompile(`(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`)

// ypogegrammeni is U+0345 COMBINING GREEK YPOGEGRAMMENI, a mark (Mn) whose
// case folding is the letter ι. Under re.IGNORECASE the regex module
// matches it with neither [\p{L}] nor [^\s\p{L}\p{N}], so findall skips it
// and it separates the words around it; Go's case-insensitive classes
// would count it as a letter instead.
const ypogegrammeni = '\u0345'

// CLIP is the byte-level BPE tokenizer of CLIP text encoders, computing
// what transformers' slow CLIPTokenizer (as diffusers calls it) computes.
// It is safe for concurrent use once constructed, provided Cleaning is not
// changed meanwhile.
type CLIP struct {
	vocab  map[string]int // token -> id (vocab.json)
	tokens []string       // id -> token; "" where no token has the id
	bpe    *bpeModel

	byteEnc [256]rune
	byteDec map[rune]byte

	added []addedToken // the tokenizer's added (special) tokens, split out before BPE
	addID map[string]int

	bos, eos, unk, pad int
	maxLength          int

	// Cleaning selects the text normalisation; the zero value CleanBasic is
	// transformers' behaviour without ftfy installed.
	Cleaning Cleaning
}

// addedToken is a token matched verbatim in the raw text before
// normalisation (transformers' AddedToken in the tokens trie).
type addedToken struct {
	content        string
	id             int
	lstrip, rstrip bool
	singleWord     bool
}

// VocabSize is the number of entries of the vocabulary (49,408 for CLIP).
func (t *CLIP) VocabSize() int { return len(t.vocab) }

// BOS is the id of the beginning-of-sequence token (<|startoftext|>, 49406).
func (t *CLIP) BOS() int { return t.bos }

// EOS is the id of the end-of-sequence token (<|endoftext|>, 49407).
func (t *CLIP) EOS() int { return t.eos }

// Pad is the id EncodeForModel pads with: 49407 for SD1.x, 0 ('!') for
// SD2.x and SDXL's tokenizer_2.
func (t *CLIP) Pad() int { return t.pad }

// MaxLength is the model sequence length (model_max_length, 77).
func (t *CLIP) MaxLength() int { return t.maxLength }

// ID returns the id of a token string (added tokens first, then the
// vocabulary), and whether it exists.
func (t *CLIP) ID(token string) (int, bool) {
	if id, ok := t.addID[token]; ok {
		return id, true
	}
	id, ok := t.vocab[token]
	return id, ok
}

// Token returns the token string of an id, and whether the id exists.
func (t *CLIP) Token(id int) (string, bool) {
	for _, a := range t.added {
		if a.id == id {
			return a.content, true
		}
	}
	if id < 0 || id >= len(t.tokens) || t.tokens[id] == "" {
		return "", false
	}
	return t.tokens[id], true
}

// Encode returns the token ids of text without BOS and EOS
// (PreTrainedTokenizer.tokenize followed by convert_tokens_to_ids):
//
//  1. the text is split around the added tokens (<|startoftext|>,
//     <|endoftext|>, and '!' when it is the pad token of SD2/SDXL
//     tokenizer_2 folders), which become their own ids;
//  2. every other piece is cleaned (Cleaning), split by the
//     pre-tokenization regex, each match UTF-8 encoded and mapped through
//     bytes_to_unicode, then split into BPE symbols;
//  3. each symbol becomes its vocabulary id (unknown symbols the unk id).
func (t *CLIP) Encode(text string) []int {
	var ids []int
	for _, piece := range t.splitAdded(text) {
		if piece.added {
			ids = append(ids, piece.id)
			continue
		}
		ids = t.appendPiece(ids, piece.text)
	}
	return ids
}

// appendPiece tokenizes one piece of text with no added tokens in it
// (CLIPTokenizer._tokenize) and appends the ids.
func (t *CLIP) appendPiece(ids []int, text string) []int {
	for _, word := range pretokenize(t.Cleaning.clean(text)) {
		for _, sym := range t.bpe.apply(t.byteEncode(word)) {
			ids = append(ids, t.symbolID(sym))
		}
	}
	return ids
}

// pretokenize returns the regex matches of cleaned text.
func pretokenize(cleaned string) []string {
	if strings.ContainsRune(cleaned, ypogegrammeni) {
		cleaned = strings.ReplaceAll(cleaned, string(ypogegrammeni), " ")
	}
	return clipPattern.FindAllString(cleaned, -1)
}

// byteEncode maps every UTF-8 byte of s through bytes_to_unicode.
func (t *CLIP) byteEncode(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteRune(t.byteEnc[s[i]])
	}
	return b.String()
}

// symbolID is _convert_token_to_id_with_added_voc: added tokens, then the
// vocabulary, then the unk id.
func (t *CLIP) symbolID(sym string) int {
	if id, ok := t.addID[sym]; ok {
		return id
	}
	if id, ok := t.vocab[sym]; ok {
		return id
	}
	return t.unk
}

// textPiece is a stretch of the input: an added token, or text to tokenize.
type textPiece struct {
	text  string
	added bool
	id    int
}

// splitAdded splits text around occurrences of the added tokens, preferring
// at each position the earliest and then the longest match (transformers'
// Trie.split), then applies the tokens' lstrip/rstrip/single_word flags as
// PreTrainedTokenizer.tokenize does. Empty pieces are dropped.
func (t *CLIP) splitAdded(text string) []textPiece {
	var pieces []textPiece
	start := 0
	for i := 0; i < len(text); {
		a := t.matchAdded(text[i:])
		if a == nil {
			i++
			continue
		}
		if i > start {
			pieces = append(pieces, textPiece{text: text[start:i]})
		}
		pieces = append(pieces, textPiece{text: a.content, added: true, id: a.id})
		i += len(a.content)
		start = i
	}
	if start < len(text) {
		pieces = append(pieces, textPiece{text: text[start:]})
	}
	for i, p := range pieces {
		if !p.added {
			continue
		}
		a := t.addedByContent(p.text)
		if a.rstrip && i+1 < len(pieces) && !pieces[i+1].added {
			pieces[i+1].text = strings.TrimLeftFunc(pieces[i+1].text, isPySpace)
		}
		if a.lstrip && i > 0 && !pieces[i-1].added {
			pieces[i-1].text = strings.TrimRightFunc(pieces[i-1].text, isPySpace)
		}
		if a.singleWord {
			if i > 0 && !pieces[i-1].added && pieces[i-1].text != "" && !strings.HasSuffix(pieces[i-1].text, " ") {
				pieces[i-1].text += p.text
				pieces[i] = textPiece{}
			} else if i+1 < len(pieces) && !pieces[i+1].added && pieces[i+1].text != "" && !strings.HasPrefix(pieces[i+1].text, " ") {
				pieces[i+1].text = p.text + pieces[i+1].text
				pieces[i] = textPiece{}
			}
		}
	}
	out := pieces[:0]
	for _, p := range pieces {
		if p.added || p.text != "" {
			out = append(out, p)
		}
	}
	return out
}

// matchAdded returns the longest added token that s starts with, or nil.
func (t *CLIP) matchAdded(s string) *addedToken {
	var best *addedToken
	for i := range t.added {
		a := &t.added[i]
		if strings.HasPrefix(s, a.content) && (best == nil || len(a.content) > len(best.content)) {
			best = a
		}
	}
	return best
}

func (t *CLIP) addedByContent(content string) *addedToken {
	for i := range t.added {
		if t.added[i].content == content {
			return &t.added[i]
		}
	}
	return &addedToken{}
}

// Truncation describes prompt tokens that did not fit the model's sequence
// length and were dropped by EncodeForModel.
type Truncation struct {
	// MaxLength is the sequence length, BOS and EOS included (77).
	MaxLength int
	// DroppedIDs are the ids that were cut off, in order.
	DroppedIDs []int
	// DroppedText is DroppedIDs decoded, as diffusers prints it.
	DroppedText string
}

// Warning is the message diffusers logs for a truncated prompt
// (pipeline_stable_diffusion.py::encode_prompt).
func (tr *Truncation) Warning() string {
	return fmt.Sprintf("The following part of your input was truncated because CLIP can only handle sequences up to %d tokens: %q", tr.MaxLength, tr.DroppedText)
}

// EncodeForModel returns exactly MaxLength ids as the SD pipelines feed the
// text encoder (tokenizer(text, padding="max_length",
// max_length=model_max_length, truncation=True)): BOS, at most
// MaxLength-2 prompt tokens, EOS, then the pad id up to MaxLength. When
// tokens were cut off it also returns what was dropped; otherwise the
// *Truncation is nil.
func (t *CLIP) EncodeForModel(text string) ([]int32, *Truncation) {
	ids := t.Encode(text)
	var tr *Truncation
	if keep := t.maxLength - 2; len(ids) > keep {
		dropped := append([]int(nil), ids[keep:]...)
		tr = &Truncation{MaxLength: t.maxLength, DroppedIDs: dropped, DroppedText: t.Decode(dropped)}
		ids = ids[:keep]
	}
	out := make([]int32, t.maxLength)
	out[0] = int32(t.bos)
	for i, id := range ids {
		out[1+i] = int32(id)
	}
	out[1+len(ids)] = int32(t.eos)
	for i := 2 + len(ids); i < len(out); i++ {
		out[i] = int32(t.pad)
	}
	return out, tr
}

// Decode turns ids back into text as transformers' decode does with
// skip_special_tokens=False and clean_up_tokenization_spaces=True
// (CLIPTokenizer.convert_tokens_to_string then clean_up_tokenization): the
// tokens are concatenated, mapped back to bytes, decoded as UTF-8 (invalid
// sequences become U+FFFD), "</w>" becomes a space, and the result is
// stripped. Unknown ids are skipped.
func (t *CLIP) Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		if tok, ok := t.Token(id); ok {
			b.WriteString(tok)
		}
	}
	var raw []byte
	for _, r := range b.String() {
		if c, ok := t.byteDec[r]; ok {
			raw = append(raw, c)
		} else {
			raw = utf8.AppendRune(raw, r)
		}
	}
	s := strings.ToValidUTF8(string(raw), "\uFFFD")
	s = strings.TrimFunc(strings.ReplaceAll(s, endOfWord, " "), isPySpace)
	return cleanUpTokenization(s)
}

// cleanUpTokenization is PreTrainedTokenizerBase.clean_up_tokenization:
// the same chain of replacements, applied one after another, that removes
// the space before . ? ! , and English contractions.
func cleanUpTokenization(s string) string {
	for _, p := range [][2]string{
		{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
	} {
		s = strings.ReplaceAll(s, p[0], p[1])
	}
	return s
}
