// Package npy reads and writes NumPy's .npy array files (format versions
// 1.0, 2.0 and 3.0, as specified in numpy/lib/format.py) holding
// little-endian floating-point arrays in C order.
//
// Read accepts '<f4', '<f2' and '<f8' arrays and returns them as float32
// (float64 values are rounded to the nearest float32); Write always writes a
// version 1.0 '<f4' file. Latent tensors passed between the command-line
// tool and NumPy use this format.
package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/tgate-web/tgate/tensor"
)

// magic starts every .npy file.
const magic = "\x93NUMPY"

// maxHeader bounds the header length we accept, so a corrupt length field
// cannot make Read allocate gigabytes. NumPy itself refuses headers over
// 10,000 bytes unless told otherwise.
const maxHeader = 1 << 20

// maxElements bounds the element count read from a header (4 GiB of f32).
const maxElements = 1 << 30

// Header is the parsed dictionary of a .npy file.
type Header struct {
	Descr        string // dtype string, e.g. "<f4"
	FortranOrder bool
	Shape        []int
}

// ReadHeader reads the magic string, version and header dictionary from r,
// leaving r at the start of the array data.
func ReadHeader(r io.Reader) (*Header, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("npy: reading the magic string: %w", err)
	}
	if string(pre[:6]) != magic {
		return nil, fmt.Errorf("npy: not a .npy file (magic %q, want %q)", pre[:6], magic)
	}
	major, minor := pre[6], pre[7]
	var hlen int
	switch major {
	case 1:
		var n [2]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return nil, fmt.Errorf("npy: reading the header length: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint16(n[:]))
	case 2, 3:
		var n [4]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return nil, fmt.Errorf("npy: reading the header length: %w", err)
		}
		v := binary.LittleEndian.Uint32(n[:])
		if v > maxHeader {
			return nil, fmt.Errorf("npy: header length %d exceeds the %d-byte limit", v, maxHeader)
		}
		hlen = int(v)
	default:
		return nil, fmt.Errorf("npy: unsupported format version %d.%d (supported: 1.0, 2.0, 3.0)", major, minor)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, fmt.Errorf("npy: reading the %d-byte header: %w", hlen, err)
	}
	h, err := parseHeader(string(hb))
	if err != nil {
		return nil, fmt.Errorf("npy: header %q: %w", strings.TrimSpace(string(hb)), err)
	}
	return h, nil
}

// Read reads a whole .npy array from r as a float32 host tensor. The array
// must be in C order with dtype '<f4', '<f2' or '<f8' ('=' and '|' byte
// orders are not accepted for multi-byte types: the file must say little
// endian).
func Read(r io.Reader) (*tensor.Host, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	if h.FortranOrder {
		return nil, fmt.Errorf("npy: array of shape %v is in Fortran order; only C order is supported", h.Shape)
	}
	var size int
	switch h.Descr {
	case "<f4":
		size = 4
	case "<f2":
		size = 2
	case "<f8":
		size = 8
	default:
		return nil, fmt.Errorf("npy: dtype %q is not supported (want little-endian float: '<f4', '<f2' or '<f8')", h.Descr)
	}
	n := 1
	for _, d := range h.Shape {
		if d < 0 {
			return nil, fmt.Errorf("npy: negative dimension in shape %v", h.Shape)
		}
		if d > 0 && n > maxElements/d {
			return nil, fmt.Errorf("npy: shape %v has more than %d elements", h.Shape, maxElements)
		}
		n *= d
	}
	buf := make([]byte, n*size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("npy: reading %d elements of %s for shape %v: %w", n, h.Descr, h.Shape, err)
	}
	out := tensor.New(h.Shape...)
	switch size {
	case 4:
		tensor.DecodeFloat32(out.Data, buf, tensor.F32)
	case 2:
		tensor.DecodeFloat32(out.Data, buf, tensor.F16)
	case 8:
		for i := range out.Data {
			out.Data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:])))
		}
	}
	return out, nil
}

// Write writes t to w as a version 1.0 .npy file with dtype '<f4' in C
// order. The header is padded with spaces so that the data starts at a
// multiple of 64 bytes, as NumPy ≥ 1.14 writes it.
func Write(w io.Writer, t *tensor.Host) error {
	if t == nil {
		return errors.New("npy: Write of a nil tensor")
	}
	if t.Shape.Numel() != len(t.Data) {
		return fmt.Errorf("npy: tensor has %d values for shape %v", len(t.Data), t.Shape)
	}
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = strconv.Itoa(d)
	}
	shape := "(" + strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	shape += ")"
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape)
	// magic(6) + version(2) + length(2) + dict + padding + '\n' ≡ 0 mod 64.
	total := 10 + len(dict) + 1
	pad := (64 - total%64) % 64
	hlen := len(dict) + pad + 1
	if hlen > math.MaxUint16 {
		return fmt.Errorf("npy: header for shape %v is too long for format 1.0", t.Shape)
	}
	var hdr bytes.Buffer
	hdr.WriteString(magic)
	hdr.Write([]byte{1, 0})
	var n [2]byte
	binary.LittleEndian.PutUint16(n[:], uint16(hlen))
	hdr.Write(n[:])
	hdr.WriteString(dict)
	hdr.WriteString(strings.Repeat(" ", pad))
	hdr.WriteByte('\n')
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("npy: writing the header: %w", err)
	}
	data := make([]byte, 4*len(t.Data))
	tensor.EncodeFloat32(data, t.Data, tensor.F32)
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("npy: writing %d values: %w", len(t.Data), err)
	}
	return nil
}
