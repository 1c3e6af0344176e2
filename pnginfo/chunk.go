package pnginfo

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf8"
)

// signature opens every PNG file.
const signature = "\x89PNG\r\n\x1a\n"

// maxChunkLen is the largest chunk length the PNG specification allows.
const maxChunkLen = 1<<31 - 1

// maxText bounds the decompressed size of one zTXt or compressed iTXt
// chunk, so a small file cannot expand without limit.
const maxText = 8 << 20

// chunk is one chunk of a PNG file: its type, its data, and the byte range
// it occupies in the file (length field to CRC inclusive).
type chunk struct {
	typ        string
	data       []byte
	start, end int
}

// chunks splits a PNG file into its chunks, from IHDR up to and including
// IEND, checking the signature, that IHDR comes first, each chunk's type,
// length and CRC, and that IEND is present. Bytes after IEND are ignored.
func chunks(png []byte) ([]chunk, error) {
	if !bytes.HasPrefix(png, []byte(signature)) {
		if len(png) < len(signature) && strings.HasPrefix(signature, string(png)) {
			return nil, fmt.Errorf("pnginfo: truncated PNG: %d bytes, shorter than the 8-byte signature", len(png))
		}
		return nil, errors.New("pnginfo: not a PNG file (no PNG signature)")
	}
	var out []chunk
	for off := len(signature); ; {
		if len(png)-off < 8 {
			return nil, fmt.Errorf("pnginfo: truncated PNG: %d bytes end before the IEND chunk (offset %d)", len(png), off)
		}
		n := binary.BigEndian.Uint32(png[off:])
		typ := string(png[off+4 : off+8])
		if !validType(typ) {
			return nil, fmt.Errorf("pnginfo: chunk at offset %d has an invalid type %q", off, typ)
		}
		if n > maxChunkLen {
			return nil, fmt.Errorf("pnginfo: %s chunk at offset %d has length %d, above the PNG limit 2^31-1", typ, off, n)
		}
		end := off + 12 + int(n)
		if end > len(png) {
			return nil, fmt.Errorf("pnginfo: truncated PNG: %s chunk at offset %d needs %d bytes, %d remain", typ, off, 12+int(n), len(png)-off)
		}
		data := png[off+8 : off+8+int(n)]
		stored := binary.BigEndian.Uint32(png[end-4:])
		if sum := crc32.ChecksumIEEE(png[off+4 : end-4]); sum != stored {
			return nil, fmt.Errorf("pnginfo: %s chunk at offset %d: CRC %08x, computed %08x (corrupted file)", typ, off, stored, sum)
		}
		if len(out) == 0 && typ != "IHDR" {
			return nil, fmt.Errorf("pnginfo: first chunk is %q, want IHDR", typ)
		}
		out = append(out, chunk{typ: typ, data: data, start: off, end: end})
		if typ == "IEND" {
			return out, nil
		}
		off = end
	}
}

// validType reports whether t is a chunk type: four ASCII letters.
func validType(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return len(t) == 4
}

// appendChunk appends a chunk's length, type, data and CRC to b.
func appendChunk(b []byte, typ string, data []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	start := len(b)
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
}

// toLatin1 converts a UTF-8 string to ISO 8859-1 bytes; ok is false when
// s is not valid UTF-8 or holds a character above U+00FF.
func toLatin1(s string) (b []byte, ok bool) {
	b = make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF { // also an invalid byte, decoded as U+FFFD
			return nil, false
		}
		b = append(b, byte(r))
	}
	return b, true
}

// fromLatin1 converts ISO 8859-1 bytes to a UTF-8 string.
func fromLatin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// keyword checks a text chunk keyword as the PNG specification requires
// (1 to 79 Latin-1 characters, printable: 32-126 and 161-255, no leading,
// trailing or consecutive spaces) and returns its Latin-1 bytes.
func keyword(key string) ([]byte, error) {
	kw, ok := toLatin1(key)
	switch {
	case !ok:
		return nil, fmt.Errorf("pnginfo: keyword %q is not Latin-1", key)
	case len(kw) < 1 || len(kw) > 79:
		return nil, fmt.Errorf("pnginfo: keyword %q has %d characters, want 1 to 79", key, len(kw))
	case kw[0] == ' ' || kw[len(kw)-1] == ' ' || bytes.Contains(kw, []byte("  ")):
		return nil, fmt.Errorf("pnginfo: keyword %q has leading, trailing or consecutive spaces", key)
	}
	for _, c := range kw {
		if c < 32 || (c > 126 && c < 161) {
			return nil, fmt.Errorf("pnginfo: keyword %q holds the unprintable character %#02x", key, c)
		}
	}
	return kw, nil
}

// textKeyword returns the keyword of a tEXt, zTXt or iTXt chunk's data
// (the bytes before the first NUL) and the rest after the NUL.
func textKeyword(c chunk) (kw, rest []byte, err error) {
	kw, rest, ok := bytes.Cut(c.data, []byte{0})
	if !ok {
		return nil, nil, fmt.Errorf("pnginfo: %s chunk at offset %d has no NUL after its keyword", c.typ, c.start)
	}
	return kw, rest, nil
}

// isText reports whether a chunk type is one of the PNG text chunks.
func isText(typ string) bool { return typ == "tEXt" || typ == "zTXt" || typ == "iTXt" }

// Encode returns png with a text chunk key → text inserted right after
// IHDR, replacing any tEXt, zTXt or iTXt chunk with the same keyword. The
// PNG specification makes tEXt text Latin-1 (ISO 8859-1): when text is
// all Latin-1 it is written as a tEXt chunk in that encoding, otherwise as
// an uncompressed iTXt chunk holding UTF-8 (no language tag, no
// translated keyword), as PIL's PngInfo.add_text does for the web UI.
// key must be a valid PNG keyword and text may not contain NUL; png is
// checked as Read checks it. Other chunks are copied unchanged.
func Encode(png []byte, key, text string) ([]byte, error) {
	kw, err := keyword(key)
	if err != nil {
		return nil, err
	}
	if strings.IndexByte(text, 0) >= 0 {
		return nil, errors.New("pnginfo: text holds a NUL character, which PNG text chunks cannot carry")
	}
	if !utf8.ValidString(text) {
		return nil, errors.New("pnginfo: text is not valid UTF-8")
	}
	cs, err := chunks(png)
	if err != nil {
		return nil, err
	}

	var typ string
	data := append(append([]byte(nil), kw...), 0)
	if lat, ok := toLatin1(text); ok {
		typ = "tEXt"
		data = append(data, lat...)
	} else {
		typ = "iTXt"
		// compression flag 0, method 0, empty language tag, empty
		// translated keyword, then the UTF-8 text.
		data = append(data, 0, 0, 0, 0)
		data = append(data, text...)
	}

	out := make([]byte, 0, len(png)+len(data)+12)
	out = append(out, png[:cs[0].end]...) // signature and IHDR
	out = appendChunk(out, typ, data)
	for _, c := range cs[1:] {
		if isText(c.typ) {
			k, _, err := textKeyword(c)
			if err != nil {
				return nil, err
			}
			if bytes.Equal(k, kw) {
				continue
			}
		}
		out = append(out, png[c.start:c.end]...)
	}
	return append(out, png[cs[len(cs)-1].end:]...), nil
}

// Read returns the text chunks of a PNG file as keyword → text: tEXt
// (Latin-1, converted to UTF-8), zTXt (zlib-compressed Latin-1) and iTXt
// (UTF-8, compressed or not). When a keyword occurs more than once, its
// first chunk wins. Every chunk's CRC is checked; a file that is not a
// PNG, is truncated, is corrupted, or holds a malformed text chunk is an
// error naming the problem and its offset.
func Read(png []byte) (map[string]string, error) {
	cs, err := chunks(png)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, c := range cs {
		if !isText(c.typ) {
			continue
		}
		kw, rest, err := textKeyword(c)
		if err != nil {
			return nil, err
		}
		key := fromLatin1(kw)
		text, err := chunkText(c, rest)
		if err != nil {
			return nil, err
		}
		if _, dup := out[key]; !dup {
			out[key] = text
		}
	}
	return out, nil
}

// chunkText decodes the text of a text chunk whose data after the keyword
// is rest.
func chunkText(c chunk, rest []byte) (string, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("pnginfo: %s chunk at offset %d: %s", c.typ, c.start, fmt.Sprintf(format, args...))
	}
	switch c.typ {
	case "tEXt":
		return fromLatin1(rest), nil
	case "zTXt":
		if len(rest) < 1 || rest[0] != 0 {
			return "", bad("unknown compression method")
		}
		b, err := inflate(rest[1:])
		if err != nil {
			return "", bad("%v", err)
		}
		return fromLatin1(b), nil
	}
	// iTXt: compression flag, method, language tag NUL, translated
	// keyword NUL, text.
	if len(rest) < 2 {
		return "", bad("too short for its compression fields")
	}
	flag, method := rest[0], rest[1]
	_, rest, ok := bytes.Cut(rest[2:], []byte{0})
	if ok {
		_, rest, ok = bytes.Cut(rest, []byte{0})
	}
	if !ok {
		return "", bad("no NUL after its language tag and translated keyword")
	}
	switch {
	case flag == 1 && method == 0:
		b, err := inflate(rest)
		if err != nil {
			return "", bad("%v", err)
		}
		rest = b
	case flag != 0:
		return "", bad("unknown compression flag %d, method %d", flag, method)
	}
	if !utf8.Valid(rest) {
		return "", bad("text is not valid UTF-8")
	}
	return string(rest), nil
}

// inflate decompresses a zlib stream of at most maxText bytes.
func inflate(z []byte) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, fmt.Errorf("compressed text: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxText+1))
	if err != nil {
		return nil, fmt.Errorf("compressed text: %v", err)
	}
	if len(b) > maxText {
		return nil, fmt.Errorf("compressed text expands beyond %d bytes", maxText)
	}
	return b, nil
}
