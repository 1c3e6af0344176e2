package tokenizer

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// File names inside a T5 tokenizer folder (besides TokenizerConfigFile and
// SpecialTokensMapFile).
const (
	SentencePieceFile  = "spiece.model"
	TokenizerJSONFile  = "tokenizer.json"
	AddedTokensFile    = "added_tokens.json"
	defaultT5ExtraIDs  = 100
	veryLargeMaxLength = 1e15
)

// T5Files holds the contents of a T5 tokenizer folder. SentencePiece or
// TokenizerJSON must be set (SentencePiece wins when both are); the others
// are optional.
type T5Files struct {
	// SentencePiece is spiece.model, a SentencePiece ModelProto.
	SentencePiece []byte
	// TokenizerJSON is a tokenizers tokenizer.json with a Unigram model.
	TokenizerJSON []byte
	// TokenizerConfig is tokenizer_config.json (extra_ids,
	// model_max_length, added_tokens_decoder, special tokens).
	TokenizerConfig []byte
	// AddedTokens is added_tokens.json (token -> id).
	AddedTokens []byte
	// SpecialTokensMap is special_tokens_map.json.
	SpecialTokensMap []byte
	// Name prefixes error messages, e.g. the folder the files came from.
	Name string
}

// LoadT5 reads a T5 tokenizer folder (a diffusers pipeline's tokenizer/ of
// PixArt, tokenizer_3/ of SD3): spiece.model, or else tokenizer.json, plus
// tokenizer_config.json, added_tokens.json and special_tokens_map.json
// when present.
func LoadT5(dir string) (*T5, error) {
	return LoadT5With(dir, func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) })
}

// LoadT5With is LoadT5 for a folder reached through readFile (a missing
// file is an error wrapping fs.ErrNotExist); dir names the folder in
// messages.
func LoadT5With(dir string, readFile func(name string) ([]byte, error)) (*T5, error) {
	f := T5Files{Name: dir}
	for _, e := range []struct {
		name string
		dst  *[]byte
	}{
		{SentencePieceFile, &f.SentencePiece},
		{TokenizerConfigFile, &f.TokenizerConfig},
		{AddedTokensFile, &f.AddedTokens},
		{SpecialTokensMapFile, &f.SpecialTokensMap},
	} {
		b, err := readFile(e.name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		*e.dst = b
	}
	if f.SentencePiece == nil {
		b, err := readFile(TokenizerJSONFile)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("tokenizer: %s has neither %s nor %s", dir, SentencePieceFile, TokenizerJSONFile)
		}
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		f.TokenizerJSON = b
	}
	return NewT5(f)
}

// NewT5 builds the tokenizer from file contents. The added tokens are, as
// transformers' T5Tokenizer resolves them: <pad>, </s> and <unk> at their
// piece ids; <extra_id_0> … <extra_id_{n−1}> at ids pieces+n−1 … pieces
// (n = tokenizer_config.json's extra_ids, default 100), with lstrip and
// rstrip; then the entries of added_tokens_decoder, added_tokens.json and
// tokenizer.json's added_tokens, which take precedence for their content.
// eos_token, pad_token and unk_token name the special tokens (default
// </s>, <pad>, <unk>).
func NewT5(f T5Files) (*T5, error) {
	name := f.Name
	if name == "" {
		name = "tokenizer"
	}
	var (
		m     *spModel
		added []addedToken
		err   error
	)
	switch {
	case f.SentencePiece != nil:
		where := filepath.Join(name, SentencePieceFile)
		if m, err = parseSentencePieceModel(f.SentencePiece); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %v", where, err)
		}
		if m.modelType != spModelUnigram {
			return nil, fmt.Errorf("tokenizer: %s: model_type %d is not unigram (1); only unigram SentencePiece models are supported", where, m.modelType)
		}
	case f.TokenizerJSON != nil:
		if m, added, err = parseUnigramJSON(f.TokenizerJSON, filepath.Join(name, TokenizerJSONFile)); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("tokenizer: %s: need %s or %s", name, SentencePieceFile, TokenizerJSONFile)
	}
	if m.suffixSpace {
		return nil, fmt.Errorf("tokenizer: %s: treat_whitespace_as_suffix is not supported", name)
	}
	t, err := newT5FromModel(m, name)
	if err != nil {
		return nil, err
	}
	if err := t.resolveAdded(f, added, name); err != nil {
		return nil, err
	}
	return t, nil
}

// newT5FromModel indexes the pieces and scores of m.
func newT5FromModel(m *spModel, name string) (*T5, error) {
	t := &T5{
		pieces:       m.pieces,
		pieceID:      make(map[string]int, len(m.pieces)),
		normSpec:     m.normalizer,
		byteFallback: m.byteFallback,
		unk:          -1,
		addID:        make(map[string]int),
	}
	var err error
	if t.charsMap, err = parseCharsMap(m.normalizer.charsmap); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", name, err)
	}
	for i := range t.byteIDs {
		t.byteIDs[i] = -1
	}
	minScore, maxScore := float32(math.MaxFloat32), float32(-math.MaxFloat32)
	for id, p := range m.pieces {
		switch p.typ {
		case pieceNormal, pieceUserDefined, pieceUnused:
			if _, dup := t.pieceID[p.piece]; dup {
				return nil, fmt.Errorf("tokenizer: %s: piece %q occurs twice", name, p.piece)
			}
			if p.piece == "" {
				return nil, fmt.Errorf("tokenizer: %s: piece %d is empty", name, id)
			}
			t.pieceID[p.piece] = id
			t.maxLen = max(t.maxLen, len(p.piece))
			if p.typ == pieceUserDefined {
				t.userDefined = append(t.userDefined, p.piece)
			}
			if p.typ == pieceNormal {
				minScore, maxScore = min(minScore, p.score), max(maxScore, p.score)
			}
		case pieceUnknown:
			t.unk = id
		case pieceByte:
			var v int
			if _, err := fmt.Sscanf(p.piece, "<0x%02X>", &v); err == nil && v >= 0 && v < 256 {
				t.byteIDs[v] = id
			}
		}
	}
	if t.unk < 0 {
		return nil, fmt.Errorf("tokenizer: %s: the model has no unknown piece", name)
	}
	t.unkScore, t.maxScore = minScore-unkPenalty, maxScore
	t.vocabSize = len(m.pieces)
	return t, nil
}

// resolveAdded sets the added tokens, the special ids and the maximum
// length (see NewT5).
func (t *T5) resolveAdded(f T5Files, fromJSON []addedToken, name string) error {
	cfgWhere := filepath.Join(name, TokenizerConfigFile)
	var cfg map[string]json.RawMessage
	if f.TokenizerConfig != nil {
		if err := json.Unmarshal(f.TokenizerConfig, &cfg); err != nil {
			return fmt.Errorf("tokenizer: %s: %v", cfgWhere, err)
		}
	}
	byContent := map[string]addedToken{}
	var order []string
	put := func(a addedToken) {
		if _, ok := byContent[a.content]; !ok {
			order = append(order, a.content)
		}
		byContent[a.content] = a
	}
	for _, s := range []string{"<pad>", "</s>", "<unk>"} {
		if id, ok := t.pieceByContent(s); ok {
			put(addedToken{content: s, id: id})
		}
	}
	extra := defaultT5ExtraIDs
	if raw, ok := cfg["extra_ids"]; ok {
		if err := json.Unmarshal(raw, &extra); err != nil || extra < 0 {
			return fmt.Errorf("tokenizer: %s: extra_ids %s, want a non-negative integer", cfgWhere, raw)
		}
	}
	if f.TokenizerJSON == nil {
		for i := 0; i < extra; i++ {
			put(addedToken{content: fmt.Sprintf("<extra_id_%d>", i), id: len(t.pieces) + extra - 1 - i, lstrip: true, rstrip: true})
		}
	}
	for _, a := range fromJSON {
		put(a)
	}
	if raw, ok := cfg["added_tokens_decoder"]; ok && string(raw) != "null" {
		var dec map[string]json.RawMessage
		if err := json.Unmarshal(raw, &dec); err != nil {
			return fmt.Errorf("tokenizer: %s: added_tokens_decoder: %v", cfgWhere, err)
		}
		for key, v := range dec {
			var id int
			if _, err := fmt.Sscan(key, &id); err != nil || id < 0 || fmt.Sprint(id) != key {
				return fmt.Errorf("tokenizer: %s: added_tokens_decoder key %q is not a token id", cfgWhere, key)
			}
			ts, err := parseTokenSpec(v, cfgWhere+": added_tokens_decoder."+key)
			if err != nil {
				return err
			}
			if ts == nil || ts.content == "" {
				return fmt.Errorf("tokenizer: %s: added_tokens_decoder.%s has no content", cfgWhere, key)
			}
			put(addedToken{content: ts.content, id: id, lstrip: ts.lstrip, rstrip: ts.rstrip, singleWord: ts.singleWord})
		}
	}
	if f.AddedTokens != nil {
		var at map[string]int
		if err := json.Unmarshal(f.AddedTokens, &at); err != nil {
			return fmt.Errorf("tokenizer: %s: %v", filepath.Join(name, AddedTokensFile), err)
		}
		for content, id := range at {
			a, ok := byContent[content]
			if !ok {
				a = addedToken{content: content}
			}
			a.id = id
			put(a)
		}
	}
	sort.Strings(order)
	for _, c := range order {
		a := byContent[c]
		t.added = append(t.added, a)
		t.addID[c] = a.id
		t.vocabSize = max(t.vocabSize, a.id+1)
	}

	special := map[string]string{"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
	for key := range special {
		if raw, ok := cfg[key]; ok && string(raw) != "null" {
			ts, err := parseTokenSpec(raw, cfgWhere+": "+key)
			if err != nil {
				return err
			}
			if ts != nil && ts.content != "" {
				special[key] = ts.content
			}
		}
	}
	for key, dst := range map[string]*int{"eos_token": &t.eos, "pad_token": &t.pad, "unk_token": &t.unk} {
		id, ok := t.ID(special[key])
		if !ok {
			return fmt.Errorf("tokenizer: %s: %s %q is neither a piece nor an added token", name, key, special[key])
		}
		*dst = id
	}
	if raw, ok := cfg["model_max_length"]; ok && string(raw) != "null" {
		var n float64
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("tokenizer: %s: model_max_length: %v", cfgWhere, err)
		}
		if n < veryLargeMaxLength {
			if n < 1 || n != math.Trunc(n) {
				return fmt.Errorf("tokenizer: %s: model_max_length %v, want a positive integer", cfgWhere, n)
			}
			t.maxLength = int(n)
		}
	}
	return nil
}

// pieceByContent finds a piece of any type by its string.
func (t *T5) pieceByContent(s string) (int, bool) {
	if id, ok := t.pieceID[s]; ok {
		return id, true
	}
	for i, p := range t.pieces {
		if p.piece == s {
			return i, true
		}
	}
	return 0, false
}

// parseUnigramJSON converts a tokenizer.json Unigram model (as
// transformers' convert_slow_tokenizer writes it from a spiece.model) to
// the SentencePiece model it came from: the vocab's pieces and scores,
// unk_id as the unknown piece, special added tokens as control pieces, the
// Precompiled normalizer's precompiled_charsmap, and the Metaspace
// pre-tokenizer's prefix space as add_dummy_prefix. Encoding then follows
// the slow T5Tokenizer (sentencepiece's whitespace handling), not the
// fast tokenizer's pipeline.
func parseUnigramJSON(data []byte, where string) (*spModel, []addedToken, error) {
	var j struct {
		AddedTokens []struct {
			ID         int    `json:"id"`
			Content    string `json:"content"`
			SingleWord bool   `json:"single_word"`
			LStrip     bool   `json:"lstrip"`
			RStrip     bool   `json:"rstrip"`
			Special    bool   `json:"special"`
		} `json:"added_tokens"`
		Normalizer   json.RawMessage `json:"normalizer"`
		PreTokenizer json.RawMessage `json:"pre_tokenizer"`
		Model        struct {
			Type         string               `json:"type"`
			UnkID        *int                 `json:"unk_id"`
			Vocab        [][2]json.RawMessage `json:"vocab"`
			ByteFallback bool                 `json:"byte_fallback"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, nil, fmt.Errorf("tokenizer: %s: %v", where, err)
	}
	if j.Model.Type != "Unigram" {
		return nil, nil, fmt.Errorf("tokenizer: %s: model type %q, want Unigram (a SentencePiece unigram tokenizer)", where, j.Model.Type)
	}
	if j.Model.UnkID == nil {
		return nil, nil, fmt.Errorf("tokenizer: %s: the Unigram model has no unk_id", where)
	}
	special := map[int]bool{}
	var added []addedToken
	for _, a := range j.AddedTokens {
		if a.Special {
			special[a.ID] = true
		}
		added = append(added, addedToken{content: a.Content, id: a.ID, lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord})
	}
	m := &spModel{
		modelType:    spModelUnigram,
		byteFallback: j.Model.ByteFallback,
		normalizer:   spNormalizer{addDummyPrefix: true, removeExtraSpace: true, escapeSpaces: true},
	}
	for id, e := range j.Model.Vocab {
		var piece string
		var score float64
		if err := json.Unmarshal(e[0], &piece); err != nil {
			return nil, nil, fmt.Errorf("tokenizer: %s: vocab entry %d: %v", where, id, err)
		}
		if err := json.Unmarshal(e[1], &score); err != nil {
			return nil, nil, fmt.Errorf("tokenizer: %s: vocab entry %d score: %v", where, id, err)
		}
		p := spPiece{piece: piece, score: float32(score), typ: pieceNormal}
		switch {
		case id == *j.Model.UnkID:
			p.typ = pieceUnknown
		case special[id]:
			p.typ = pieceControl
		case j.Model.ByteFallback && len(piece) == 6 && strings.HasPrefix(piece, "<0x") && strings.HasSuffix(piece, ">"):
			p.typ = pieceByte
		}
		m.pieces = append(m.pieces, p)
	}
	if len(m.pieces) == 0 {
		return nil, nil, fmt.Errorf("tokenizer: %s: the Unigram vocab is empty", where)
	}
	charsmap, err := findPrecompiled(j.Normalizer)
	if err != nil {
		return nil, nil, fmt.Errorf("tokenizer: %s: normalizer: %v", where, err)
	}
	m.normalizer.charsmap = charsmap
	if len(j.PreTokenizer) > 0 && string(j.PreTokenizer) != "null" {
		var pt struct {
			Type           string `json:"type"`
			AddPrefixSpace *bool  `json:"add_prefix_space"`
			PrependScheme  string `json:"prepend_scheme"`
		}
		if err := json.Unmarshal(j.PreTokenizer, &pt); err == nil && pt.Type == "Metaspace" {
			m.normalizer.addDummyPrefix = pt.PrependScheme != "never" && (pt.AddPrefixSpace == nil || *pt.AddPrefixSpace)
		}
	}
	return m, added, nil
}

// findPrecompiled returns the decoded precompiled_charsmap of a
// Precompiled normalizer, searching inside a Sequence; nil if there is
// none.
func findPrecompiled(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var n struct {
		Type        string            `json:"type"`
		Charsmap    string            `json:"precompiled_charsmap"`
		Normalizers []json.RawMessage `json:"normalizers"`
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, err
	}
	switch n.Type {
	case "Precompiled":
		return base64.StdEncoding.DecodeString(n.Charsmap)
	case "Sequence":
		for _, sub := range n.Normalizers {
			if b, err := findPrecompiled(sub); err != nil || b != nil {
				return b, err
			}
		}
	}
	return nil, nil
}
