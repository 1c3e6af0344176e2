package tokenizer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Piece types of a SentencePiece model (sentencepiece_model.proto,
// ModelProto.SentencePiece.Type).
const (
	pieceNormal      = 1
	pieceUnknown     = 2
	pieceControl     = 3
	pieceUserDefined = 4
	pieceUnused      = 5
	pieceByte        = 6
)

// spModelUnigram is TrainerSpec.model_type UNIGRAM.
const spModelUnigram = 1

// spPiece is one entry of ModelProto.pieces.
type spPiece struct {
	piece string
	score float32
	typ   int
}

// spNormalizer is the part of ModelProto.normalizer_spec the encoder uses.
type spNormalizer struct {
	name             string
	charsmap         []byte // precompiled_charsmap
	addDummyPrefix   bool
	removeExtraSpace bool
	escapeSpaces     bool
}

// spModel is what the tokenizer reads from a spiece.model file.
type spModel struct {
	pieces       []spPiece
	modelType    int
	byteFallback bool
	suffixSpace  bool // treat_whitespace_as_suffix
	normalizer   spNormalizer
}

// protoReader walks the protobuf wire format (varints, fixed32/64 and
// length-delimited fields) of one message.
type protoReader struct {
	buf []byte
	err error
}

var errProtoTruncated = errors.New("truncated protobuf message")

// next returns the next field's number and wire type, or ok=false at the
// end of the message or on an error (then r.err is set).
func (r *protoReader) next() (field int, wire int, ok bool) {
	if r.err != nil || len(r.buf) == 0 {
		return 0, 0, false
	}
	key := r.varint()
	if r.err != nil {
		return 0, 0, false
	}
	return int(key >> 3), int(key & 7), true
}

func (r *protoReader) varint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.err = errProtoTruncated
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *protoReader) take(n uint64) []byte {
	if uint64(len(r.buf)) < n {
		r.err = errProtoTruncated
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

// bytes reads a length-delimited field's payload.
func (r *protoReader) bytes() []byte { return r.take(r.varint()) }

// fixed32 reads a 32-bit field (a float's bits).
func (r *protoReader) fixed32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

// skip discards a field of the given wire type.
func (r *protoReader) skip(wire int) {
	switch wire {
	case 0:
		r.varint()
	case 1:
		r.take(8)
	case 2:
		r.bytes()
	case 5:
		r.take(4)
	default:
		r.err = fmt.Errorf("unsupported protobuf wire type %d", wire)
	}
}

// parseSentencePieceModel decodes the fields of a SentencePiece ModelProto
// that encoding needs: pieces (1: piece, 2: score, 3: type), trainer_spec
// (3: model_type, 24: treat_whitespace_as_suffix, 35: byte_fallback) and
// normalizer_spec (1: name, 2: precompiled_charsmap, 3: add_dummy_prefix,
// 4: remove_extra_whitespaces, 5: escape_whitespaces; the last three
// default to true). Other fields are skipped.
func parseSentencePieceModel(data []byte) (*spModel, error) {
	m := &spModel{
		modelType:  spModelUnigram,
		normalizer: spNormalizer{addDummyPrefix: true, removeExtraSpace: true, escapeSpaces: true},
	}
	r := &protoReader{buf: data}
	for {
		field, wire, ok := r.next()
		if !ok {
			break
		}
		switch {
		case field == 1 && wire == 2:
			p, err := parsePiece(r.bytes())
			if err != nil {
				return nil, fmt.Errorf("piece %d: %w", len(m.pieces), err)
			}
			m.pieces = append(m.pieces, p)
		case field == 2 && wire == 2:
			if err := m.parseTrainerSpec(r.bytes()); err != nil {
				return nil, fmt.Errorf("trainer_spec: %w", err)
			}
		case field == 3 && wire == 2:
			if err := m.normalizer.parse(r.bytes()); err != nil {
				return nil, fmt.Errorf("normalizer_spec: %w", err)
			}
		default:
			r.skip(wire)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(m.pieces) == 0 {
		return nil, errors.New("no pieces (is this a SentencePiece model file?)")
	}
	return m, nil
}

func parsePiece(data []byte) (spPiece, error) {
	p := spPiece{typ: pieceNormal}
	r := &protoReader{buf: data}
	for {
		field, wire, ok := r.next()
		if !ok {
			break
		}
		switch {
		case field == 1 && wire == 2:
			p.piece = string(r.bytes())
		case field == 2 && wire == 5:
			p.score = math.Float32frombits(r.fixed32())
		case field == 3 && wire == 0:
			p.typ = int(r.varint())
		default:
			r.skip(wire)
		}
	}
	return p, r.err
}

func (m *spModel) parseTrainerSpec(data []byte) error {
	r := &protoReader{buf: data}
	for {
		field, wire, ok := r.next()
		if !ok {
			break
		}
		switch {
		case field == 3 && wire == 0:
			m.modelType = int(r.varint())
		case field == 24 && wire == 0:
			m.suffixSpace = r.varint() != 0
		case field == 35 && wire == 0:
			m.byteFallback = r.varint() != 0
		default:
			r.skip(wire)
		}
	}
	return r.err
}

func (n *spNormalizer) parse(data []byte) error {
	r := &protoReader{buf: data}
	for {
		field, wire, ok := r.next()
		if !ok {
			break
		}
		switch {
		case field == 1 && wire == 2:
			n.name = string(r.bytes())
		case field == 2 && wire == 2:
			n.charsmap = append([]byte(nil), r.bytes()...)
		case field == 3 && wire == 0:
			n.addDummyPrefix = r.varint() != 0
		case field == 4 && wire == 0:
			n.removeExtraSpace = r.varint() != 0
		case field == 5 && wire == 0:
			n.escapeSpaces = r.varint() != 0
		default:
			r.skip(wire)
		}
	}
	return r.err
}
