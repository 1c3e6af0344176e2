// Package share checks images uploaded for a share link and describes
// them: POST /api/share takes a PNG the page made, which must be a real,
// decodable PNG of bounded size and bounded pixel count, checked in that
// order so that a file declaring 100000×100000 pixels is refused from its
// header before any decoding starts. The stored bytes are the uploaded
// ones, so the PNG keeps its "parameters" text chunk (package pnginfo:
// the prompt and the settings, T-GATE's included), which the share page
// and its card show.
//
// A share's id is derived from the PNG's bytes (the same image shares to
// the same link); its image, its description (Meta, as JSON) and its card
// live in the bucket under ImageKey, MetaKey and CardKey.
package share

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/tgate-web/tgate/pnginfo"
)

// Limits on an upload.
const (
	// MaxBytes is the largest PNG accepted (8 MiB).
	MaxBytes = 8 << 20
	// MaxSide is the largest width or height accepted.
	MaxSide = 4096
	// MaxPixels bounds width×height: a decoded image must fit in the
	// Worker's 128 MB beside the card (4 Mpx is 16 MB as 8-bit RGBA).
	MaxPixels = 2048 * 2048
	// MaxParameters bounds the settings text kept in Meta.
	MaxParameters = 8 << 10
)

// Error is a refused upload: the HTTP status to answer with and why.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// StatusOf returns the status an error asks for: its own for an *Error,
// 500 for anything else.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}

func refuse(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// Meta describes one shared image; it is stored beside it as JSON.
type Meta struct {
	ID     string `json:"id"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Bytes  int    `json:"bytes"`
	// Parameters is the PNG's "parameters" text ("" when it has none),
	// cut to MaxParameters bytes.
	Parameters string `json:"parameters,omitempty"`
}

// pngMagic starts every PNG file.
const pngMagic = "\x89PNG\r\n\x1a\n"

// Check validates an uploaded file and returns its Meta. It refuses, in
// this order: more than MaxBytes (413), anything that is not a PNG (415),
// a PNG whose header does not parse (400), declared dimensions of zero,
// above MaxSide or above MaxPixels in all (422, from the header alone),
// a PNG that does not decode whole (400), and text chunks that do not
// read (400).
func Check(data []byte) (Meta, error) {
	if len(data) > MaxBytes {
		return Meta{}, refuse(http.StatusRequestEntityTooLarge, "the PNG is %d bytes; at most %d (8 MiB) are accepted", len(data), MaxBytes)
	}
	if !bytes.HasPrefix(data, []byte(pngMagic)) {
		return Meta{}, refuse(http.StatusUnsupportedMediaType, "not a PNG file: only PNG images can be shared")
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return Meta{}, refuse(http.StatusBadRequest, "the PNG header does not read: %v", err)
	}
	w, h := cfg.Width, cfg.Height
	if w <= 0 || h <= 0 || w > MaxSide || h > MaxSide || int64(w)*int64(h) > MaxPixels {
		return Meta{}, refuse(http.StatusUnprocessableEntity, "the PNG declares %d×%d pixels; at most %d a side and %d in all are accepted", w, h, MaxSide, MaxPixels)
	}
	if _, err := png.Decode(bytes.NewReader(data)); err != nil {
		return Meta{}, refuse(http.StatusBadRequest, "the PNG does not decode: %v", err)
	}
	texts, err := pnginfo.Read(data)
	if err != nil {
		return Meta{}, refuse(http.StatusBadRequest, "the PNG's text chunks do not read: %v", err)
	}
	return Meta{ID: IDOf(data), Width: w, Height: h, Bytes: len(data), Parameters: cut(texts[pnginfo.Key], MaxParameters)}, nil
}

// DecodeImage decodes a stored PNG for the card, with the same limits as
// Check.
func DecodeImage(data []byte) (image.Image, error) {
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > MaxSide || cfg.Height > MaxSide || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, fmt.Errorf("stored image is %d×%d pixels", cfg.Width, cfg.Height)
	}
	return png.Decode(bytes.NewReader(data))
}

// cut shortens s to at most n bytes without splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// idLen is the length of a share id: 11 base32 characters, 55 bits.
const idLen = 11

var idPattern = regexp.MustCompile(`^[a-z2-7]{11}$`)

// IDOf returns the share id of a file: the first 55 bits of its sha256 in
// lower-case base32.
func IDOf(data []byte) string {
	sum := sha256.Sum256(data)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))[:idLen]
}

// ValidID reports whether s has the form of a share id.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// ImageKey, MetaKey and CardKey are the bucket keys of a share's PNG, its
// Meta and its card.
func ImageKey(id string) string { return "shares/" + id + ".png" }

// MetaKey is the bucket key of a share's Meta (JSON).
func MetaKey(id string) string { return "shares/" + id + ".json" }

// CardKey is the bucket key of a share's 1200×630 card.
func CardKey(id string) string { return "cards/" + id + ".png" }

// MarshalMeta encodes m as stored in the bucket.
func MarshalMeta(m Meta) ([]byte, error) { return json.Marshal(m) }

// UnmarshalMeta decodes a stored Meta and checks its id.
func UnmarshalMeta(data []byte) (Meta, error) {
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return Meta{}, fmt.Errorf("share metadata: %v", err)
	}
	if !ValidID(m.ID) {
		return Meta{}, fmt.Errorf("share metadata: bad id %q", m.ID)
	}
	return m, nil
}
