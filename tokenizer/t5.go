package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// unkPenalty is subtracted from the lowest piece score to score an
// unknown character (sentencepiece unigram_model.h kUnkPenalty).
const unkPenalty = 10.0

// T5 is the SentencePiece unigram tokenizer of T5 v1.1 encoders (PixArt-α,
// PixArt-Σ, SD3's tokenizer_3), computing what transformers' slow
// T5Tokenizer with legacy=True computes: the text is split around the
// added tokens (<pad>, </s>, <unk>, <extra_id_N>), every other piece is
// encoded by sentencepiece (normalisation, then Viterbi segmentation over
// the pieces' scores), and EOS </s> is appended. It is safe for concurrent
// use.
type T5 struct {
	pieces  []spPiece
	pieceID map[string]int // normal, user-defined and unused pieces
	maxLen  int            // longest such piece, in bytes

	userDefined  []string
	charsMap     *charsMap
	normSpec     spNormalizer
	byteFallback bool
	byteIDs      [256]int // ids of the <0xXX> pieces (byte fallback); -1 if absent
	unkScore     float32
	maxScore     float32

	added []addedToken // matched verbatim before normalisation
	addID map[string]int

	unk, eos, pad int
	maxLength     int
	vocabSize     int
}

// VocabSize is the number of ids: the model's pieces plus the extra ids
// (32,100 for T5's spiece.model).
func (t *T5) VocabSize() int { return t.vocabSize }

// EOS is the id of </s> (1).
func (t *T5) EOS() int { return t.eos }

// Pad is the id of <pad> (0).
func (t *T5) Pad() int { return t.pad }

// Unk is the id of <unk> (2).
func (t *T5) Unk() int { return t.unk }

// MaxLength is tokenizer_config.json's model_max_length, or 0 when the
// folder records no limit (PixArt's folder; the pipelines pass their own).
func (t *T5) MaxLength() int { return t.maxLength }

// ID returns the id of a token string (added tokens first, then the
// pieces), and whether it exists.
func (t *T5) ID(token string) (int, bool) {
	if id, ok := t.addID[token]; ok {
		return id, true
	}
	return t.pieceByContent(token)
}

// Token returns the token string of an id, and whether the id exists.
func (t *T5) Token(id int) (string, bool) {
	for _, a := range t.added {
		if a.id == id {
			return a.content, true
		}
	}
	if id < 0 || id >= len(t.pieces) {
		return "", false
	}
	return t.pieces[id].piece, true
}

// Encode returns the token ids of text without EOS
// (PreTrainedTokenizer.tokenize, then convert_tokens_to_ids): the added
// tokens become their ids, and every stretch of text between them is
// encoded with sentencepiece (T5Tokenizer._tokenize with legacy=True,
// sp_model.encode(text, out_type=str)).
func (t *T5) Encode(text string) []int32 {
	var ids []int32
	for _, p := range splitAddedTokens(t.added, text) {
		if p.added {
			ids = append(ids, int32(p.id))
			continue
		}
		ids = t.appendPieces(ids, t.normalize(p.text))
	}
	return ids
}

// EncodeWithEOS is Encode followed by </s>, unless the ids already end with
// it (T5Tokenizer._add_eos_if_not_present): what tokenizer(text) returns.
func (t *T5) EncodeWithEOS(text string) []int32 {
	return t.addEOS(t.Encode(text))
}

func (t *T5) addEOS(ids []int32) []int32 {
	if len(ids) > 0 && int(ids[len(ids)-1]) == t.eos {
		return ids
	}
	return append(ids, int32(t.eos))
}

// EncodePadded returns exactly maxLen ids and their attention mask as
// tokenizer(text, padding="max_length", max_length=maxLen,
// truncation=True, add_special_tokens=True) does: the prompt's ids cut to
// maxLen−1, </s> appended (unless they already end with it), then <pad>
// (0) up to maxLen; mask is 1 for every id before the padding. truncated
// reports that prompt ids were dropped (diffusers warns then).
func (t *T5) EncodePadded(text string, maxLen int) (ids, mask []int32, truncated bool) {
	if maxLen < 1 {
		panic(fmt.Sprintf("tokenizer: T5 EncodePadded with maxLen %d; want >= 1", maxLen))
	}
	raw := t.Encode(text)
	if len(raw) > maxLen-1 {
		raw, truncated = raw[:maxLen-1], true
	}
	raw = t.addEOS(raw)
	ids = make([]int32, maxLen)
	mask = make([]int32, maxLen)
	copy(ids, raw)
	for i := range ids {
		if i < len(raw) {
			mask[i] = 1
		} else {
			ids[i] = int32(t.pad)
		}
	}
	return ids, mask, truncated
}

// Decode turns ids back into text as sentencepiece's DecodeIds would for
// the non-special ids: pieces are concatenated, '▁' becomes a space and
// the leading space of the dummy prefix is removed. Added (special) tokens
// — <pad>, </s>, <extra_id_N> — are skipped (skip_special_tokens=True);
// <unk> and unknown ids become " ⁇ " as sentencepiece writes them.
func (t *T5) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		i := int(id)
		if i == t.unk || i < 0 || i >= len(t.pieces) && !t.isAdded(i) {
			b.WriteString(" \u2047 ")
			continue
		}
		if t.isAdded(i) || t.pieces[i].typ == pieceControl {
			continue
		}
		b.WriteString(t.pieces[i].piece)
	}
	s := strings.ReplaceAll(b.String(), spaceSymbol, " ")
	return strings.TrimPrefix(s, " ")
}

func (t *T5) isAdded(id int) bool {
	for _, a := range t.added {
		if a.id == id {
			return true
		}
	}
	return false
}

// viterbiNode is the best segmentation of the normalized text ending at a
// byte position: its last piece starts at start and has id id.
type viterbiNode struct {
	score float32
	start int // -1 until reached
	id    int
}

// appendPieces segments normalized text (unigram_model.cc
// Model::EncodeOptimized) and appends the ids: at every character
// boundary, each matching piece (shortest first) extends the best path
// there with its score (a user-defined piece scores length·max_score−0.1);
// a strictly better score replaces the path's node. Where no piece covers
// just the next character, the unknown id spans it with score
// min_score−10. Consecutive unknown pieces are fused into one, as
// sentencepiece's unigram encoder and tokenizers' Unigram(fuse_unk) do;
// with byte_fallback the bytes of an unknown piece become <0xXX> pieces.
// Scores are summed in float32 as sentencepiece does.
func (t *T5) appendPieces(ids []int32, s string) []int32 {
	if s == "" {
		return ids
	}
	best := make([]viterbiNode, len(s)+1)
	for i := range best {
		best[i].start = -1
	}
	best[0].start = 0
	for pos := 0; pos < len(s); {
		_, charLen := utf8.DecodeRuneInString(s[pos:])
		here := best[pos].score
		single := false
		for end := pos + 1; end <= len(s) && end-pos <= t.maxLen; end++ {
			if end < len(s) && !utf8.RuneStart(s[end]) {
				continue
			}
			id, ok := t.pieceID[s[pos:end]]
			if !ok || t.pieces[id].typ == pieceUnused {
				continue
			}
			score := t.pieces[id].score
			if t.pieces[id].typ == pieceUserDefined {
				score = float32(utf8.RuneCountInString(s[pos:end]))*t.maxScore - 0.1
			}
			if n := &best[end]; n.start < 0 || here+score > n.score {
				*n = viterbiNode{score: here + score, start: pos, id: id}
			}
			if end-pos == charLen {
				single = true
			}
		}
		if !single {
			if n := &best[pos+charLen]; n.start < 0 || here+t.unkScore > n.score {
				*n = viterbiNode{score: here + t.unkScore, start: pos, id: t.unk}
			}
		}
		pos += charLen
	}
	type span struct{ start, end, id int }
	var path []span
	for end := len(s); end > 0; end = best[end].start {
		path = append(path, span{best[end].start, end, best[end].id})
	}
	prevUnk := false
	for i := len(path) - 1; i >= 0; i-- {
		p := path[i]
		if p.id != t.unk {
			ids = append(ids, int32(p.id))
			prevUnk = false
			continue
		}
		if t.byteFallback && t.byteIDs[0] >= 0 {
			for k := p.start; k < p.end; k++ {
				ids = append(ids, int32(t.byteIDs[s[k]]))
			}
			continue
		}
		if !prevUnk {
			ids = append(ids, int32(t.unk))
		}
		prevUnk = true
	}
	return ids
}

// splitAddedTokens splits text around occurrences of the added tokens,
// preferring at each position the earliest and then the longest match
// (transformers' Trie.split), then applies the tokens' lstrip/rstrip flags
// as PreTrainedTokenizer.tokenize does. Empty text pieces are dropped.
func splitAddedTokens(added []addedToken, text string) []textPiece {
	var pieces []textPiece
	var flags []*addedToken
	start := 0
	for i := 0; i < len(text); {
		var a *addedToken
		for k := range added {
			c := &added[k]
			if strings.HasPrefix(text[i:], c.content) && (a == nil || len(c.content) > len(a.content)) {
				a = c
			}
		}
		if a == nil {
			i++
			continue
		}
		if i > start {
			pieces = append(pieces, textPiece{text: text[start:i]})
			flags = append(flags, nil)
		}
		pieces = append(pieces, textPiece{text: a.content, added: true, id: a.id})
		flags = append(flags, a)
		i += len(a.content)
		start = i
	}
	if start < len(text) {
		pieces = append(pieces, textPiece{text: text[start:]})
		flags = append(flags, nil)
	}
	for i, a := range flags {
		if a == nil {
			continue
		}
		if a.rstrip && i+1 < len(pieces) && !pieces[i+1].added {
			pieces[i+1].text = strings.TrimLeftFunc(pieces[i+1].text, isPySpace)
		}
		if a.lstrip && i > 0 && !pieces[i-1].added {
			pieces[i-1].text = strings.TrimRightFunc(pieces[i-1].text, isPySpace)
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
