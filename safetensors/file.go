// Package safetensors reads and writes the safetensors checkpoint format
// (huggingface/safetensors, README.md and src/tensor.rs): an 8-byte
// little-endian header length N, an N-byte JSON header describing every
// tensor's dtype, shape and byte range, then the raw little-endian data.
//
// Reading needs only a ranged byte source, so the same code parses a local
// file, a byte slice, or a remote file read with HTTP Range requests: the
// header is read once, validated exactly as the reference reader validates
// it, and each tensor's bytes are read on demand. Sharded checkpoints
// (*.safetensors.index.json) and diffusers/transformers component folders
// are opened by Checkpoint.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tgate-web/tgate/tensor"
)

// RangeReader is a random-access byte source of known size: a local file,
// a byte slice, or a remote file read with HTTP Range requests.
type RangeReader interface {
	io.ReaderAt
	Size() int64
}

// Bytes returns a RangeReader over b (a *bytes.Reader).
func Bytes(b []byte) RangeReader { return bytes.NewReader(b) }

// osFile adapts an *os.File, whose size is taken once when adapted.
type osFile struct {
	*os.File
	size int64
}

func (f osFile) Size() int64 { return f.size }

// FromOSFile returns a RangeReader over f, sized by f.Stat. Closing the
// returned reader (it implements io.Closer) closes f.
func FromOSFile(f *os.File) (RangeReader, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return osFile{f, st.Size()}, nil
}

// Info describes one tensor of a file as its header declares it.
type Info struct {
	Name  string
	DType string       // the safetensors dtype string, e.g. "BF16", "F8_E4M3"
	Shape tensor.Shape // [] is a scalar
	// Begin and End are the header's data_offsets: the tensor's bytes are
	// [Begin, End) of the data section, which starts at DataStart.
	Begin, End int64
	// DataStart is the absolute file offset of the data section, so the
	// tensor occupies file bytes [DataStart+Begin, DataStart+End).
	DataStart int64
	// File is the path or name of the file holding the tensor.
	File string
}

// Bytes returns the tensor's size in bytes, End − Begin.
func (i Info) Bytes() int64 { return i.End - i.Begin }

// Numel returns the number of elements, prod(Shape).
func (i Info) Numel() int64 {
	n := int64(1)
	for _, d := range i.Shape {
		n *= int64(d)
	}
	return n
}

// TensorDType returns the tensor.DType of a dtype this project can decode
// (F32, F16, BF16, I64, I32), or an error naming the tensor and dtype.
func (i Info) TensorDType() (tensor.DType, error) {
	dt, err := tensor.ParseDType(i.DType)
	if err != nil {
		return 0, fmt.Errorf("safetensors: %stensor %q: %w", filePrefix(i.File), i.Name, err)
	}
	return dt, nil
}

func filePrefix(file string) string {
	if file == "" {
		return ""
	}
	return file + ": "
}

// File is one parsed safetensors file. Its methods may be called from
// several goroutines at once when the source's ReadAt allows it (os.File
// and bytes.Reader do).
type File struct {
	src      io.ReaderAt
	size     int64
	name     string
	headerN  int64
	metadata map[string]string
	infos    []Info // sorted by offsets
	index    map[string]int
}

// Parse reads and validates the header of a safetensors file of size bytes
// read through src, following the reference reader's checks in order: at
// least 8 bytes; header length ≤ MaxHeaderSize and within the file; a
// UTF-8 JSON object starting with '{' (trailing whitespace allowed); no
// repeated names; known dtype strings; tensors that, sorted by offsets,
// tile the data section from 0 with no hole or overlap, each spanning
// prod(shape) × dtype size bytes, the last ending at the end of the file.
// Only the 8-byte prefix and the header are read.
func Parse(src io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		if size == 0 {
			return nil, formatErr("", "file is empty")
		}
		return nil, formatErr("", "file is %d bytes, shorter than the 8-byte header length", size)
	}
	var pre [8]byte
	if err := readFull(src, pre[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: reading the header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(pre[:])
	if n > MaxHeaderSize {
		return nil, formatErr("", "header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, formatErr("", "header length %d is larger than the %d bytes after the length prefix", n, size-8)
	}
	h := make([]byte, n)
	if err := readFull(src, h, 8); err != nil {
		return nil, fmt.Errorf("safetensors: reading the %d-byte header: %w", n, err)
	}
	hdr, err := parseHeader(h)
	if err != nil {
		return nil, err
	}
	dataStart := 8 + int64(n)
	if err := layout(hdr.infos, size-dataStart); err != nil {
		return nil, err
	}
	f := &File{src: src, size: size, headerN: int64(n), metadata: hdr.metadata, infos: hdr.infos,
		index: make(map[string]int, len(hdr.infos))}
	for i := range f.infos {
		f.infos[i].DataStart = dataStart
		f.index[f.infos[i].Name] = i
	}
	return f, nil
}

// ParseReader parses the file read through r (see Parse).
func ParseReader(r RangeReader) (*File, error) { return Parse(r, r.Size()) }

// ParseBytes parses a whole file held in memory (see Parse).
func ParseBytes(b []byte) (*File, error) { return Parse(bytes.NewReader(b), int64(len(b))) }

// Open opens and parses the safetensors file at path. Errors name the
// path. The file stays open for tensor reads until Close.
func Open(path string) (*File, error) {
	osf, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	src, err := FromOSFile(osf)
	if err != nil {
		osf.Close()
		return nil, err
	}
	f, err := ParseReader(src)
	if err != nil {
		osf.Close()
		return nil, withFile(err, path)
	}
	f.SetName(path)
	return f, nil
}

// withFile records the file name in a FormatError, or prefixes another
// error with it.
func withFile(err error, name string) error {
	var fe *FormatError
	if errors.As(err, &fe) {
		if fe.File == "" {
			c := *fe
			c.File = name
			return &c
		}
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// SetName records the path or name reported in errors and in Info.File.
func (f *File) SetName(name string) {
	f.name = name
	for i := range f.infos {
		f.infos[i].File = name
	}
}

// Name returns the path or name given by Open or SetName.
func (f *File) Name() string { return f.name }

// Close closes the underlying source when it is an io.Closer.
func (f *File) Close() error {
	if c, ok := f.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Source returns the byte source the file was parsed from.
func (f *File) Source() io.ReaderAt { return f.src }

// Size returns the file size in bytes.
func (f *File) Size() int64 { return f.size }

// HeaderLen returns N, the header length from the 8-byte prefix.
func (f *File) HeaderLen() int64 { return f.headerN }

// DataStart returns the file offset of the data section, 8 + N.
func (f *File) DataStart() int64 { return 8 + f.headerN }

// Metadata returns the "__metadata__" map (nil when absent).
func (f *File) Metadata() map[string]string { return f.metadata }

// Len returns the number of tensors.
func (f *File) Len() int { return len(f.infos) }

// Names returns the tensor names in file order (sorted by offsets).
func (f *File) Names() []string {
	out := make([]string, len(f.infos))
	for i := range f.infos {
		out[i] = f.infos[i].Name
	}
	return out
}

// Infos returns every tensor's description in file order.
func (f *File) Infos() []Info { return cloneInfos(f.infos) }

func cloneInfos(in []Info) []Info {
	out := make([]Info, len(in))
	for i, x := range in {
		x.Shape = x.Shape.Clone()
		out[i] = x
	}
	return out
}

// Info returns the description of the named tensor.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.index[name]
	if !ok {
		return Info{}, false
	}
	info := f.infos[i]
	info.Shape = info.Shape.Clone()
	return info, true
}

func (f *File) notFound(name string) error {
	return fmt.Errorf("safetensors: %stensor %q not found", filePrefix(f.name), name)
}

// ReadBytes reads the named tensor's stored bytes, whatever its dtype,
// reading only that tensor's range of the file.
func (f *File) ReadBytes(name string) ([]byte, error) {
	i, ok := f.index[name]
	if !ok {
		return nil, f.notFound(name)
	}
	t := &f.infos[i]
	b := make([]byte, t.Bytes())
	if err := readFull(f.src, b, t.DataStart+t.Begin); err != nil {
		return nil, fmt.Errorf("safetensors: %stensor %q: reading %d bytes at offset %d: %w",
			filePrefix(f.name), name, len(b), t.DataStart+t.Begin, err)
	}
	return b, nil
}

// ReadRaw reads the named tensor in its stored encoding. Its dtype must be
// one tensor.DType supports (F32, F16, BF16, I64, I32).
func (f *File) ReadRaw(name string) (*tensor.Raw, error) {
	info, ok := f.Info(name)
	if !ok {
		return nil, f.notFound(name)
	}
	dt, err := info.TensorDType()
	if err != nil {
		return nil, err
	}
	b, err := f.ReadBytes(name)
	if err != nil {
		return nil, err
	}
	return &tensor.Raw{DType: dt, Shape: info.Shape, Bytes: b}, nil
}

// ReadFloat32 reads the named tensor and widens it to float32 (integers
// are converted by value).
func (f *File) ReadFloat32(name string) (*tensor.Host, error) { return readFloat32(f, name) }

func readFloat32(s interface {
	ReadRaw(string) (*tensor.Raw, error)
}, name string) (*tensor.Host, error) {
	r, err := s.ReadRaw(name)
	if err != nil {
		return nil, err
	}
	return r.Float32()
}

// readFull fills p from src at off. A ReaderAt may report io.EOF together
// with a full read at the end of its data; that counts as success.
func readFull(src io.ReaderAt, p []byte, off int64) error {
	n, err := src.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
