package taesd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/internal/npy"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// tol is the allowed max |got − want| relative to max |want|. The goldens
// were computed in float64 from the stored weights; float32 agrees to
// ~1e-6.
const tol = 1e-4

// taeCase is one entry of tae_goldens.json.
type taeCase struct {
	Weights     string `json:"weights"`
	InputNPY    string `json:"input_npy"`
	OutputNPY   string `json:"output_npy"`
	InputShape  []int  `json:"input_shape"`
	OutputShape []int  `json:"output_shape"`
}

func loadCases(t *testing.T) map[string]taeCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(golden.Dir(t, "assets", "goldens"), "tae_goldens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]taeCase{}
	for k, v := range raw {
		var c taeCase
		if json.Unmarshal(v, &c) == nil && c.InputNPY != "" {
			out[k] = c
		}
	}
	return out
}

func readNPY(t *testing.T, name string) *tensor.Host {
	t.Helper()
	f, err := os.Open(filepath.Join(golden.Dir(t, "assets", "goldens"), name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := npy.Read(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return h
}

// weightsPath maps the JSON's weights entry ("taesd/taef2_decoder.pth")
// to the safetensors file in assets.
func weightsPath(t *testing.T, w string) string {
	t.Helper()
	w = strings.TrimSuffix(w, ".pth")
	w = strings.TrimSuffix(w, ".safetensors")
	return golden.Dir(t, "assets", w+".safetensors")
}

// run applies the decoder or encoder in src to in and returns the output.
func run(t *testing.T, b backend.Backend, src nn.Source, decoder bool, in *tensor.Host) *tensor.Host {
	t.Helper()
	x := b.Upload(in)
	defer b.Free(x)
	var out backend.Tensor
	if decoder {
		d, err := LoadDecoder(b, src)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Release(b)
		if out, err = d.Decode(b, x); err != nil {
			t.Fatal(err)
		}
	} else {
		e, err := LoadEncoder(b, src)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Release(b)
		if out, err = e.Encode(b, x); err != nil {
			t.Fatal(err)
		}
	}
	defer b.Free(out)
	return golden.ReadBack(t, b, out)
}

// TestGoldens runs every TAE checkpoint in the assets on the inputs of
// tae_goldens.json and compares with the stored outputs: TAESD, TAESDXL,
// TAESD3, TAEF1 (decoder and encoder), TAEF2 (GroupNorm branch, 32
// channels) and the TAESANA 32× encoder.
func TestGoldens(t *testing.T) {
	cases := loadCases(t)
	want := []string{
		"taesd_decoder_bf16", "taesd_encoder_bf16", "taesdxl_decoder_bf16", "taesdxl_encoder_bf16",
		"taesd3_decoder_bf16", "taesd3_encoder_bf16", "taef1_decoder_bf16", "taef1_encoder_bf16",
		"taef2_decoder", "taef2_encoder", "taesana_encoder",
	}
	for _, name := range want {
		c, ok := cases[name]
		if !ok {
			t.Errorf("tae_goldens.json has no case %q", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			b := cpu.New()
			src, err := hub.OpenFile(weightsPath(t, c.Weights))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			in := readNPY(t, c.InputNPY)
			wantOut := readNPY(t, c.OutputNPY)
			if !in.Shape.Equal(c.InputShape) || !wantOut.Shape.Equal(c.OutputShape) {
				t.Fatalf("npy shapes %v → %v disagree with the JSON's %v → %v", in.Shape, wantOut.Shape, c.InputShape, c.OutputShape)
			}
			decoder := strings.Contains(name, "decoder")
			start := time.Now()
			got := run(t, b, src, decoder, in)
			t.Logf("%v → %v in %v", in.Shape, got.Shape, time.Since(start).Round(time.Millisecond))
			golden.AssertClose(t, name, got, wantOut, tol)
			if live := b.Memory().Live; live != 0 {
				t.Errorf("%d bytes live after the pass and Release", live)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		file    string
		decoder bool
		want    Config
	}{
		{"bf16_comfyui_fork/taesd_decoder", true, Config{Layout: Original, LatentChannels: 4}},
		{"bf16_comfyui_fork/taesd3_encoder", false, Config{Layout: Original, LatentChannels: 16}},
		{"taef2_decoder", true, Config{Layout: Original, LatentChannels: 32, MidBlockGN: true}},
		{"taef2_encoder", false, Config{Layout: Original, LatentChannels: 32, MidBlockGN: true}},
		{"taesana_encoder", false, Config{Layout: Original, LatentChannels: 32, Downscale32: true}},
	} {
		src, err := hub.OpenFile(golden.Dir(t, "assets", "taesd", c.file+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		var got Config
		if c.decoder {
			got, err = DetectDecoder(src)
		} else {
			got, err = DetectEncoder(src)
		}
		src.Close()
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
		} else if got != c.want {
			t.Errorf("%s: detected %+v, want %+v", c.file, got, c.want)
		}
	}
}

// toDiffusers renames taesd.py keys the way diffusers'
// scripts/convert_tiny_autoencoder_to_diffusers.py does: encoder keys get
// "encoder.layers." in front, decoder keys "decoder.layers." with the
// leading Sequential index lowered by one (the Clamp is not a layer).
func toDiffusers(t *testing.T, f *safetensors.File, decoder bool) []safetensors.Named {
	t.Helper()
	var out []safetensors.Named
	for _, name := range f.Names() {
		raw, err := f.ReadRaw(name)
		if err != nil {
			t.Fatal(err)
		}
		idx, rest, _ := strings.Cut(name, ".")
		i, err := strconv.Atoi(idx)
		if err != nil {
			t.Fatalf("key %q does not start with an index", name)
		}
		key := "encoder.layers." + name
		if decoder {
			key = fmt.Sprintf("decoder.layers.%d.%s", i-1, rest)
		}
		out = append(out, safetensors.Named{Name: key, Raw: raw})
	}
	return out
}

// TestAutoencoderTinyLayout writes the TAESD encoder and decoder as one
// AutoencoderTiny-named file and checks that both load from it (the
// layout detected from the keys) and give outputs bit-identical to the
// taesd.py files' (which TestGoldens checks against the goldens).
func TestAutoencoderTinyLayout(t *testing.T) {
	cases := loadCases(t)
	var tensors []safetensors.Named
	for _, part := range []string{"decoder", "encoder"} {
		f, err := safetensors.Open(golden.Dir(t, "assets", "taesd", "bf16_comfyui_fork", "taesd_"+part+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, toDiffusers(t, f, part == "decoder")...)
		f.Close()
	}
	path := filepath.Join(t.TempDir(), "diffusion_pytorch_model.safetensors")
	if err := safetensors.WriteFile(path, map[string]string{"format": "pt"}, tensors); err != nil {
		t.Fatal(err)
	}
	tiny, err := hub.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tiny.Close()
	if cfg, err := DetectDecoder(tiny); err != nil || cfg != (Config{Layout: Diffusers, LatentChannels: 4}) {
		t.Errorf("DetectDecoder: %+v, %v", cfg, err)
	}
	if cfg, err := DetectEncoder(tiny); err != nil || cfg != (Config{Layout: Diffusers, LatentChannels: 4}) {
		t.Errorf("DetectEncoder: %+v, %v", cfg, err)
	}
	for _, part := range []string{"decoder", "encoder"} {
		c := cases["taesd_"+part+"_bf16"]
		orig, err := hub.OpenFile(weightsPath(t, c.Weights))
		if err != nil {
			t.Fatal(err)
		}
		// The top-left quarter of the golden input keeps the test fast.
		in := readNPY(t, c.InputNPY)
		b := cpu.New()
		x := b.Upload(in)
		h, w := in.Shape[2]/2, in.Shape[3]/2
		r := b.Slice(x, 2, 0, h)
		q := b.Slice(r, 3, 0, w)
		quarter := golden.ReadBack(t, b, q)
		nn.Free(b, x, r, q)
		want := run(t, b, orig, part == "decoder", quarter)
		got := run(t, b, tiny, part == "decoder", quarter)
		orig.Close()
		if !got.Shape.Equal(want.Shape) {
			t.Fatalf("%s: shape %v, want %v", part, got.Shape, want.Shape)
		}
		for i := range want.Data {
			if got.Data[i] != want.Data[i] {
				t.Fatalf("%s: AutoencoderTiny layout output [%d] = %v, taesd.py layout %v", part, i, got.Data[i], want.Data[i])
			}
		}
	}
}

// TestLoadErrors checks the errors for a checkpoint of the wrong kind and
// for a tensor whose shape disagrees with the architecture.
func TestLoadErrors(t *testing.T) {
	b := cpu.New()
	open := func(name string) *hub.Component {
		src, err := hub.OpenFile(golden.Dir(t, "assets", "taesd", name+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { src.Close() })
		return src
	}
	dec := open("bf16_comfyui_fork/taesd_decoder")
	if _, err := LoadEncoder(b, dec); err == nil || !strings.Contains(err.Error(), "looks like a taesd.py decoder") {
		t.Errorf("decoder loaded as encoder: error %v", err)
	}
	enc := open("bf16_comfyui_fork/taesd_encoder")
	if _, err := LoadDecoder(b, enc); err == nil || !strings.Contains(err.Error(), "looks like a taesd.py encoder") {
		t.Errorf("encoder loaded as decoder: error %v", err)
	}
	// A config claiming 16 latent channels on 4-channel weights.
	_, err := NewDecoder(nn.NewScope(b, dec), Config{Layout: Original, LatentChannels: 16})
	if err == nil || !strings.Contains(err.Error(), `"1.weight"`) || !strings.Contains(err.Error(), "[64,4,3,3]") || !strings.Contains(err.Error(), "[64,16,3,3]") {
		t.Errorf("16-channel config on 4-channel weights: error %v", err)
	}
	// A TAEF2 config on weights without the GroupNorm branch.
	_, err = NewDecoder(nn.NewScope(b, dec), Config{Layout: Original, LatentChannels: 4, MidBlockGN: true})
	if err == nil || !strings.Contains(err.Error(), `"3.pool.0.weight"`) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("GN config on plain weights: error %v", err)
	}
	// A mislabelled layout.
	_, err = NewEncoder(nn.NewScope(b, enc), Config{Layout: Diffusers, LatentChannels: 4})
	if err == nil || !strings.Contains(err.Error(), `"encoder.layers.0.weight"`) {
		t.Errorf("diffusers layout on taesd.py weights: error %v", err)
	}
	if live := b.Memory().Live; live != 0 {
		t.Errorf("%d bytes live after failed loads", live)
	}
	d, err := LoadDecoder(b, dec)
	if err != nil {
		t.Fatal(err)
	}
	z := b.Upload(tensor.New(1, 16, 4, 4))
	if _, err := d.Decode(b, z); err == nil || !strings.Contains(err.Error(), "[1,16,4,4]") {
		t.Errorf("16-channel latents into a 4-channel decoder: error %v", err)
	}
}
