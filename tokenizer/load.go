package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// CLIPFiles holds the contents of a CLIP tokenizer folder. Either Vocab and
// Merges, or OpenAIBPE, must be set; the two JSON configs are optional.
type CLIPFiles struct {
	// Vocab is vocab.json (token -> id, 49,408 entries).
	Vocab []byte
	// Merges is merges.txt ("#version" header, then one merge per line).
	Merges []byte
	// OpenAIBPE is openai/CLIP's bpe_simple_vocab_16e6.txt.gz, from which
	// the vocabulary and merges are derived as simple_tokenizer.py does.
	OpenAIBPE []byte
	// TokenizerConfig is tokenizer_config.json (special tokens,
	// model_max_length, added_tokens_decoder).
	TokenizerConfig []byte
	// SpecialTokensMap is special_tokens_map.json.
	SpecialTokensMap []byte
	// Name prefixes error messages, e.g. the folder the files came from.
	Name string
}

// File names inside a diffusers tokenizer folder.
const (
	VocabFile            = "vocab.json"
	MergesFile           = "merges.txt"
	TokenizerConfigFile  = "tokenizer_config.json"
	SpecialTokensMapFile = "special_tokens_map.json"
	OpenAIBPEFile        = "bpe_simple_vocab_16e6.txt.gz"
)

// defaultMaxLength is CLIP's context length, used when tokenizer_config.json
// gives no usable model_max_length.
const defaultMaxLength = 77

// LoadCLIP reads a tokenizer folder (a diffusers pipeline's tokenizer/ or
// tokenizer_2/): vocab.json and merges.txt, or else
// bpe_simple_vocab_16e6.txt.gz; tokenizer_config.json and
// special_tokens_map.json when present.
func LoadCLIP(dir string) (*CLIP, error) {
	return LoadCLIPWith(dir, func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) })
}

// LoadCLIPWith is LoadCLIP for a tokenizer folder reached through
// readFile (a missing file is an error wrapping fs.ErrNotExist); dir names
// the folder in messages.
func LoadCLIPWith(dir string, readFile func(name string) ([]byte, error)) (*CLIP, error) {
	read := func(name string, optional bool) ([]byte, error) {
		b, err := readFile(name)
		if optional && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		return b, nil
	}
	f := CLIPFiles{Name: dir}
	var err error
	if f.Vocab, err = read(VocabFile, true); err != nil {
		return nil, err
	}
	if f.Merges, err = read(MergesFile, true); err != nil {
		return nil, err
	}
	if f.Vocab == nil && f.Merges == nil {
		if f.OpenAIBPE, err = read(OpenAIBPEFile, true); err != nil {
			return nil, err
		}
		if f.OpenAIBPE == nil {
			return nil, fmt.Errorf("tokenizer: %s has neither %s and %s nor %s", dir, VocabFile, MergesFile, OpenAIBPEFile)
		}
	}
	if f.TokenizerConfig, err = read(TokenizerConfigFile, true); err != nil {
		return nil, err
	}
	if f.SpecialTokensMap, err = read(SpecialTokensMapFile, true); err != nil {
		return nil, err
	}
	return NewCLIP(f)
}

// NewCLIP builds the tokenizer from file contents. Special tokens are
// resolved as transformers 4.44 PreTrainedTokenizerBase._from_pretrained
// does for CLIPTokenizer:
//
//   - defaults: bos <|startoftext|>, eos, unk and pad <|endoftext|>;
//   - tokenizer_config.json's bos_token, eos_token, unk_token, pad_token and
//     additional_special_tokens replace them;
//   - if tokenizer_config.json has no added_tokens_decoder (every SD1.x,
//     SD2.x and SDXL folder), the entries of special_tokens_map.json replace
//     those in turn: SD2.1's config says pad_token <|endoftext|> but its
//     special_tokens_map.json says "!", and "!" (id 0) wins. With an
//     added_tokens_decoder (newer saves, e.g. SD3) special_tokens_map.json
//     is not read and the decoder's entries are the added tokens;
//   - every special token becomes an added token, matched verbatim in the
//     text before cleaning (so with pad "!" every '!' of a prompt is id 0,
//     diffusers issue #4153), with the vocabulary's id for it.
//
// model_max_length comes from tokenizer_config.json (77 when it is absent
// or transformers' "very large" placeholder).
func NewCLIP(f CLIPFiles) (*CLIP, error) {
	name := f.Name
	if name == "" {
		name = "tokenizer"
	}
	var (
		vocab  map[string]int
		merges []symbolPair
		err    error
	)
	switch {
	case f.Vocab != nil && f.Merges != nil && f.OpenAIBPE == nil:
		if vocab, err = parseVocab(f.Vocab, filepath.Join(name, VocabFile)); err != nil {
			return nil, err
		}
		if merges, err = parseMerges(string(f.Merges), filepath.Join(name, MergesFile), clipMergeLimit); err != nil {
			return nil, err
		}
	case f.Vocab == nil && f.Merges == nil && f.OpenAIBPE != nil:
		if vocab, merges, err = openAIVocab(f.OpenAIBPE, filepath.Join(name, OpenAIBPEFile)); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("tokenizer: %s: need both %s and %s, or only %s", name, VocabFile, MergesFile, OpenAIBPEFile)
	}

	spec, err := resolveSpecial(f.TokenizerConfig, f.SpecialTokensMap, name)
	if err != nil {
		return nil, err
	}

	t := &CLIP{
		vocab:     vocab,
		bpe:       newBPEModel(merges),
		byteEnc:   bytesToUnicode(),
		byteDec:   make(map[rune]byte, 256),
		addID:     make(map[string]int),
		maxLength: spec.maxLength,
	}
	for b, r := range t.byteEnc {
		t.byteDec[r] = byte(b)
	}
	if t.tokens, err = tokenTable(vocab, filepath.Join(name, VocabFile)); err != nil {
		return nil, err
	}

	// Added tokens: the added_tokens_decoder entries, then every special
	// token not yet among them (PreTrainedTokenizer.__init__ -> _add_tokens).
	for _, d := range spec.decoder {
		t.addToken(d.spec, d.id)
	}
	nextID := len(vocab)
	for _, s := range spec.specials() {
		if s == nil || s.content == "" {
			continue
		}
		if _, ok := t.addID[s.content]; ok {
			continue
		}
		id, ok := vocab[s.content]
		if !ok {
			id = nextID
			nextID++
		}
		t.addToken(*s, id)
	}

	ids := map[string]*int{"bos_token": &t.bos, "eos_token": &t.eos, "unk_token": &t.unk, "pad_token": &t.pad}
	for key, s := range map[string]*tokenSpec{"bos_token": spec.bos, "eos_token": spec.eos, "unk_token": spec.unk, "pad_token": spec.pad} {
		if s == nil || s.content == "" {
			return nil, fmt.Errorf("tokenizer: %s: no %s; a CLIP tokenizer needs bos, eos, unk and pad tokens", name, key)
		}
		*ids[key] = t.addID[s.content]
	}
	return t, nil
}

func (t *CLIP) addToken(s tokenSpec, id int) {
	t.added = append(t.added, addedToken{content: s.content, id: id, lstrip: s.lstrip, rstrip: s.rstrip, singleWord: s.singleWord})
	t.addID[s.content] = id
}

// parseVocab decodes vocab.json (ids are checked by tokenTable). A flat
// object of strings to integers, which every vocab.json is, is read by a
// direct scanner (several times faster than encoding/json's reflection,
// which matters in the browser); anything else goes through encoding/json,
// which also reports the errors.
func parseVocab(data []byte, name string) (map[string]int, error) {
	vocab, ok := scanVocab(data)
	if !ok {
		if err := json.Unmarshal(data, &vocab); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %v", name, err)
		}
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("tokenizer: %s is empty", name)
	}
	return vocab, nil
}

// maxVocabID bounds token ids (CLIP uses 0..49407).
const maxVocabID = 1<<24 - 1

// tokenTable inverts the vocabulary into an id -> token table ("" for ids
// no token has), rejecting negative, huge and shared ids.
func tokenTable(vocab map[string]int, name string) ([]string, error) {
	maxID := -1
	for tok, id := range vocab {
		if id < 0 || id > maxVocabID {
			return nil, fmt.Errorf("tokenizer: %s: token %q has id %d, want 0 <= id <= %d", name, tok, id, maxVocabID)
		}
		maxID = max(maxID, id)
	}
	tokens := make([]string, maxID+1)
	set := make([]bool, maxID+1)
	for tok, id := range vocab {
		if set[id] {
			a, b := min(tok, tokens[id]), max(tok, tokens[id])
			return nil, fmt.Errorf("tokenizer: %s: tokens %q and %q share id %d", name, a, b, id)
		}
		tokens[id], set[id] = tok, true
	}
	return tokens, nil
}

// openAIVocab derives the vocabulary and merges from openai/CLIP's
// bpe_simple_vocab_16e6.txt.gz as simple_tokenizer.py's SimpleTokenizer
// does: merges are lines [1 : 49152-256-2+1]; the vocabulary is the 256
// byte characters in bytes_to_unicode order, the same with "</w>"
// appended, each merge's concatenation in rank order, then <|startoftext|>
// and <|endoftext|> (49,408 entries, the ids of the Hugging Face
// vocab.json).
func openAIVocab(gz []byte, name string) (map[string]int, []symbolPair, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, nil, fmt.Errorf("tokenizer: %s: %v", name, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, nil, fmt.Errorf("tokenizer: %s: %v", name, err)
	}
	merges, err := parseMerges(string(data), name, clipMergeLimit)
	if err != nil {
		return nil, nil, err
	}
	enc := bytesToUnicode()
	words := make([]string, 0, 512+len(merges)+2)
	order := byteOrder()
	for _, b := range order {
		words = append(words, string(enc[b]))
	}
	for _, b := range order {
		words = append(words, string(enc[b])+endOfWord)
	}
	for _, m := range merges {
		words = append(words, m.a+m.b)
	}
	words = append(words, "<|startoftext|>", "<|endoftext|>")
	vocab := make(map[string]int, len(words))
	for id, w := range words {
		if _, dup := vocab[w]; dup {
			return nil, nil, fmt.Errorf("tokenizer: %s: vocabulary entry %q occurs twice", name, w)
		}
		vocab[w] = id
	}
	return vocab, merges, nil
}

// ConvertOpenAIBPE computes the vocab.json and merges.txt of a Hugging Face
// CLIP tokenizer folder from openai/CLIP's bpe_simple_vocab_16e6.txt.gz
// (gz, the gzip file's bytes), byte for byte as CLIPTokenizer's
// save_vocabulary writes them: vocab.json is json.dumps(encoder,
// indent=2, sort_keys=True, ensure_ascii=False) plus a newline; merges.txt
// is "#version: 0.2" then one "a b" line per merge in rank order, each
// ending in a newline. The vocabulary and merges are those openAIVocab
// derives (49,408 entries, 48,894 merges).
func ConvertOpenAIBPE(gz []byte) (vocabJSON, mergesTxt []byte, err error) {
	vocab, merges, err := openAIVocab(gz, OpenAIBPEFile)
	if err != nil {
		return nil, nil, err
	}
	// encoding/json sorts map keys by their UTF-8 bytes, which is code
	// point order, as Python's sort_keys; HTML escaping is off to match
	// ensure_ascii=False (the byte-level alphabet has no other character
	// the two encoders escape differently).
	var vb bytes.Buffer
	enc := json.NewEncoder(&vb)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(vocab); err != nil {
		return nil, nil, fmt.Errorf("tokenizer: %s: %v", OpenAIBPEFile, err)
	}
	var mb bytes.Buffer
	mb.WriteString("#version: 0.2\n")
	for _, m := range merges {
		mb.WriteString(m.a + " " + m.b + "\n")
	}
	return vb.Bytes(), mb.Bytes(), nil
}

// tokenSpec is a special token as the configs give it: a string, or an
// AddedToken object {"content", "lstrip", "rstrip", "single_word", ...}.
type tokenSpec struct {
	content                    string
	lstrip, rstrip, singleWord bool
}

type decoderEntry struct {
	id   int
	spec tokenSpec
}

type specialConfig struct {
	bos, eos, unk, pad *tokenSpec
	additional         []*tokenSpec
	decoder            []decoderEntry // sorted by id
	maxLength          int
}

// specials lists the special tokens in transformers'
// SPECIAL_TOKENS_ATTRIBUTES order (the order new ids are given in).
func (s *specialConfig) specials() []*tokenSpec {
	return append([]*tokenSpec{s.bos, s.eos, s.unk, s.pad}, s.additional...)
}

// resolveSpecial applies the precedence rules documented on NewCLIP.
func resolveSpecial(configJSON, mapJSON []byte, name string) (*specialConfig, error) {
	s := &specialConfig{
		bos:       &tokenSpec{content: "<|startoftext|>"},
		eos:       &tokenSpec{content: "<|endoftext|>"},
		unk:       &tokenSpec{content: "<|endoftext|>"},
		pad:       &tokenSpec{content: "<|endoftext|>"},
		maxLength: defaultMaxLength,
	}
	var cfg map[string]json.RawMessage
	if configJSON != nil {
		where := filepath.Join(name, TokenizerConfigFile)
		if err := json.Unmarshal(configJSON, &cfg); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %v", where, err)
		}
		if err := s.apply(cfg, where); err != nil {
			return nil, err
		}
		if raw, ok := cfg["model_max_length"]; ok && string(raw) != "null" {
			var n float64
			if err := json.Unmarshal(raw, &n); err != nil {
				return nil, fmt.Errorf("tokenizer: %s: model_max_length: %v", where, err)
			}
			switch {
			case n >= 1e15: // transformers' VERY_LARGE_INTEGER placeholder: no limit recorded
			case n < 2 || n != float64(int(n)):
				return nil, fmt.Errorf("tokenizer: %s: model_max_length %v, want an integer >= 2", where, n)
			default:
				s.maxLength = int(n)
			}
		}
		if raw, ok := cfg["added_tokens_decoder"]; ok && string(raw) != "null" {
			var dec map[string]json.RawMessage
			if err := json.Unmarshal(raw, &dec); err != nil {
				return nil, fmt.Errorf("tokenizer: %s: added_tokens_decoder: %v", where, err)
			}
			for key, v := range dec {
				var id int
				if _, err := fmt.Sscan(key, &id); err != nil || id < 0 || fmt.Sprint(id) != key {
					return nil, fmt.Errorf("tokenizer: %s: added_tokens_decoder key %q is not a token id", where, key)
				}
				ts, err := parseTokenSpec(v, where+": added_tokens_decoder."+key)
				if err != nil {
					return nil, err
				}
				if ts == nil || ts.content == "" {
					return nil, fmt.Errorf("tokenizer: %s: added_tokens_decoder.%s has no content", where, key)
				}
				s.decoder = append(s.decoder, decoderEntry{id: id, spec: *ts})
			}
			sort.Slice(s.decoder, func(i, j int) bool { return s.decoder[i].id < s.decoder[j].id })
		}
	}
	if _, hasDecoder := cfg["added_tokens_decoder"]; !hasDecoder && mapJSON != nil {
		where := filepath.Join(name, SpecialTokensMapFile)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(mapJSON, &m); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %v", where, err)
		}
		if err := s.apply(m, where); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// apply sets the special tokens present in a config map (a null value
// unsets one, as in transformers).
func (s *specialConfig) apply(m map[string]json.RawMessage, where string) error {
	for key, dst := range map[string]**tokenSpec{"bos_token": &s.bos, "eos_token": &s.eos, "unk_token": &s.unk, "pad_token": &s.pad} {
		raw, ok := m[key]
		if !ok {
			continue
		}
		ts, err := parseTokenSpec(raw, where+": "+key)
		if err != nil {
			return err
		}
		*dst = ts
	}
	if raw, ok := m["additional_special_tokens"]; ok {
		s.additional = nil
		if string(raw) != "null" {
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				return fmt.Errorf("tokenizer: %s: additional_special_tokens: %v", where, err)
			}
			for i, v := range list {
				ts, err := parseTokenSpec(v, fmt.Sprintf("%s: additional_special_tokens[%d]", where, i))
				if err != nil {
					return err
				}
				if ts != nil {
					s.additional = append(s.additional, ts)
				}
			}
		}
	}
	return nil
}

// parseTokenSpec reads a token given as a string or an AddedToken object;
// null gives nil.
func parseTokenSpec(raw json.RawMessage, where string) (*tokenSpec, error) {
	trimmed := strings.TrimSpace(string(raw))
	if trimmed == "null" || trimmed == "" {
		return nil, nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		return &tokenSpec{content: str}, nil
	}
	var obj struct {
		Content    *string `json:"content"`
		Lstrip     bool    `json:"lstrip"`
		Rstrip     bool    `json:"rstrip"`
		SingleWord bool    `json:"single_word"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: want a string or an object with \"content\": %v", where, err)
	}
	if obj.Content == nil {
		return nil, fmt.Errorf("tokenizer: %s: token object has no \"content\"", where)
	}
	return &tokenSpec{content: *obj.Content, lstrip: obj.Lstrip, rstrip: obj.Rstrip, singleWord: obj.SingleWord}, nil
}

// scanVocab parses a JSON object whose values are all integers, as
// encoding/json would into a map[string]int (a repeated key keeps its last
// value). It reports false for any other input.
func scanVocab(data []byte) (map[string]int, bool) {
	p := 0
	ws := func() {
		for p < len(data) && (data[p] == ' ' || data[p] == '\n' || data[p] == '\r' || data[p] == '\t') {
			p++
		}
	}
	ws()
	if p >= len(data) || data[p] != '{' {
		return nil, false
	}
	p++
	vocab := make(map[string]int, len(data)/24)
	ws()
	if p < len(data) && data[p] == '}' {
		p++
		ws()
		return vocab, p == len(data)
	}
	for {
		ws()
		if p >= len(data) || data[p] != '"' {
			return nil, false
		}
		start, escaped := p, false
		for p++; p < len(data) && data[p] != '"'; p++ {
			switch c := data[p]; {
			case c == '\\':
				escaped = true
				p++ // skip the escaped byte (\" in particular)
			case c < 0x20:
				return nil, false
			}
		}
		if p >= len(data) {
			return nil, false
		}
		p++ // closing quote
		var key string
		if escaped {
			if err := json.Unmarshal(data[start:p], &key); err != nil {
				return nil, false
			}
		} else {
			if !utf8.Valid(data[start+1 : p-1]) {
				return nil, false
			}
			key = string(data[start+1 : p-1])
		}
		ws()
		if p >= len(data) || data[p] != ':' {
			return nil, false
		}
		p++
		ws()
		neg := p < len(data) && data[p] == '-'
		if neg {
			p++
		}
		digits, n := 0, 0
		for p < len(data) && data[p] >= '0' && data[p] <= '9' {
			if n > maxVocabID {
				return nil, false // let tokenTable-sized checks see it via encoding/json
			}
			n = 10*n + int(data[p]-'0')
			p++
			digits++
		}
		if digits == 0 || (digits > 1 && data[p-digits] == '0') {
			return nil, false
		}
		if neg {
			n = -n
		}
		vocab[key] = n
		ws()
		if p >= len(data) {
			return nil, false
		}
		if data[p] == '}' {
			p++
			ws()
			return vocab, p == len(data)
		}
		if data[p] != ',' {
			return nil, false
		}
		p++
	}
}
