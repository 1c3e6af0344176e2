package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/tgate-web/tgate/tensor"
)

// Named is a tensor to write under a name.
type Named struct {
	Name string
	*tensor.Raw
}

// FromHost encodes a float32 host tensor in dtype dt (F32, F16 or BF16,
// rounding to nearest even) for writing under name.
func FromHost(name string, h *tensor.Host, dt tensor.DType) Named {
	b := make([]byte, len(h.Data)*dt.Size())
	tensor.EncodeFloat32(b, h.Data, dt)
	return Named{Name: name, Raw: &tensor.Raw{DType: dt, Shape: h.Shape.Clone(), Bytes: b}}
}

// order returns the tensors in the reference writer's order (safetensors
// src/tensor.rs, prepare): by dtype descending in the reference Dtype enum
// order, which groups by alignment (8-byte, then 4, then 2 with BF16
// before F16), then by name.
func order(tensors []Named) []Named {
	out := append([]Named(nil), tensors...)
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := dtypeRank(out[i].DType), dtypeRank(out[j].DType)
		if ri != rj {
			return ri > rj
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// buildHeader builds the padded JSON header the reference writer produces:
// compact, "__metadata__" first when metadata is non-nil (its keys
// sorted), then each tensor in write order, right-padded with spaces to a
// multiple of 8 bytes.
func buildHeader(metadata map[string]string, ordered []Named) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	comma := func() {
		if !first {
			b.WriteByte(',')
		}
		first = false
	}
	if metadata != nil {
		comma()
		b.WriteString(`"__metadata__":{`)
		keys := make([]string, 0, len(metadata))
		for k, v := range metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("safetensors: metadata entry %q is not valid UTF-8", k)
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, metadata[k])
		}
		b.WriteByte('}')
	}
	var offset int64
	seen := map[string]bool{}
	for _, t := range ordered {
		if t.Name == "__metadata__" {
			return nil, fmt.Errorf("safetensors: %q is reserved and cannot name a tensor", t.Name)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("safetensors: tensor %q is given more than once", t.Name)
		}
		seen[t.Name] = true
		if !utf8.ValidString(t.Name) {
			return nil, fmt.Errorf("safetensors: tensor name %q is not valid UTF-8", t.Name)
		}
		if _, err := tensor.ParseDType(t.DType.String()); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %v", t.Name, err)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("safetensors: tensor %q has negative dimension in shape %v", t.Name, t.Shape)
			}
		}
		if want := t.Shape.Numel() * t.DType.Size(); len(t.Bytes) != want {
			return nil, fmt.Errorf("safetensors: tensor %q: %d bytes for %v %v (want %d)", t.Name, len(t.Bytes), t.DType, t.Shape, want)
		}
		comma()
		writeJSONString(&b, t.Name)
		b.WriteString(`:{"dtype":"`)
		b.WriteString(t.DType.String())
		b.WriteString(`","shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		end := offset + int64(len(t.Bytes))
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes(), nil
}

// writeJSONString writes s as serde_json does: only '"', '\\' and control
// characters are escaped (\b \f \n \r \t, others as \u00XX in lowercase
// hex); other characters, '<', '>', '&' and non-ASCII included, are
// written as they are.
func writeJSONString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// Write writes tensors as a safetensors file in the reference writer's
// layout: the 8-byte little-endian header length, the header (see
// buildHeader), then each tensor's bytes in the same order. metadata may
// be nil (no "__metadata__" entry). Names must be unique and each tensor's
// byte count must match its dtype and shape.
func Write(w io.Writer, metadata map[string]string, tensors []Named) error {
	for _, t := range tensors {
		if t.Raw == nil {
			return fmt.Errorf("safetensors: tensor %q has no data", t.Name)
		}
	}
	ordered := order(tensors)
	h, err := buildHeader(metadata, ordered)
	if err != nil {
		return err
	}
	var pre [8]byte
	binary.LittleEndian.PutUint64(pre[:], uint64(len(h)))
	if _, err := w.Write(pre[:]); err != nil {
		return err
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	for _, t := range ordered {
		if _, err := w.Write(t.Bytes); err != nil {
			return err
		}
	}
	return nil
}

// Marshal returns the bytes Write would write.
func Marshal(metadata map[string]string, tensors []Named) ([]byte, error) {
	var b bytes.Buffer
	if err := Write(&b, metadata, tensors); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteFile writes tensors to a new file at path (see Write).
func WriteFile(path string, metadata map[string]string, tensors []Named) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := Write(bw, metadata, tensors); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
