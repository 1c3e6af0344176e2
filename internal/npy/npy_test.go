package npy

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/tensor"
)

// TestReadGoldenInput reads a .npy file written by NumPy and checks every
// value against the formula tae_goldens.json gives for it:
// latent[0,c,h,w] = 2·sin(0.37c + 0.71h + 1.13w), computed in float64 and
// cast to float32.
func TestReadGoldenInput(t *testing.T) {
	path := filepath.Join(golden.Dir(t, "assets", "goldens"), "taesd3_decoder_bf16_input.npy")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	x, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if !x.Shape.Equal(tensor.Shape{1, 16, 8, 8}) {
		t.Fatalf("shape %v, want [1,16,8,8]", x.Shape)
	}
	i := 0
	for c := 0; c < 16; c++ {
		for h := 0; h < 8; h++ {
			for w := 0; w < 8; w++ {
				want := float32(2 * math.Sin(0.37*float64(c)+0.71*float64(h)+1.13*float64(w)))
				if x.Data[i] != want {
					t.Fatalf("element [0,%d,%d,%d] = %v, want %v", c, h, w, x.Data[i], want)
				}
				i++
			}
		}
	}
}

// TestWriteMatchesNumPy re-writes NumPy-written files and expects the same
// bytes: the header layout (dict text, padding to 64, newline) and the data.
func TestWriteMatchesNumPy(t *testing.T) {
	dir := golden.Dir(t, "assets", "goldens")
	for _, name := range []string{"taesd_decoder_bf16_input.npy", "taesd_encoder_bf16_input.npy"} {
		orig, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		x, err := Read(bytes.NewReader(orig))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var buf bytes.Buffer
		if err := Write(&buf, x); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), orig) {
			n := min(buf.Len(), len(orig), 128)
			t.Errorf("%s: rewritten file differs from NumPy's (%d vs %d bytes)\n got %q\nwant %q",
				name, buf.Len(), len(orig), buf.Bytes()[:n], orig[:n])
		}
	}
}

func TestRoundTripShapes(t *testing.T) {
	for _, shape := range []tensor.Shape{{}, {5}, {2, 3}, {1, 1, 1, 1, 1}, {0, 3}} {
		x := tensor.New(shape...)
		for i := range x.Data {
			x.Data[i] = float32(i)*0.25 - 1
		}
		var buf bytes.Buffer
		if err := Write(&buf, x); err != nil {
			t.Fatal(err)
		}
		if (buf.Len()-4*len(x.Data))%64 != 0 {
			t.Errorf("shape %v: data starts at %d, not a multiple of 64", shape, buf.Len()-4*len(x.Data))
		}
		y, err := Read(&buf)
		if err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		if !y.Shape.Equal(shape) {
			t.Fatalf("shape %v read back as %v", shape, y.Shape)
		}
		for i := range x.Data {
			if x.Data[i] != y.Data[i] {
				t.Fatalf("shape %v: element %d = %v, want %v", shape, i, y.Data[i], x.Data[i])
			}
		}
	}
}

// build makes a .npy file with the given version, header dict and data.
func build(major byte, dict string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString(magic)
	b.Write([]byte{major, 0})
	hdr := dict + "\n"
	if major == 1 {
		var n [2]byte
		binary.LittleEndian.PutUint16(n[:], uint16(len(hdr)))
		b.Write(n[:])
	} else {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(hdr)))
		b.Write(n[:])
	}
	b.WriteString(hdr)
	b.Write(data)
	return b.Bytes()
}

func TestReadOtherDTypes(t *testing.T) {
	// '<f8' [3] = {1.5, -2, 1e-3}, version 2.0 header with double quotes.
	d8 := make([]byte, 24)
	for i, v := range []float64{1.5, -2, 1e-3} {
		binary.LittleEndian.PutUint64(d8[8*i:], math.Float64bits(v))
	}
	x, err := Read(bytes.NewReader(build(2, `{"descr": "<f8", "fortran_order": False, "shape": (3,)}`, d8)))
	if err != nil {
		t.Fatal(err)
	}
	if x.Data[0] != 1.5 || x.Data[1] != -2 || x.Data[2] != float32(1e-3) {
		t.Errorf("f8 values %v", x.Data)
	}
	// '<f2' [2] = {1, -0.5}: 0x3C00, 0xB800.
	d2 := []byte{0x00, 0x3C, 0x00, 0xB8}
	x, err = Read(bytes.NewReader(build(1, `{'descr': '<f2', 'fortran_order': False, 'shape': (1, 2), }`, d2)))
	if err != nil {
		t.Fatal(err)
	}
	if !x.Shape.Equal(tensor.Shape{1, 2}) || x.Data[0] != 1 || x.Data[1] != -0.5 {
		t.Errorf("f2: shape %v values %v", x.Shape, x.Data)
	}
}

func TestReadErrors(t *testing.T) {
	f4 := make([]byte, 16)
	cases := []struct {
		name, want string
		file       []byte
	}{
		{"magic", "not a .npy file", []byte("PK\x03\x04 this is a zip file")},
		{"version", "unsupported format version", append([]byte(magic), 9, 0, 0, 0)},
		{"fortran", "Fortran order", build(1, `{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }`, f4)},
		{"big endian", `dtype ">f4"`, build(1, `{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }`, f4)},
		{"int", `dtype "<i8"`, build(1, `{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }`, f4)},
		{"truncated data", "reading 8 elements", build(1, `{'descr': '<f4', 'fortran_order': False, 'shape': (8,), }`, f4)},
		{"missing key", `missing key "shape"`, build(1, `{'descr': '<f4', 'fortran_order': False}`, f4)},
		{"bad shape", "expected a dimension", build(1, `{'descr': '<f4', 'fortran_order': False, 'shape': (a,), }`, f4)},
		{"truncated header", "reading the 118-byte header", []byte(magic + "\x01\x00v\x00{'descr'")},
		{"huge", "more than", build(1, `{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }`, f4)},
	}
	for _, c := range cases {
		_, err := Read(bytes.NewReader(c.file))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
	}
}
