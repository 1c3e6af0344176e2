package safetensors

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/tensor"
)

func TestAddVariant(t *testing.T) {
	for _, c := range [][3]string{
		{"diffusion_pytorch_model.safetensors", "fp16", "diffusion_pytorch_model.fp16.safetensors"},
		{"model.safetensors", "fp16", "model.fp16.safetensors"},
		{"diffusion_pytorch_model.safetensors.index.json", "fp16", "diffusion_pytorch_model.safetensors.index.fp16.json"},
		{"model.safetensors.index.json", "bf16", "model.safetensors.index.bf16.json"},
		{"model.safetensors", "", "model.safetensors"},
	} {
		if got := AddVariant(c[0], c[1]); got != c[2] {
			t.Errorf("AddVariant(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

func rawF32(shape tensor.Shape, start float32) *tensor.Raw {
	h := tensor.New(shape...)
	for i := range h.Data {
		h.Data[i] = start + float32(i)
	}
	return FromHost("", h, tensor.F32).Raw
}

// writeSharded writes a two-shard diffusers checkpoint with the given
// variant into dir and returns its index name.
func writeSharded(t *testing.T, dir, variant string) string {
	t.Helper()
	stem := AddVariant("diffusion_pytorch_model", variant)
	s1, s2 := stem+"-00001-of-00002.safetensors", stem+"-00002-of-00002.safetensors"
	if variant != "" {
		s1 = "diffusion_pytorch_model." + variant + "-00001-of-00002.safetensors"
		s2 = "diffusion_pytorch_model." + variant + "-00002-of-00002.safetensors"
	}
	must(t, WriteFile(filepath.Join(dir, s1), map[string]string{"format": "pt"},
		[]Named{{"conv_in.weight", rawF32(tensor.Shape{2, 1, 1, 1}, 10)}, {"conv_in.bias", rawF32(tensor.Shape{2}, 20)}}))
	must(t, WriteFile(filepath.Join(dir, s2), map[string]string{"format": "pt"},
		[]Named{{"conv_out.weight", rawF32(tensor.Shape{1, 2, 1, 1}, 30)}}))
	index := AddVariant("diffusion_pytorch_model.safetensors.index.json", variant)
	writeJSON(t, filepath.Join(dir, index), `{"metadata":{"total_size":28},"weight_map":{`+
		`"conv_in.bias":"`+s1+`","conv_in.weight":"`+s1+`","conv_out.weight":"`+s2+`"}}`)
	return index
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path, s string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(s), 0o644))
}

func TestShardedCheckpoint(t *testing.T) {
	for _, variant := range []string{"", "fp16"} {
		dir := t.TempDir()
		index := writeSharded(t, dir, variant)
		// Files that are not weights must be ignored.
		must(t, WriteFile(filepath.Join(dir, "io.safetensors"), nil, []Named{{"t981.in.sample", rawF32(tensor.Shape{1}, 0)}}))
		c, err := OpenDir(dir, variant)
		if err != nil {
			t.Fatalf("variant %q: %v", variant, err)
		}
		want := []string{"conv_in.bias", "conv_in.weight", "conv_out.weight"}
		if got := strings.Join(c.Names(), " "); got != strings.Join(want, " ") {
			t.Errorf("variant %q: Names() = %s, want %s", variant, got, strings.Join(want, " "))
		}
		if _, ok := c.Info("t981.in.sample"); ok {
			t.Error("io.safetensors was read as weights")
		}
		info, ok := c.Info("conv_out.weight")
		if !ok || !strings.HasSuffix(info.File, "-00002-of-00002.safetensors") || filepath.Dir(info.File) != dir {
			t.Errorf("Info(conv_out.weight).File = %q", info.File)
		}
		h, err := c.ReadFloat32("conv_out.weight")
		if err != nil || len(h.Data) != 2 || h.Data[0] != 30 || h.Data[1] != 31 {
			t.Errorf("conv_out.weight = %v, %v", h, err)
		}
		if _, err := c.ReadRaw("missing"); err == nil || !strings.Contains(err.Error(), `"missing" not found`) {
			t.Errorf("missing tensor: %v", err)
		}
		must(t, c.Close())
		// The index opens directly too.
		c2, err := OpenPath(filepath.Join(dir, index))
		if err != nil || c2.Len() != 3 || len(c2.Files()) != 2 {
			t.Fatalf("OpenPath(index): %v", err)
		}
		c2.Close()
	}
}

func TestOpenDirChoosesCandidates(t *testing.T) {
	dir := t.TempDir()
	// Only a variant file and an unrelated safetensors file: the plain
	// lookup must not fall back to either.
	must(t, WriteFile(filepath.Join(dir, "model.fp16.safetensors"), nil, []Named{{"w", rawF32(tensor.Shape{1}, 5)}}))
	must(t, WriteFile(filepath.Join(dir, "io.safetensors"), nil, []Named{{"x", rawF32(tensor.Shape{1}, 0)}}))
	_, err := OpenDir(dir, "")
	if !errors.Is(err, ErrNoWeights) || !strings.Contains(err.Error(), "diffusion_pytorch_model.safetensors, diffusion_pytorch_model.safetensors.index.json, model.safetensors, model.safetensors.index.json") {
		t.Errorf("plain lookup: %v", err)
	}
	c, err := OpenDir(dir, "fp16")
	if err != nil || c.Len() != 1 {
		t.Fatalf("fp16 lookup: %v", err)
	}
	c.Close()
	// diffusers' name wins over transformers' when both exist.
	must(t, WriteFile(filepath.Join(dir, "model.safetensors"), nil, []Named{{"m", rawF32(tensor.Shape{1}, 0)}}))
	must(t, WriteFile(filepath.Join(dir, "diffusion_pytorch_model.safetensors"), nil, []Named{{"d", rawF32(tensor.Shape{1}, 0)}}))
	c, err = OpenDir(dir, "")
	if err != nil || strings.Join(c.Names(), ",") != "d" {
		t.Fatalf("preference: %v %v", c, err)
	}
	c.Close()
	got, ok := Locate(func(n string) bool { return n == "model.safetensors.index.fp16.json" }, "fp16")
	if !ok || got.Name != "model.safetensors.index.fp16.json" || !got.Sharded {
		t.Errorf("Locate = %+v, %v", got, ok)
	}
}

// TestMissingShard opens the real SD3 text_encoder_3 shard indexes, whose
// shards are not present: the error must name the missing file.
func TestMissingShard(t *testing.T) {
	dir := shared(t, "assets", "configs", "stabilityai", "stable-diffusion-3-medium-diffusers", "text_encoder_3")
	for _, c := range []struct{ variant, shard string }{
		{"", "model-00001-of-00002.safetensors"},
		{"fp16", "model.fp16-00001-of-00002.safetensors"},
	} {
		_, err := OpenDir(dir, c.variant)
		if err == nil {
			t.Fatalf("variant %q: opened an index whose shards are missing", c.variant)
		}
		msg := err.Error()
		if !strings.Contains(msg, c.shard) || !strings.Contains(msg, "does not exist") ||
			!strings.Contains(msg, AddVariant("model.safetensors.index.json", c.variant)) {
			t.Errorf("variant %q: error %q does not name the index and the missing %s", c.variant, msg, c.shard)
		}
	}
	// The index itself parses: 219 tensors over 2 shards.
	data, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	must(t, err)
	ix, err := ParseIndex(data)
	if err != nil || len(ix.WeightMap) != 219 || len(ix.Shards()) != 2 || ix.TotalSize != 9524621312 {
		t.Errorf("ParseIndex: %v (%d tensors, shards %v, total %d)", err, len(ix.WeightMap), ix.Shards(), ix.TotalSize)
	}
}

func TestBadIndexes(t *testing.T) {
	dir := t.TempDir()
	writeSharded(t, dir, "")
	s1 := "diffusion_pytorch_model-00001-of-00002.safetensors"
	s2 := "diffusion_pytorch_model-00002-of-00002.safetensors"
	for _, c := range []struct{ name, index, want string }{
		{"tensor not in its shard", `{"weight_map":{"conv_in.bias":"` + s2 + `","conv_out.weight":"` + s2 + `"}}`,
			`tensor "conv_in.bias": weight_map places it in ` + s2 + `, which does not contain it`},
		{"missing shard", `{"weight_map":{"a":"nowhere.safetensors"}}`, "shard " + filepath.Join(dir, "nowhere.safetensors") + " named in weight_map does not exist"},
		{"duplicate tensor", `{"weight_map":{"a":"` + s1 + `","a":"` + s2 + `"}}`, `tensor "a": weight_map lists this tensor more than once`},
		{"path in shard name", `{"weight_map":{"a":"../x.safetensors"}}`, `shard "../x.safetensors" is not a plain file name`},
		{"no weight_map", `{"metadata":{}}`, "index has no weight_map"},
		{"empty weight_map", `{"weight_map":{}}`, "weight_map is empty"},
		{"shard not a string", `{"weight_map":{"a":1}}`, `tensor "a": weight_map value must be a shard file name, found the number 1`},
		{"not json", `{"weight_map":`, "header JSON ends early"},
		{"not an object", `[]`, "the index must be an object, found an array"},
		{"bad total_size", `{"metadata":{"total_size":-4},"weight_map":{"a":"b"}}`, "metadata.total_size must hold non-negative integers"},
	} {
		path := filepath.Join(dir, "bad.safetensors.index.json")
		writeJSON(t, path, c.index)
		_, err := OpenIndex(path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want it to name %s and %q", c.name, err, path, c.want)
		}
	}
	// A tensor stored in two shards.
	must(t, WriteFile(filepath.Join(dir, "dup.safetensors"), nil, []Named{{"conv_in.bias", rawF32(tensor.Shape{2}, 0)}}))
	path := filepath.Join(dir, "dup.safetensors.index.json")
	writeJSON(t, path, `{"weight_map":{"conv_in.weight":"`+s1+`","conv_in.bias":"dup.safetensors"}}`)
	if _, err := OpenIndex(path); err == nil || !strings.Contains(err.Error(), `tensor "conv_in.bias": also stored in shard`) {
		t.Errorf("tensor in two shards: %v", err)
	}
	// A malformed shard is reported by its path.
	bad := filepath.Join(dir, "trunc.safetensors")
	must(t, os.WriteFile(bad, []byte{1, 2, 3}, 0o644))
	writeJSON(t, path, `{"weight_map":{"x":"trunc.safetensors"}}`)
	if _, err := OpenIndex(path); err == nil || !strings.Contains(err.Error(), bad+": file is 3 bytes") {
		t.Errorf("truncated shard: %v", err)
	}
}

func TestSingle(t *testing.T) {
	b, err := Marshal(nil, []Named{{"a", rawF32(tensor.Shape{3}, 1)}})
	must(t, err)
	f, err := ParseBytes(b)
	must(t, err)
	var s Store = Single(f)
	h, err := s.ReadFloat32("a")
	if err != nil || h.Data[2] != 3 {
		t.Errorf("Single: %v %v", h, err)
	}
}
