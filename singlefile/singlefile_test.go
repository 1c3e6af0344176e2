package singlefile

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/tensor"
)

// tinyFolder is the diffusers folder the single files were converted from.
func tinyFolder(t *testing.T) string { return golden.Dir(t, "golden", "sd15_tiny_pipeline") }

// openTiny opens ../shared/golden/single_file/<name>.
func openTiny(t *testing.T, name string) *File {
	t.Helper()
	f, err := Open(filepath.Join(golden.Dir(t, "golden", "single_file"), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// folderWeights names each component's weight file in the tiny folder.
var folderWeights = map[string]string{
	UNet:        "unet/diffusion_pytorch_model.safetensors",
	VAE:         "vae/diffusion_pytorch_model.safetensors",
	TextEncoder: "text_encoder/model.safetensors",
}

func readConfig(t *testing.T, dir, comp string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, comp, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// roundF16 rounds every value to the nearest F16, as torch's .half().
func roundF16(h *tensor.Host) *tensor.Host {
	out := tensor.New(h.Shape...)
	for i, v := range h.Data {
		out.Data[i] = tensor.F16ToF32(tensor.F32ToF16(v))
	}
	return out
}

// TestWeightsEqualFolder converts every component of the F32 and F16
// single files with the tiny folder's configs and compares each weight,
// value for value, with the folder's own weights: the key sets must be
// equal, F32 values identical, F16 values the folder's rounded to F16.
func TestWeightsEqualFolder(t *testing.T) {
	dir := tinyFolder(t)
	for _, file := range []string{"sd15_tiny_pipeline.safetensors", "sd15_tiny_pipeline.fp16.safetensors"} {
		half := strings.Contains(file, "fp16")
		f := openTiny(t, file)
		total := 0
		for _, comp := range []string{UNet, VAE, TextEncoder} {
			c, err := f.Component(comp, readConfig(t, dir, comp))
			if err != nil {
				t.Fatalf("%s %s: %v", file, comp, err)
			}
			want := golden.Tensors(t, filepath.Join(dir, folderWeights[comp]))
			if got, w := strings.Join(c.Names(), "\n"), strings.Join(sortedKeys(want), "\n"); got != w {
				t.Fatalf("%s %s: converted keys differ from the folder's:\n%s\nwant\n%s", file, comp, got, w)
			}
			worst := 0.0
			for _, k := range c.Names() {
				dt, shape, _ := c.Lookup(k)
				if wantDT := map[bool]tensor.DType{false: tensor.F32, true: tensor.F16}[half]; dt != wantDT {
					t.Fatalf("%s %s: %s has dtype %v, want %v", file, comp, k, dt, wantDT)
				}
				if !shape.Equal(want[k].Shape) {
					t.Fatalf("%s %s: %s has shape %v, the folder %v", file, comp, k, shape, want[k].Shape)
				}
				got, err := c.ReadFloat32(k)
				if err != nil {
					t.Fatal(err)
				}
				w := want[k]
				if half {
					w = roundF16(w)
				}
				abs, _ := golden.Diff(got, w)
				worst = math.Max(worst, abs)
			}
			if worst != 0 {
				t.Errorf("%s %s: max abs diff %g from the folder's weights (want exactly equal)", file, comp, worst)
			}
			total += len(c.Names())
			t.Logf("%s %s: %d weights, max abs diff 0", file, comp, len(c.Names()))
		}
		if total != 368 {
			t.Errorf("%s: %d weights converted, want all 368 of the file", file, total)
		}
	}
}

// keyMap is ../shared/golden/single_file/key_map.json.
type keyMap struct {
	N   int `json:"n"`
	Map []struct {
		Component      string       `json:"component"`
		Diffusers      string       `json:"diffusers"`
		Original       string       `json:"original"`
		DiffusersShape tensor.Shape `json:"diffusers_shape"`
		OriginalShape  tensor.Shape `json:"original_shape"`
	} `json:"map"`
}

// TestKeyMap checks every pair of the golden key map: the conversion
// finds each diffusers key in its original tensor, with the diffusers
// shape.
func TestKeyMap(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(golden.Dir(t, "golden", "single_file"), "key_map.json"))
	if err != nil {
		t.Fatal(err)
	}
	var km keyMap
	if err := json.Unmarshal(data, &km); err != nil {
		t.Fatal(err)
	}
	if km.N != 368 || len(km.Map) != km.N {
		t.Fatalf("key_map.json: n %d with %d entries", km.N, len(km.Map))
	}
	dir := tinyFolder(t)
	f := openTiny(t, "sd15_tiny_pipeline.safetensors")
	comps := map[string]*Component{}
	for _, comp := range []string{UNet, VAE, TextEncoder} {
		if comps[comp], err = f.Component(comp, readConfig(t, dir, comp)); err != nil {
			t.Fatal(err)
		}
	}
	reshaped := 0
	for _, e := range km.Map {
		c := comps[e.Component]
		if c == nil {
			t.Fatalf("key_map.json: unknown component %q", e.Component)
		}
		orig, ok := c.Original(e.Diffusers)
		if !ok || orig != e.Original {
			t.Errorf("%s %s: read from %q, want %q", e.Component, e.Diffusers, orig, e.Original)
			continue
		}
		_, shape, _ := c.Lookup(e.Diffusers)
		if !shape.Equal(e.DiffusersShape) {
			t.Errorf("%s %s: shape %v, want %v", e.Component, e.Diffusers, shape, e.DiffusersShape)
		}
		if got, _ := f.Shape(e.Original); !got.Equal(e.OriginalShape) {
			t.Errorf("%s: stored shape %v, key map says %v", e.Original, got, e.OriginalShape)
		}
		if !e.DiffusersShape.Equal(e.OriginalShape) {
			reshaped++
		}
	}
	if reshaped != 8 {
		t.Errorf("%d reshaped weights, want the 8 VAE attention projections", reshaped)
	}
}

// TestFolderView loads each component through the folder view with the
// folder loaders' own code (hub.OpenComponentIn): same keys and values as
// the folder, and the file closes only after the views.
func TestFolderView(t *testing.T) {
	dir := tinyFolder(t)
	f, err := Open(filepath.Join(golden.Dir(t, "golden", "single_file"), "sd15_tiny_pipeline.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.AsFolder(hub.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	var comps []*hub.Component
	for _, comp := range []string{UNet, VAE, TextEncoder} {
		c, err := hub.OpenComponentIn(hub.Sub(v, comp), hub.Variants)
		if err != nil {
			t.Fatal(err)
		}
		comps = append(comps, c)
		want := golden.Tensors(t, filepath.Join(dir, folderWeights[comp]))
		if len(c.Names()) != len(want) {
			t.Fatalf("%s: %d keys through the view, want %d", comp, len(c.Names()), len(want))
		}
		for k, w := range want {
			got, err := c.Checkpoint().ReadFloat32(k)
			if err != nil {
				t.Fatalf("%s: %v", comp, err)
			}
			if abs, _ := golden.Diff(got, w); abs != 0 || !got.Shape.Equal(w.Shape) {
				t.Fatalf("%s %s: through the view %v differs by %g from the folder's %v", comp, k, got.Shape, abs, w.Shape)
			}
		}
		if string(c.ConfigJSON()) != string(readConfig(t, dir, comp)) {
			t.Errorf("%s: config.json not served from the config folder", comp)
		}
	}
	// The config folder's own weight files are hidden.
	if ok, _ := v.Exists("unet/diffusion_pytorch_model.fp16.safetensors"); ok {
		t.Error("the view shows a weight file of the config folder")
	}
	v.Release()
	if _, err := comps[0].Checkpoint().ReadRaw("conv_in.weight"); err != nil {
		t.Fatalf("reading after Release with views open: %v", err)
	}
	for _, c := range comps {
		c.Close()
	}
	if _, err := f.ckpt.ReadRaw(UNetPrefix + "input_blocks.0.0.weight"); err == nil {
		t.Error("the file is still readable after every view closed")
	}
}
