package pnginfo

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
)

// testImage returns a small image with distinct pixels and its PNG
// encoding by image/png.
func testImage(t *testing.T) (*image.NRGBA, []byte) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 5, 3))
	for y := 0; y < 3; y++ {
		for x := 0; x < 5; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(40 * x), uint8(70 * y), uint8(x*y + 9), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return img, buf.Bytes()
}

// chunkAfterIHDR parses, independently of the package, the chunk that
// follows IHDR (signature 8 bytes + IHDR 25 bytes): its type, data, and
// whether its stored CRC equals hash/crc32's over type and data.
func chunkAfterIHDR(t *testing.T, file []byte) (typ string, data []byte, crcOK bool) {
	t.Helper()
	const off = 8 + 12 + 13
	if string(file[12:16]) != "IHDR" {
		t.Fatalf("first chunk is %q", file[12:16])
	}
	n := int(binary.BigEndian.Uint32(file[off:]))
	typ = string(file[off+4 : off+8])
	data = file[off+8 : off+8+n]
	stored := binary.BigEndian.Uint32(file[off+8+n:])
	return typ, data, stored == crc32.ChecksumIEEE(file[off+4:off+8+n])
}

// decodesTo checks that file decodes with image/png to exactly img.
func decodesTo(t *testing.T, file []byte, img *image.NRGBA) {
	t.Helper()
	got, err := png.Decode(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("image/png cannot decode the result: %v", err)
	}
	for y := 0; y < 3; y++ {
		for x := 0; x < 5; x++ {
			if g, w := color.NRGBAModel.Convert(got.At(x, y)), img.At(x, y); g != w {
				t.Fatalf("pixel (%d,%d) = %v, want %v", x, y, g, w)
			}
		}
	}
}

func TestEncodeLatin1(t *testing.T) {
	img, orig := testImage(t)
	text := "a café, résumé: 7.5\nSteps: 2, CFG scale: 7.5, Seed: 1"
	out, err := Encode(orig, Key, text)
	if err != nil {
		t.Fatal(err)
	}
	typ, data, crcOK := chunkAfterIHDR(t, out)
	// Latin-1: é is the single byte 0xE9.
	want := []byte("parameters\x00a caf\xe9, r\xe9sum\xe9: 7.5\nSteps: 2, CFG scale: 7.5, Seed: 1")
	if typ != "tEXt" || !bytes.Equal(data, want) || !crcOK {
		t.Errorf("chunk after IHDR: %s %q (CRC ok %v), want tEXt %q", typ, data, crcOK, want)
	}
	if len(out) != len(orig)+12+len(want) {
		t.Errorf("output %d bytes, want the input's %d plus the %d-byte chunk", len(out), len(orig), 12+len(want))
	}
	if !bytes.Equal(out[:33], orig[:33]) || !bytes.Equal(out[33+12+len(want):], orig[33:]) {
		t.Error("the chunks around the inserted one changed")
	}
	decodesTo(t, out, img)
	m, err := Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || m[Key] != text {
		t.Errorf("Read = %q, want {%q: %q}", m, Key, text)
	}
}

func TestEncodeUnicodeAsITXt(t *testing.T) {
	img, orig := testImage(t)
	text := "夕焼けの富士山 🗻\nSteps: 4, CFG scale: 8.5, Seed: 3"
	out, err := Encode(orig, Key, text)
	if err != nil {
		t.Fatal(err)
	}
	typ, data, crcOK := chunkAfterIHDR(t, out)
	// keyword NUL, compression flag 0, method 0, empty language tag NUL,
	// empty translated keyword NUL, UTF-8 text.
	want := append([]byte("parameters\x00\x00\x00\x00\x00"), text...)
	if typ != "iTXt" || !bytes.Equal(data, want) || !crcOK {
		t.Errorf("chunk after IHDR: %s %q (CRC ok %v), want iTXt %q", typ, data, crcOK, want)
	}
	decodesTo(t, out, img)
	m, err := Read(out)
	if err != nil || m[Key] != text {
		t.Errorf("Read = %q, %v; want %q", m[Key], err, text)
	}
}

// TestEncodeReplaces checks that encoding a keyword again leaves one
// chunk, with the new text, and keeps other keywords.
func TestEncodeReplaces(t *testing.T) {
	img, orig := testImage(t)
	out, err := Encode(orig, "Comment", "kept")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"first", "second → unicode", "third"} {
		if out, err = Encode(out, Key, text); err != nil {
			t.Fatal(err)
		}
		m, err := Read(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 2 || m[Key] != text || m["Comment"] != "kept" {
			t.Errorf("after writing %q: %q", text, m)
		}
	}
	if n := bytes.Count(out, []byte("parameters\x00")); n != 1 {
		t.Errorf("%d chunks carry the keyword, want 1", n)
	}
	decodesTo(t, out, img)
}

// handChunk builds a chunk with hash/crc32, independently of the package.
func handChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

func deflate(t *testing.T, s []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	w.Write(s)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestReadChunkKinds reads hand-built zTXt, compressed iTXt and duplicate
// tEXt chunks placed before IEND.
func TestReadChunkKinds(t *testing.T) {
	_, orig := testImage(t)
	iend := len(orig) - 12
	var extra []byte
	extra = append(extra, handChunk("zTXt", append([]byte("Zed\x00\x00"), deflate(t, []byte("gr\xfc\xdfe"))...))...)
	extra = append(extra, handChunk("iTXt", append([]byte("Intl\x00\x01\x00ja\x00名前\x00"), deflate(t, []byte("こんにちは"))...))...)
	extra = append(extra, handChunk("tEXt", []byte("Dup\x00first"))...)
	extra = append(extra, handChunk("tEXt", []byte("Dup\x00second"))...)
	extra = append(extra, handChunk("tEXt", []byte("Empty\x00"))...)
	file := append(append(append([]byte(nil), orig[:iend]...), extra...), orig[iend:]...)
	m, err := Read(file)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Zed": "grüße", "Intl": "こんにちは", "Dup": "first", "Empty": ""}
	if len(m) != len(want) {
		t.Errorf("Read = %q, want %q", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
}

func TestBadInput(t *testing.T) {
	_, orig := testImage(t)
	withText, err := Encode(orig, Key, "hello")
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), withText...)
	corrupt[33+8+len("parameters\x00")] ^= 0x20 // a letter of "hello"
	badIHDR := append([]byte(nil), orig...)
	copy(badIHDR[12:16], "IDAT")
	textFirst := append(append([]byte(signature), handChunk("tEXt", []byte("a\x00b"))...), orig[8:]...)
	noSep := append(append([]byte(nil), orig[:33]...), handChunk("tEXt", []byte("no separator"))...)
	noSep = append(noSep, orig[33:]...)
	for _, c := range []struct {
		name string
		file []byte
		want []string
	}{
		{"empty", nil, []string{"truncated", "signature"}},
		{"GIF", []byte("GIF89a\x01\x00\x01\x00"), []string{"not a PNG"}},
		{"JPEG", []byte{0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F', 'I', 'F', 0, 1}, []string{"not a PNG"}},
		{"signature only", orig[:8], []string{"truncated", "IEND"}},
		{"cut in IHDR", orig[:20], []string{"truncated", "IHDR", "offset 8"}},
		{"cut in text chunk", withText[:50], []string{"truncated", "tEXt", "offset 33"}},
		{"no IEND", orig[:len(orig)-12], []string{"truncated", "IEND"}},
		{"CRC", corrupt, []string{"tEXt", "offset 33", "CRC"}},
		{"IHDR renamed", badIHDR, []string{"IDAT", "offset 8", "CRC"}},
		{"IHDR not first", textFirst, []string{`"tEXt"`, "want IHDR"}},
		{"text chunk without NUL", noSep, []string{"tEXt", "offset 33", "NUL"}},
	} {
		_, rerr := Read(c.file)
		_, eerr := Encode(c.file, Key, "x")
		for _, err := range []error{rerr, eerr} {
			if err == nil {
				t.Errorf("%s: no error", c.name)
				continue
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: error %q does not mention %q", c.name, err, w)
				}
			}
		}
	}
	// Every prefix of a valid file is an error, never a panic.
	for n := 0; n < len(withText); n++ {
		if _, err := Read(withText[:n]); err == nil {
			t.Fatalf("prefix of %d bytes read without error", n)
		}
	}
}

func TestEncodeArguments(t *testing.T) {
	_, orig := testImage(t)
	for _, c := range []struct{ key, text, want string }{
		{"", "x", "1 to 79"},
		{strings.Repeat("k", 80), "x", "1 to 79"},
		{" lead", "x", "spaces"},
		{"two  spaces", "x", "spaces"},
		{"tab\tkey", "x", "unprintable"},
		{"ключ", "x", "Latin-1"},
		{Key, "nul\x00inside", "NUL"},
		{Key, "bad \xff utf-8", "UTF-8"},
	} {
		_, err := Encode(orig, c.key, c.text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Encode(%q, %q): error %v, want one mentioning %s", c.key, c.text, err, c.want)
		}
	}
	// A Latin-1 keyword with a non-ASCII letter is valid.
	out, err := Encode(orig, "Légende", "ok")
	if err != nil {
		t.Fatal(err)
	}
	if typ, data, _ := chunkAfterIHDR(t, out); typ != "tEXt" || string(data) != "L\xe9gende\x00ok" {
		t.Errorf("chunk %s %q", typ, data)
	}
}

// TestSettingsInPNG stores Format's text in a PNG and parses it back.
func TestSettingsInPNG(t *testing.T) {
	_, orig := testImage(t)
	p := Params{Prompt: "a fox, red: bright\nsecond line", NegativePrompt: "blur", Steps: 25, Sampler: "euler",
		Guidance: 7.5, Seed: 99, Width: 5, Height: 3, Model: "tiny-sd", Extra: []KV{{"T-GATE", "v1"}, {"Gate step", "10"}}}
	out, err := Encode(orig, Key, Format(p))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Read(out)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(m[Key])
	if err != nil {
		t.Fatal(err)
	}
	if Format(q) != Format(p) || q.Prompt != p.Prompt || q.Seed != 99 || q.Sampler != "euler" {
		t.Errorf("read back %+v, want %+v", q, p)
	}
}
