package singlefile

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// concatRows stacks tensors along their first dimension.
func concatRows(hs ...*tensor.Host) *tensor.Host {
	shape := hs[0].Shape.Clone()
	shape[0] = 0
	var data []float32
	for _, h := range hs {
		shape[0] += h.Shape[0]
		data = append(data, h.Data...)
	}
	out := tensor.New(shape...)
	copy(out.Data, data)
	return out
}

// TestOpenCLIP writes the tiny text encoder in open_clip's layout (SD 2.x:
// transformer.resblocks.i with the fused attn.in_proj_weight/bias =
// cat(q, k, v) rows, ln_1/ln_2, mlp.c_fc/c_proj, ln_final, plus
// text_projection and logit_scale, which CLIPTextModel has no place for)
// and checks that the conversion gives back every weight of the folder.
func TestOpenCLIP(t *testing.T) {
	dir := tinyFolder(t)
	ws := golden.Tensors(t, filepath.Join(dir, "text_encoder", "model.safetensors"))
	var named []safetensors.Named
	put := func(k string, h *tensor.Host) {
		named = append(named, safetensors.FromHost(OpenCLIPPrefix+k, h, tensor.F32))
	}
	put("token_embedding.weight", ws["text_model.embeddings.token_embedding.weight"])
	put("positional_embedding", ws["text_model.embeddings.position_embedding.weight"])
	put("ln_final.weight", ws["text_model.final_layer_norm.weight"])
	put("ln_final.bias", ws["text_model.final_layer_norm.bias"])
	put("text_projection", tensor.New(32, 32))
	put("logit_scale", tensor.New())
	for i := range 2 {
		l := fmt.Sprintf("text_model.encoder.layers.%d.", i)
		r := fmt.Sprintf("transformer.resblocks.%d.", i)
		for _, s := range []string{"weight", "bias"} {
			put(r+"attn.in_proj_"+s, concatRows(ws[l+"self_attn.q_proj."+s], ws[l+"self_attn.k_proj."+s], ws[l+"self_attn.v_proj."+s]))
			put(r+"attn.out_proj."+s, ws[l+"self_attn.out_proj."+s])
			put(r+"ln_1."+s, ws[l+"layer_norm1."+s])
			put(r+"ln_2."+s, ws[l+"layer_norm2."+s])
			put(r+"mlp.c_fc."+s, ws[l+"mlp.fc1."+s])
			put(r+"mlp.c_proj."+s, ws[l+"mlp.fc2."+s])
		}
	}
	named = append(named, safetensors.FromHost(UNetPrefix+"out.2.bias", tensor.New(4), tensor.F32))
	path := filepath.Join(t.TempDir(), "openclip.safetensors")
	if err := safetensors.WriteFile(path, nil, named); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !f.OpenCLIP() {
		t.Fatal("the OpenCLIP layout is not recognised")
	}
	c, err := f.Component(TextEncoder, readConfig(t, dir, TextEncoder))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(c.Names(), ","), strings.Join(sortedKeys(ws), ","); got != want {
		t.Fatalf("converted keys\n%s\nwant\n%s", got, want)
	}
	for k, w := range ws {
		got, err := c.ReadFloat32(k)
		if err != nil {
			t.Fatal(err)
		}
		if abs, _ := golden.Diff(got, w); abs != 0 || !got.Shape.Equal(w.Shape) {
			t.Errorf("%s: %v differs by %g from the folder's %v", k, got.Shape, abs, w.Shape)
		}
	}
}

// directFile is a weight file whose source can upload byte ranges itself,
// as the browser's cached files do; it counts what it was asked for.
type directFile struct {
	safetensors.RangeReader
	uploads   int
	dataReads int64 // bytes read past the header by ReadAt
	dataStart int64
}

func (d *directFile) ReadAt(p []byte, off int64) (int, error) {
	if d.dataStart > 0 && off+int64(len(p)) > d.dataStart {
		d.dataReads += int64(len(p))
	}
	return d.RangeReader.ReadAt(p, off)
}

func (d *directFile) UploadRange(b backend.Backend, dt tensor.DType, shape tensor.Shape, off, n int64) (backend.Tensor, bool, error) {
	d.uploads++
	buf := make([]byte, n)
	if _, err := d.RangeReader.ReadAt(buf, off); err != nil {
		return nil, false, err
	}
	return b.UploadRaw(&tensor.Raw{DType: dt, Shape: shape.Clone(), Bytes: buf}), true, nil
}

// directFolder serves one directFile.
type directFolder struct {
	hub.Dir
	file *directFile
}

func (f directFolder) Open(name string) (safetensors.RangeReader, error) { return f.file, nil }

// TestDirectSource loads every weight of the converted components through
// Component.Load and through the folder view with a source that uploads
// byte ranges itself: every tensor goes through UploadRange (the browser
// path straight to GPU buffers), none through a data read, and the values
// are the folder's.
func TestDirectSource(t *testing.T) {
	dir := tinyFolder(t)
	name := "sd15_tiny_pipeline.safetensors"
	src, err := hub.Dir(golden.Dir(t, "golden", "single_file")).Open(name)
	if err != nil {
		t.Fatal(err)
	}
	d := &directFile{RangeReader: src}
	f, err := OpenIn(directFolder{hub.Dir(golden.Dir(t, "golden", "single_file")), d}, name)
	if err != nil {
		t.Fatal(err)
	}
	d.dataStart = f.ckpt.Files()[0].DataStart()
	v, err := f.AsFolder(hub.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Release()
	b := cpu.New()
	n := 0
	for _, comp := range []string{UNet, VAE, TextEncoder} {
		want := golden.Tensors(t, filepath.Join(dir, folderWeights[comp]))
		hc, err := hub.OpenComponentIn(hub.Sub(v, comp), hub.Variants)
		if err != nil {
			t.Fatal(err)
		}
		for _, src := range []interface {
			Load(backend.Backend, string) (backend.Tensor, error)
		}{v.Component(comp), hc} {
			for k, w := range want {
				x, err := src.Load(b, k)
				if err != nil {
					t.Fatal(err)
				}
				got := golden.ReadBack(t, b, x)
				if abs, _ := golden.Diff(got, w); abs != 0 || !got.Shape.Equal(w.Shape) {
					t.Fatalf("%s %s: %v differs by %g from the folder's %v", comp, k, got.Shape, abs, w.Shape)
				}
				b.Free(x)
				n++
			}
		}
		hc.Close()
	}
	if d.uploads != n || d.dataReads != 0 {
		t.Errorf("%d of %d tensors uploaded by range, %d data bytes read through ReadAt; want all by range and none read", d.uploads, n, d.dataReads)
	}
}
