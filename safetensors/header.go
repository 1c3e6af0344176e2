package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/tgate-web/tgate/tensor"
)

// MaxHeaderSize is the largest header length the reference reader accepts
// (safetensors src/tensor.rs, MAX_HEADER_SIZE).
const MaxHeaderSize = 100_000_000

// maxDepth is the deepest JSON nesting accepted in a header; serde_json,
// which the reference reader uses, stops at the same recursion limit.
const maxDepth = 128

// FormatError reports a malformed safetensors file or shard index: which
// file, which tensor (when the problem concerns one) and what is wrong.
type FormatError struct {
	File    string // path or name of the file; empty for an anonymous source
	Tensor  string // tensor name; empty when the problem is not about one tensor
	Problem string
}

func (e *FormatError) Error() string {
	if e.File == "" {
		return "safetensors: " + e.Detail()
	}
	return "safetensors: " + e.File + ": " + e.Detail()
}

// Detail returns the problem without the file name: the tensor, when
// there is one, and what is wrong with it.
func (e *FormatError) Detail() string {
	if e.Tensor != "" {
		return fmt.Sprintf("tensor %q: %s", e.Tensor, e.Problem)
	}
	return e.Problem
}

func formatErr(tensorName, format string, args ...any) *FormatError {
	return &FormatError{Tensor: tensorName, Problem: fmt.Sprintf(format, args...)}
}

// header is the decoded JSON header of one file.
type header struct {
	metadata map[string]string
	infos    []Info // in the order the JSON lists them
}

// parseHeader decodes a header the way the reference reader does
// (safetensors src/tensor.rs, SafeTensors::read_metadata): valid UTF-8,
// first byte '{', one JSON object optionally followed by whitespace,
// "__metadata__" a string→string map (or null), every other key a tensor
// {"dtype", "shape", "data_offsets"} with a known dtype string. Unlike
// encoding/json, a repeated key is an error rather than silently replacing
// the earlier one.
func parseHeader(h []byte) (*header, error) {
	if !utf8.Valid(h) {
		return nil, formatErr("", "header is not valid UTF-8")
	}
	if len(h) == 0 || h[0] != '{' {
		first := "nothing"
		if len(h) > 0 {
			first = strconv.QuoteRune(firstRune(h))
		}
		return nil, formatErr("", "header does not start with '{' (starts with %s)", first)
	}
	p := &jsonWalker{dec: json.NewDecoder(bytes.NewReader(h))}
	p.dec.UseNumber()
	if _, err := p.open('{', "", "the header"); err != nil {
		return nil, err
	}
	out := &header{}
	seen := map[string]bool{}
	for p.dec.More() {
		name, err := p.key("")
		if err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, formatErr(name, "the header lists this name more than once")
		}
		seen[name] = true
		if name == "__metadata__" {
			if out.metadata, err = p.stringMap(name); err != nil {
				return nil, err
			}
			continue
		}
		info, err := p.tensorInfo(name)
		if err != nil {
			return nil, err
		}
		out.infos = append(out.infos, info)
	}
	if err := p.close('}', ""); err != nil {
		return nil, err
	}
	if err := checkSurrogates(h[:p.dec.InputOffset()]); err != nil {
		return nil, err
	}
	rest := h[p.dec.InputOffset():]
	if i := bytes.IndexFunc(rest, func(r rune) bool { return !isJSONSpace(r) }); i >= 0 {
		return nil, formatErr("", "header has %d bytes after its JSON object (first %s at header byte %d); only whitespace padding is allowed",
			len(rest), strconv.QuoteRune(firstRune(rest[i:])), len(h)-len(rest)+i)
	}
	return out, nil
}

// checkSurrogates rejects \uXXXX escapes that encode half of a UTF-16
// surrogate pair without the other half. encoding/json turns them into
// U+FFFD; serde_json, used by the reference reader, rejects them
// (LoneLeadingSurrogateInHexEscape). h must be valid JSON.
func checkSurrogates(h []byte) error {
	hex4 := func(i int) int {
		if i+4 > len(h) {
			return -1
		}
		v, err := strconv.ParseUint(string(h[i:i+4]), 16, 16)
		if err != nil {
			return -1
		}
		return int(v)
	}
	inString := false
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString:
			i++
			if i >= len(h) || h[i] != 'u' {
				continue
			}
			v := hex4(i + 1)
			switch {
			case v >= 0xD800 && v < 0xDC00:
				if i+6 < len(h) && h[i+5] == '\\' && h[i+6] == 'u' {
					if w := hex4(i + 7); w >= 0xDC00 && w < 0xE000 {
						i += 10
						continue
					}
				}
				fallthrough
			case v >= 0xDC00 && v < 0xE000:
				return formatErr("", "header string holds an unpaired UTF-16 surrogate escape \\u%04x at header byte %d", v, i-1)
			}
			i += 4
		}
	}
	return nil
}

func firstRune(b []byte) rune {
	r, _ := utf8.DecodeRune(b)
	return r
}

func isJSONSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// jsonWalker reads a header token by token so that duplicate keys and
// value types can be checked where encoding/json would accept them.
type jsonWalker struct {
	dec   *json.Decoder
	depth int
}

func (p *jsonWalker) token(tensorName string) (json.Token, error) {
	tok, err := p.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, formatErr(tensorName, "header JSON ends early (at header byte %d)", p.dec.InputOffset())
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, formatErr(tensorName, "header is not valid JSON: %v (at header byte %d)", err, se.Offset)
		}
		return nil, formatErr(tensorName, "header is not valid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); ok {
		switch d {
		case '{', '[':
			p.depth++
			if p.depth > maxDepth {
				return nil, formatErr(tensorName, "header JSON nests deeper than %d levels", maxDepth)
			}
		default:
			p.depth--
		}
	}
	return tok, nil
}

// kind names the JSON type of a token for error messages.
func kind(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return "an object"
		}
		if t == '[' {
			return "an array"
		}
		return "'" + t.String() + "'"
	case string:
		return "a string"
	case json.Number:
		return "the number " + t.String()
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

// open reads the opening delimiter want of a value described by what.
func (p *jsonWalker) open(want json.Delim, tensorName, what string) (json.Token, error) {
	tok, err := p.token(tensorName)
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		a := "an object"
		if want == '[' {
			a = "an array"
		}
		return tok, formatErr(tensorName, "%s must be %s, found %s", what, a, kind(tok))
	}
	return tok, nil
}

func (p *jsonWalker) close(want json.Delim, tensorName string) error {
	tok, err := p.token(tensorName)
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return formatErr(tensorName, "header JSON: expected '%c', found %s", want, kind(tok))
	}
	return nil
}

// key reads an object key (encoding/json's Token already guarantees keys
// are strings in key position).
func (p *jsonWalker) key(tensorName string) (string, error) {
	tok, err := p.token(tensorName)
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", formatErr(tensorName, "header JSON: expected an object key, found %s", kind(tok))
	}
	return s, nil
}

// skip reads and discards one complete value.
func (p *jsonWalker) skip(tensorName string) error {
	base := p.depth
	for {
		if _, err := p.token(tensorName); err != nil {
			return err
		}
		if p.depth == base { // a scalar, or the end of a composite value
			return nil
		}
	}
}

// stringMap reads the "__metadata__" value: null or an object whose values
// are all strings.
func (p *jsonWalker) stringMap(name string) (map[string]string, error) {
	tok, err := p.token(name)
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, formatErr(name, "must be an object of strings, found %s", kind(tok))
	}
	m := map[string]string{}
	for p.dec.More() {
		k, err := p.key(name)
		if err != nil {
			return nil, err
		}
		v, err := p.token(name)
		if err != nil {
			return nil, err
		}
		s, ok := v.(string)
		if !ok {
			return nil, formatErr(name, "value of %q must be a string, found %s", k, kind(v))
		}
		if _, dup := m[k]; dup {
			return nil, formatErr(name, "key %q appears more than once", k)
		}
		m[k] = s
	}
	return m, p.close('}', name)
}

// uint reads a non-negative JSON integer that fits in an int64, as serde
// deserialises a usize (no sign, fraction or exponent).
func (p *jsonWalker) uint(tensorName, what string) (int64, error) {
	tok, err := p.token(tensorName)
	if err != nil {
		return 0, err
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, formatErr(tensorName, "%s must hold non-negative integers, found %s", what, kind(tok))
	}
	v, err := strconv.ParseUint(n.String(), 10, 64)
	if err != nil || v > math.MaxInt64 {
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, formatErr(tensorName, "%s must hold non-negative integers, found %s", what, n)
		}
		return 0, formatErr(tensorName, "%s value %s is too large", what, n)
	}
	return int64(v), nil
}

// uints reads an array of non-negative integers.
func (p *jsonWalker) uints(tensorName, what string) ([]int64, error) {
	if _, err := p.open('[', tensorName, what); err != nil {
		return nil, err
	}
	out := []int64{}
	for p.dec.More() {
		v, err := p.uint(tensorName, what)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, p.close(']', tensorName)
}

// tensorInfo reads {"dtype": ..., "shape": [...], "data_offsets": [b, e]}.
// Other keys are ignored, as the reference reader ignores them.
func (p *jsonWalker) tensorInfo(name string) (Info, error) {
	info := Info{Name: name}
	if _, err := p.open('{', name, "the entry"); err != nil {
		return info, err
	}
	var haveDType, haveShape, haveOffsets bool
	for p.dec.More() {
		k, err := p.key(name)
		if err != nil {
			return info, err
		}
		dup := func(seen bool) error {
			if seen {
				return formatErr(name, "field %q appears more than once", k)
			}
			return nil
		}
		switch k {
		case "dtype":
			if err := dup(haveDType); err != nil {
				return info, err
			}
			haveDType = true
			tok, err := p.token(name)
			if err != nil {
				return info, err
			}
			s, ok := tok.(string)
			if !ok {
				return info, formatErr(name, "dtype must be a string, found %s", kind(tok))
			}
			if _, known := dtypes[s]; !known {
				return info, formatErr(name, "unknown dtype %q", s)
			}
			info.DType = s
		case "shape":
			if err := dup(haveShape); err != nil {
				return info, err
			}
			haveShape = true
			dims, err := p.uints(name, "shape")
			if err != nil {
				return info, err
			}
			info.Shape = make(tensor.Shape, len(dims))
			for i, d := range dims {
				if uint64(d) > uint64(math.MaxInt) {
					return info, formatErr(name, "shape dimension %d is too large", d)
				}
				info.Shape[i] = int(d)
			}
		case "data_offsets":
			if err := dup(haveOffsets); err != nil {
				return info, err
			}
			haveOffsets = true
			offs, err := p.uints(name, "data_offsets")
			if err != nil {
				return info, err
			}
			if len(offs) != 2 {
				return info, formatErr(name, "data_offsets must be [BEGIN, END], found %d numbers", len(offs))
			}
			info.Begin, info.End = offs[0], offs[1]
		default:
			if err := p.skip(name); err != nil {
				return info, err
			}
		}
	}
	if err := p.close('}', name); err != nil {
		return info, err
	}
	switch {
	case !haveDType:
		return info, formatErr(name, "missing \"dtype\"")
	case !haveShape:
		return info, formatErr(name, "missing \"shape\"")
	case !haveOffsets:
		return info, formatErr(name, "missing \"data_offsets\"")
	}
	return info, nil
}

// byteSize returns prod(shape) × bitsize/8 for a tensor, or an error when
// the product overflows or is not a whole number of bytes (the reference
// reader's ValidationOverflow and MisalignedSlice).
func byteSize(info *Info) (int64, error) {
	bitsPer, _ := DTypeBits(info.DType)
	overflow := formatErr(info.Name, "shape %v of %s overflows the element count", info.Shape, info.DType)
	n := uint64(1)
	for _, d := range info.Shape {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 {
			return 0, overflow
		}
		n = lo
	}
	hi, nbits := bits.Mul64(n, uint64(bitsPer))
	if hi != 0 || nbits/8 > math.MaxInt64 {
		return 0, overflow
	}
	if nbits%8 != 0 {
		return 0, formatErr(info.Name, "shape %v of %s is %d bits, not a whole number of bytes", info.Shape, info.DType, nbits)
	}
	return int64(nbits / 8), nil
}

// layout sorts the tensors by offsets and checks them against a data
// section of dataLen bytes as the reference reader does (Metadata::validate
// and the MetadataIncompleteBuffer check): sorted by offsets they tile the
// data contiguously from 0 without holes or overlaps, each spans exactly
// prod(shape) × bitsize/8 bytes, and the last END equals dataLen.
func layout(infos []Info, dataLen int64) error {
	sort.SliceStable(infos, func(i, j int) bool {
		a, b := &infos[i], &infos[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		if a.End != b.End {
			return a.End < b.End
		}
		return a.Name < b.Name
	})
	var start int64
	prev := ""
	for i := range infos {
		t := &infos[i]
		switch {
		case t.Begin < start:
			return formatErr(t.Name, "data_offsets [%d,%d] overlap tensor %q, which ends at %d", t.Begin, t.End, prev, start)
		case t.Begin > start && prev == "":
			return formatErr(t.Name, "data_offsets [%d,%d] leave a hole: no tensor covers data bytes [0,%d)", t.Begin, t.End, t.Begin)
		case t.Begin > start:
			return formatErr(t.Name, "data_offsets [%d,%d] leave a hole: tensor %q ends at %d", t.Begin, t.End, prev, start)
		case t.End < t.Begin:
			return formatErr(t.Name, "data_offsets [%d,%d] end before they begin", t.Begin, t.End)
		}
		size, err := byteSize(t)
		if err != nil {
			return err
		}
		if t.End-t.Begin != size {
			return formatErr(t.Name, "shape %v of %s needs %d bytes but data_offsets [%d,%d] span %d",
				t.Shape, t.DType, size, t.Begin, t.End, t.End-t.Begin)
		}
		if t.End > dataLen {
			return formatErr(t.Name, "data_offsets [%d,%d] run past the end of the data section (%d bytes)", t.Begin, t.End, dataLen)
		}
		start, prev = t.End, t.Name
	}
	if start != dataLen {
		if prev == "" {
			return formatErr("", "the header lists no tensor data but the data section holds %d bytes", dataLen)
		}
		return formatErr("", "tensors cover %d bytes but the data section holds %d (%d bytes after tensor %q are not described)",
			start, dataLen, dataLen-start, prev)
	}
	return nil
}
