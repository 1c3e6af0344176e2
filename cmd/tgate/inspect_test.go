package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

func runInspectCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = inspect(args, &o, &e)
	return code, o.String(), e.String()
}

// headerEntries decodes a file's header with encoding/json.
func headerEntries(t *testing.T, path string) map[string]struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
} {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "__metadata__")
	out := map[string]struct {
		DType       string   `json:"dtype"`
		Shape       []int    `json:"shape"`
		DataOffsets [2]int64 `json:"data_offsets"`
	}{}
	for k, v := range m {
		e := out[k]
		if err := json.Unmarshal(v, &e); err != nil {
			t.Fatal(err)
		}
		out[k] = e
	}
	return out
}

func shapeString(s []int) string {
	p := make([]string, len(s))
	for i, d := range s {
		p[i] = strconv.Itoa(d)
	}
	return "[" + strings.Join(p, ",") + "]"
}

// TestInspectTAESD lists the real TAESD decoder: 67 BF16 tensors, each
// line checked against the header decoded with encoding/json.
func TestInspectTAESD(t *testing.T) {
	path := golden.Dir(t, "assets", "taesd", "bf16_comfyui_fork", "taesd_decoder.safetensors")
	code, out, errOut := runInspectCmd(path)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	want := headerEntries(t, path)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 67+2 {
		t.Fatalf("%d lines, want a heading, 67 tensors and a total", len(lines))
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "NAME DTYPE SHAPE BYTES" {
		t.Errorf("heading %q", lines[0])
	}
	var params, total int64
	seen := map[string]bool{}
	for _, l := range lines[1:68] {
		f := strings.Fields(l)
		if len(f) != 4 {
			t.Fatalf("line %q", l)
		}
		e, ok := want[f[0]]
		if !ok || seen[f[0]] {
			t.Fatalf("line %q names an unknown or repeated tensor", l)
		}
		seen[f[0]] = true
		n := int64(1)
		for _, d := range e.Shape {
			n *= int64(d)
		}
		params += n
		total += e.DataOffsets[1] - e.DataOffsets[0]
		wantLine := fmt.Sprintf("%s %s %s %d", f[0], e.DType, shapeString(e.Shape), e.DataOffsets[1]-e.DataOffsets[0])
		if strings.Join(f, " ") != wantLine || e.DType != "BF16" {
			t.Errorf("line %q, want %q", strings.Join(f, " "), wantLine)
		}
	}
	wantTotal := fmt.Sprintf("total: 67 tensors, %d params, %d bytes (BF16), 1 files", params, total)
	if lines[68] != wantTotal || total != 2*params {
		t.Errorf("total line %q, want %q", lines[68], wantTotal)
	}
}

// TestInspectMalformed: each bad input gives exit status 1, nothing on
// stdout and exactly one line "tgate inspect: PATH: problem" on stderr.
func TestInspectMalformed(t *testing.T) {
	dir := t.TempDir()
	put := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := func(hdr string, data []byte) []byte {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, uint64(len(hdr)))
		return append(append(b, hdr...), data...)
	}
	big := make([]byte, 8)
	binary.LittleEndian.PutUint64(big, 200_000_000)
	cases := []struct{ path, want string }{
		{put("empty.safetensors", nil), "file is empty"},
		{put("short.safetensors", []byte{1, 2, 3}), "file is 3 bytes, shorter than the 8-byte header length"},
		{put("big.safetensors", big), "header length 200000000 exceeds the 100000000-byte limit"},
		{put("long.safetensors", file(`{}`, nil)[:9]), "header length 2 is larger than the 1 bytes"},
		{put("json.safetensors", file(`{"a":`, nil)), "header JSON ends early"},
		{put("overlap.safetensors", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8))),
			`tensor "b": data_offsets [4,8] overlap tensor "a", which ends at 8`},
		{put("dtype.safetensors", file(`{"a":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1))), `tensor "a": unknown dtype "Q8"`},
		{put("dup.safetensors", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, make([]byte, 2))),
			`tensor "a": the header lists this name more than once`},
		{filepath.Join(dir, "absent.safetensors"), "no such file or directory"},
	}
	// A component folder whose weights file is malformed.
	comp := filepath.Join(dir, "unet")
	os.Mkdir(comp, 0o755)
	bad := filepath.Join(comp, "diffusion_pytorch_model.safetensors")
	os.WriteFile(bad, []byte("12345678"), 0o644)
	cases = append(cases, struct{ path, want string }{comp, bad + ": header length"})
	// An index naming a missing shard.
	cases = append(cases, struct{ path, want string }{
		put("model.safetensors.index.json", []byte(`{"weight_map":{"w":"model-00001-of-00002.safetensors"}}`)),
		"shard " + filepath.Join(dir, "model-00001-of-00002.safetensors") + " named in weight_map does not exist"})
	for _, c := range cases {
		code, out, errOut := runInspectCmd(c.path)
		if code != 1 || out != "" {
			t.Errorf("%s: exit %d, stdout %q", c.path, code, out)
		}
		prefix := "tgate inspect: " + c.path + ": "
		if strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") || !strings.HasPrefix(errOut, prefix) || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: stderr %q, want one line %q...%q", c.path, errOut, prefix, c.want)
		}
		if strings.Count(errOut, c.path) != 1 && !strings.Contains(c.want, c.path) {
			t.Errorf("%s: path repeated in %q", c.path, errOut)
		}
	}
	if code, _, _ := runInspectCmd(); code != 2 {
		t.Errorf("no PATH: exit %d, want 2", code)
	}
}

// TestInspectFolders lists a golden component folder (its io.safetensors
// must be ignored), a golden model folder, and a sharded index.
func TestInspectFolders(t *testing.T) {
	unet := golden.Dir(t, "golden", "sd15_tiny_pipeline", "unet")
	weights := headerEntries(t, filepath.Join(unet, "diffusion_pytorch_model.safetensors"))
	var params, nbytes int64
	for _, e := range weights {
		n := int64(1)
		for _, d := range e.Shape {
			n *= int64(d)
		}
		params += n
		nbytes += e.DataOffsets[1] - e.DataOffsets[0]
	}
	code, out, errOut := runInspectCmd(unet)
	if code != 0 || errOut != "" {
		t.Fatalf("component: exit %d %q", code, errOut)
	}
	if strings.Contains(out, ".in.") || strings.Count(out, "\n") != len(weights)+2 ||
		!strings.Contains(out, fmt.Sprintf("total: %d tensors, %d params, %d bytes (F32), 1 files", len(weights), params, nbytes)) {
		t.Errorf("component listing:\n%s", out)
	}

	model := golden.Dir(t, "golden", "sd15_tiny_pipeline")
	code, out, errOut = runInspectCmd(model)
	if code != 0 || errOut != "" {
		t.Fatalf("model: exit %d %q", code, errOut)
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	wantUnet := []string{"unet", "UNet2DConditionModel", strconv.Itoa(len(weights)), strconv.FormatInt(params, 10), "F32", strconv.FormatInt(nbytes, 10), "diffusion_pytorch_model.safetensors"}
	if strings.Join(rows["unet"], " ") != strings.Join(wantUnet, " ") {
		t.Errorf("unet row %q, want %q", rows["unet"], wantUnet)
	}
	if r := rows["text_encoder"]; len(r) < 2 || r[1] != "CLIPTextModel" || r[len(r)-1] != "model.safetensors" {
		t.Errorf("text_encoder row %q", r)
	}
	if r := rows["scheduler"]; len(r) < 2 || r[1] != "PNDMScheduler" || !strings.Contains(strings.Join(r, " "), "(no weights)") {
		t.Errorf("scheduler row %q", r)
	}
	if _, ok := rows["safety_checker"]; ok {
		t.Error("a [null, null] component is listed")
	}

	// A two-shard fp16-variant component, opened through its folder and
	// through its index.
	dir := t.TempDir()
	h := tensor.FromData([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	s1, s2 := "diffusion_pytorch_model.fp16-00001-of-00002.safetensors", "diffusion_pytorch_model.fp16-00002-of-00002.safetensors"
	if err := safetensors.WriteFile(filepath.Join(dir, s1), nil, []safetensors.Named{safetensors.FromHost("a.weight", h, tensor.F16)}); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, s2), nil, []safetensors.Named{safetensors.FromHost("b.weight", h, tensor.F16)}); err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, "diffusion_pytorch_model.safetensors.index.fp16.json")
	os.WriteFile(index, []byte(`{"metadata":{"total_size":24},"weight_map":{"a.weight":"`+s1+`","b.weight":"`+s2+`"}}`), 0o644)
	for _, p := range []string{dir, index} {
		code, out, errOut := runInspectCmd(p)
		if code != 0 || errOut != "" {
			t.Fatalf("%s: exit %d %q", p, code, errOut)
		}
		if !strings.Contains(out, "a.weight  F16    [2,3]  12     "+s1) || !strings.Contains(out, "b.weight  F16    [2,3]  12     "+s2) ||
			!strings.Contains(out, "total: 2 tensors, 12 params, 24 bytes (F16), 2 files") {
			t.Errorf("%s listing:\n%s", p, out)
		}
	}
	if code, _, errOut := runInspectCmd("-variant", "bf16", dir); code != 1 || !strings.Contains(errOut, "no safetensors weights") {
		t.Errorf("-variant bf16: exit %d %q", code, errOut)
	}
}
