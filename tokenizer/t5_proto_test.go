package tokenizer

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
)

// protoField appends one protobuf field (varint or length-delimited).
func protoField(buf []byte, field int, v any) []byte {
	switch x := v.(type) {
	case int:
		buf = binary.AppendUvarint(buf, uint64(field<<3|0))
		return binary.AppendUvarint(buf, uint64(x))
	case float32:
		buf = binary.AppendUvarint(buf, uint64(field<<3|5))
		return binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
	case string:
		buf = binary.AppendUvarint(buf, uint64(field<<3|2))
		buf = binary.AppendUvarint(buf, uint64(len(x)))
		return append(buf, x...)
	case []byte:
		return protoField(buf, field, string(x))
	}
	panic(fmt.Sprintf("protoField: %T", v))
}

// syntheticModel writes a SentencePiece ModelProto with control pieces
// <pad> and </s>, <unk>, "▁", "a", "b", "ab", the user-defined "<sep>"
// and, with byteFallback, the 256 byte pieces <0x00>…<0xFF> from id 8.
func syntheticModel(byteFallback bool) []byte {
	type piece struct {
		s     string
		score float32
		typ   int
	}
	pieces := []piece{
		{"<pad>", 0, pieceControl}, {"</s>", 0, pieceControl}, {"<unk>", 0, pieceUnknown},
		{spaceSymbol, -1, pieceNormal}, {"a", -2, pieceNormal}, {"b", -2, pieceNormal},
		{"ab", -1, pieceNormal}, {"<sep>", 0, pieceUserDefined},
	}
	if byteFallback {
		for c := 0; c < 256; c++ {
			pieces = append(pieces, piece{fmt.Sprintf("<0x%02X>", c), 0, pieceByte})
		}
	}
	var m []byte
	for _, p := range pieces {
		var b []byte
		b = protoField(b, 1, p.s)
		b = protoField(b, 2, p.score)
		b = protoField(b, 3, p.typ)
		m = protoField(m, 1, b)
	}
	fallback := 0
	if byteFallback {
		fallback = 1
	}
	var trainer []byte
	trainer = protoField(trainer, 3, spModelUnigram)
	trainer = protoField(trainer, 35, fallback)
	m = protoField(m, 2, trainer)
	var norm []byte
	norm = protoField(norm, 1, "identity")
	m = protoField(m, 3, norm)
	return m
}

// Viterbi, unknown fusion, byte fallback and user-defined pieces on a
// hand-made model whose segmentations follow from its scores: "ab" (−1)
// beats "a"+"b" (−4); 'é' is unknown (score −2−10) and becomes its UTF-8
// bytes C3 A9 with byte fallback; "<sep>" passes the normaliser and scores
// 5·max_score−0.1 = −5.1, above five unknown characters.
func TestT5SyntheticModel(t *testing.T) {
	plain, err := NewT5(T5Files{SentencePiece: syntheticModel(false), TokenizerConfig: []byte(`{"extra_ids": 0}`)})
	if err != nil {
		t.Fatal(err)
	}
	fallback, err := NewT5(T5Files{SentencePiece: syntheticModel(true), TokenizerConfig: []byte(`{"extra_ids": 0}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tok  *T5
		text string
		want []int32
	}{
		{plain, "ab", []int32{3, 6}},
		{plain, "  ab   b a ", []int32{3, 6, 3, 5, 3, 4}},
		{plain, "ab é", []int32{3, 6, 3, 2}},
		{plain, "éé b", []int32{3, 2, 3, 5}},
		{plain, "a<sep>b", []int32{3, 4, 7, 5}},
		{plain, "</s>ab", []int32{1, 3, 6}},
		{fallback, "ab é", []int32{3, 6, 3, 8 + 0xC3, 8 + 0xA9}},
		{fallback, "éa", []int32{3, 8 + 0xC3, 8 + 0xA9, 4}},
	} {
		if got := c.tok.Encode(c.text); !intsEqual(got, c.want) {
			t.Errorf("byte fallback %v, %q: got %v, want %v", c.tok.byteFallback, c.text, got, c.want)
		}
	}
	if _, err := NewT5(T5Files{SentencePiece: []byte{0x0a, 0x05, 0x01}}); err == nil {
		t.Error("a truncated model parsed without error")
	}
}
