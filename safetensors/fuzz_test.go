package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/tgate-web/tgate/tensor"
)

// FuzzParse feeds arbitrary bytes to the parser. It must never panic, and
// every accepted file must satisfy the format's invariants: tensors tile
// the data section in Names() order, every range lies inside the file and
// reads back, the header is JSON that encoding/json agrees lists the same
// number of tensors, and decodable files survive a write/parse round trip.
func FuzzParse(f *testing.F) {
	golden := append(append([]byte{64, 0, 0, 0, 0, 0, 0, 0}, `{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`...),
		f32Bytes(0, 1, 2, 3, 4, 5)...)
	f.Add(golden)
	for i := 0; i < len(golden); i += 7 {
		f.Add(golden[:i])
	}
	mixed, _ := Marshal(map[string]string{"format": "pt"}, []Named{
		{"a", &tensor.Raw{DType: tensor.BF16, Shape: tensor.Shape{2}, Bytes: []byte{1, 2, 3, 4}}},
		{"b", &tensor.Raw{DType: tensor.I64, Shape: tensor.Shape{}, Bytes: make([]byte, 8)}},
		{"c", &tensor.Raw{DType: tensor.F16, Shape: tensor.Shape{0, 3}, Bytes: nil}},
	})
	f.Add(mixed)
	f.Add(file(`{"e":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"q":{"dtype":"F4","shape":[2],"data_offsets":[3,4]}}`, []byte{1, 2, 3, 4}))
	f.Add(file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)))
	f.Add(file(`{"__metadata__":null}   `, nil))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	// The first kilobyte of real files: headers cut short.
	for _, p := range []string{"assets/taesd/bf16_comfyui_fork/taesd_decoder.safetensors", "golden/sd15_tiny_pipeline/unet/io.safetensors"} {
		if b, err := os.ReadFile(shared(f, p)); err == nil {
			f.Add(b[:1024])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseBytes(data)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || err.Error() == "" {
				t.Fatalf("error is not a FormatError: %v", err)
			}
			return
		}
		checkInvariants(t, st, data)
	})
}

func checkInvariants(t *testing.T, st *File, data []byte) {
	size := int64(len(data))
	if st.HeaderLen() > MaxHeaderSize || st.DataStart() > size || st.Size() != size {
		t.Fatalf("header length %d, data start %d, size %d", st.HeaderLen(), st.DataStart(), size)
	}
	hdr := data[8:st.DataStart()]
	if !json.Valid(hdr) {
		t.Fatalf("accepted a header encoding/json rejects: %q", hdr)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &m); err != nil {
		t.Fatalf("accepted header is not a JSON object: %v", err)
	}
	_, hasMeta := m["__metadata__"]
	if n := len(m); hasMeta && n-1 != st.Len() || !hasMeta && n != st.Len() {
		t.Fatalf("%d tensors parsed, encoding/json sees %d keys", st.Len(), n)
	}
	next := int64(0)
	decodable := true
	var named []Named
	for _, name := range st.Names() {
		info, ok := st.Info(name)
		if !ok || info.Name != name {
			t.Fatalf("Info(%q) missing", name)
		}
		if info.Begin != next || info.End < info.Begin || info.DataStart != st.DataStart() || info.DataStart+info.End > size {
			t.Fatalf("%q: [%d,%d] after %d, data at %d of %d", name, info.Begin, info.End, next, info.DataStart, size)
		}
		next = info.End
		want, err := byteSize(&info)
		if err != nil || want != info.Bytes() {
			t.Fatalf("%q: %d bytes for %s %v (%v)", name, info.Bytes(), info.DType, info.Shape, err)
		}
		b, err := st.ReadBytes(name)
		if err != nil || !bytes.Equal(b, data[info.DataStart+info.Begin:info.DataStart+info.End]) {
			t.Fatalf("%q: ReadBytes = %v", name, err)
		}
		dt, err := tensor.ParseDType(info.DType)
		if err != nil {
			decodable = false
			continue
		}
		named = append(named, Named{Name: name, Raw: &tensor.Raw{DType: dt, Shape: info.Shape, Bytes: b}})
	}
	if next != size-st.DataStart() {
		t.Fatalf("tensors end at %d, data holds %d", next, size-st.DataStart())
	}
	if !decodable {
		return
	}
	out, err := Marshal(st.Metadata(), named)
	if err != nil {
		t.Fatalf("re-writing an accepted file: %v", err)
	}
	again, err := ParseBytes(out)
	if err != nil {
		t.Fatalf("re-written file rejected: %v", err)
	}
	if again.Len() != st.Len() || len(again.Metadata()) != len(st.Metadata()) {
		t.Fatalf("round trip: %d tensors %d metadata, want %d %d", again.Len(), len(again.Metadata()), st.Len(), len(st.Metadata()))
	}
	for k, v := range st.Metadata() {
		if again.Metadata()[k] != v {
			t.Fatalf("metadata %q: %q became %q", k, v, again.Metadata()[k])
		}
	}
	for _, x := range named {
		info, ok := again.Info(x.Name)
		b, err := again.ReadBytes(x.Name)
		if !ok || err != nil || info.DType != x.DType.String() || !info.Shape.Equal(x.Shape) || !bytes.Equal(b, x.Bytes) {
			t.Fatalf("round trip of %q: %+v %v", x.Name, info, err)
		}
	}
}
