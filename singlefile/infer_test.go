package singlefile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
	"github.com/tgate-web/tgate/tokenizer"
)

// declared is a safetensors file of which only the header exists: the
// data section reads as zeros, so a header with a real model's shapes
// (gigabytes of data) costs nothing.
type declared struct {
	head []byte
	size int64
}

func (d *declared) Size() int64 { return d.size }

func (d *declared) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	if off < int64(len(d.head)) {
		copy(p, d.head[off:])
	}
	return len(p), nil
}

// UploadRange declares the tensor on the shape-only meter backend without
// reading it, as the browser's sources upload ranges without the Go heap.
func (d *declared) UploadRange(b backend.Backend, dt tensor.DType, shape tensor.Shape, off, n int64) (backend.Tensor, bool, error) {
	m, ok := b.(*meter.Backend)
	if !ok {
		return nil, false, nil
	}
	return m.UploadRaw(&tensor.Raw{DType: dt, Shape: shape.Clone()}), true, nil
}

// declaredFolder holds one declared file, model.safetensors.
type declaredFolder struct{ file *declared }

func (f declaredFolder) ReadFile(name string) ([]byte, error) {
	return nil, fmt.Errorf("no %s: %w", name, os.ErrNotExist)
}
func (f declaredFolder) Exists(name string) (bool, error) { return name == "model.safetensors", nil }
func (f declaredFolder) Open(name string) (safetensors.RangeReader, error) {
	return f.file, nil
}
func (f declaredFolder) String() string { return "declared" }

// declaredFile builds a folder holding model.safetensors, a declared F16
// file with the given tensor shapes.
func declaredFile(shapes map[string][]int) hub.Folder {
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	hdr := map[string]any{}
	var off int64
	for _, n := range names {
		numel := int64(1)
		for _, d := range shapes[n] {
			numel *= int64(d)
		}
		hdr[n] = map[string]any{"dtype": "F16", "shape": shapes[n], "data_offsets": []int64{off, off + 2*numel}}
		off += 2 * numel
	}
	js, _ := json.Marshal(hdr)
	head := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
	head = append(head, js...)
	return declaredFolder{&declared{head: head, size: int64(len(head)) + off}}
}

// declare opens a declared F16 file with the given tensor shapes.
func declare(t testing.TB, shapes map[string][]int) *File {
	t.Helper()
	f, err := OpenIn(declaredFile(shapes), "model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sd15Header has the shapes of SD 1.5's single file at the keys
// InferFamily reads, and a few of each component.
func sd15Header() map[string][]int {
	return map[string][]int{
		UNetPrefix + "input_blocks.0.0.weight":                                    {320, 4, 3, 3},
		UNetPrefix + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight":    {320, 768},
		UNetPrefix + "middle_block.1.transformer_blocks.0.attn2.to_k.weight":      {1280, 768},
		UNetPrefix + "out.2.weight":                                               {4, 320, 3, 3},
		VAEPrefix + "decoder.conv_in.weight":                                      {512, 4, 3, 3},
		CLIPPrefix + "text_model.embeddings.token_embedding.weight":               {49408, 768},
		CLIPPrefix + "text_model.encoder.layers.11.self_attn.q_proj.weight":       {768, 768},
		CLIPPrefix + "text_model.embeddings.position_ids":                         {1, 77},
		"cond_stage_model.transformer.text_model.final_layer_norm.weight":         {768},
		UNetPrefix + "output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight":  {320, 768},
		UNetPrefix + "output_blocks.2.1.conv.weight":                              {1280, 1280, 3, 3},
		UNetPrefix + "input_blocks.3.0.op.weight":                                 {320, 320, 3, 3},
		UNetPrefix + "input_blocks.4.0.skip_connection.weight":                    {640, 320, 1, 1},
		UNetPrefix + "output_blocks.8.2.conv.weight":                              {640, 640, 3, 3},
		UNetPrefix + "output_blocks.5.2.conv.weight":                              {1280, 1280, 3, 3},
		UNetPrefix + "output_blocks.11.0.in_layers.0.weight":                      {640},
		VAEPrefix + "decoder.up.3.upsample.conv.weight":                           {512, 512, 3, 3},
		VAEPrefix + "decoder.up.0.block.2.conv2.weight":                           {128, 128, 3, 3},
		VAEPrefix + "encoder.mid.attn_1.q.weight":                                 {512, 512, 1, 1},
		UNetPrefix + "time_embed.0.weight":                                        {1280, 320},
		UNetPrefix + "input_blocks.11.0.out_layers.3.weight":                      {1280, 1280, 3, 3},
		UNetPrefix + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight":    {320, 768},
		UNetPrefix + "middle_block.2.emb_layers.1.weight":                         {1280, 1280},
		UNetPrefix + "output_blocks.3.0.skip_connection.weight":                   {1280, 2560, 1, 1},
		UNetPrefix + "output_blocks.9.1.transformer_blocks.0.attn1.to_q.weight":   {320, 320},
		UNetPrefix + "input_blocks.7.1.proj_in.weight":                            {1280, 1280, 1, 1},
		UNetPrefix + "input_blocks.8.1.transformer_blocks.0.attn2.to_v.weight":    {1280, 768},
		UNetPrefix + "output_blocks.6.1.norm.weight":                              {640},
		UNetPrefix + "input_blocks.9.0.op.weight":                                 {1280, 1280, 3, 3},
		UNetPrefix + "input_blocks.10.0.in_layers.2.weight":                       {1280, 1280, 3, 3},
		UNetPrefix + "output_blocks.0.0.out_layers.3.weight":                      {1280, 1280, 3, 3},
		UNetPrefix + "output_blocks.11.1.proj_out.weight":                         {320, 320, 1, 1},
		VAEPrefix + "post_quant_conv.weight":                                      {4, 4, 1, 1},
		VAEPrefix + "encoder.down.3.block.1.norm1.weight":                         {512},
		VAEPrefix + "encoder.down.2.downsample.conv.weight":                       {512, 512, 3, 3},
		VAEPrefix + "encoder.norm_out.weight":                                     {512},
		VAEPrefix + "decoder.mid.attn_1.proj_out.weight":                          {512, 512, 1, 1},
		VAEPrefix + "decoder.up.1.block.0.nin_shortcut.weight":                    {256, 512, 1, 1},
		VAEPrefix + "quant_conv.weight":                                           {8, 8, 1, 1},
		UNetPrefix + "input_blocks.5.1.transformer_blocks.0.ff.net.0.proj.weight": {5120, 640},
	}
}

// TestInferSD15 infers SD 1.5 from a header with SD 1.5's shapes, and the
// SD 1.5 numbering (4 levels, layers_per_block 2) from its config places
// every UNet and VAE key of it where the SD 1.5 models expect them.
func TestInferSD15(t *testing.T) {
	f := declare(t, sd15Header())
	fam, err := InferFamily(f)
	if err != nil {
		t.Fatal(err)
	}
	if fam.Name != SD15.Name || fam.Note != "" {
		t.Fatalf("inferred %+v, want SD 1.5 with nothing assumed", fam)
	}
	cfgs := fam.Folder()
	want := map[string]string{
		"output_blocks.2.1.conv.weight":                              "up_blocks.0.upsamplers.0.conv.weight",
		"output_blocks.5.2.conv.weight":                              "up_blocks.1.upsamplers.0.conv.weight",
		"output_blocks.8.2.conv.weight":                              "up_blocks.2.upsamplers.0.conv.weight",
		"output_blocks.11.0.in_layers.0.weight":                      "up_blocks.3.resnets.2.norm1.weight",
		"output_blocks.11.1.proj_out.weight":                         "up_blocks.3.attentions.2.proj_out.weight",
		"input_blocks.3.0.op.weight":                                 "down_blocks.0.downsamplers.0.conv.weight",
		"input_blocks.9.0.op.weight":                                 "down_blocks.2.downsamplers.0.conv.weight",
		"input_blocks.4.0.skip_connection.weight":                    "down_blocks.1.resnets.0.conv_shortcut.weight",
		"input_blocks.10.0.in_layers.2.weight":                       "down_blocks.3.resnets.0.conv1.weight",
		"input_blocks.11.0.out_layers.3.weight":                      "down_blocks.3.resnets.1.conv2.weight",
		"input_blocks.7.1.proj_in.weight":                            "down_blocks.2.attentions.0.proj_in.weight",
		"input_blocks.5.1.transformer_blocks.0.ff.net.0.proj.weight": "down_blocks.1.attentions.1.transformer_blocks.0.ff.net.0.proj.weight",
		"middle_block.2.emb_layers.1.weight":                         "mid_block.resnets.1.time_emb_proj.weight",
		"output_blocks.3.0.skip_connection.weight":                   "up_blocks.1.resnets.0.conv_shortcut.weight",
		"output_blocks.6.1.norm.weight":                              "up_blocks.2.attentions.0.norm.weight",
		"time_embed.0.weight":                                        "time_embedding.linear_1.weight",
	}
	ucfg, err := cfgs.ReadFile("unet/config.json")
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.Component(UNet, ucfg)
	if err != nil {
		t.Fatal(err)
	}
	for orig, diff := range want {
		if got, ok := u.Original(diff); !ok || got != UNetPrefix+orig {
			t.Errorf("%s: read from %q, want %q", diff, got, UNetPrefix+orig)
		}
	}
	vcfg, err := cfgs.ReadFile("vae/config.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.Component(VAE, vcfg)
	if err != nil {
		t.Fatal(err)
	}
	for orig, diff := range map[string]string{
		"decoder.up.3.upsample.conv.weight":        "decoder.up_blocks.0.upsamplers.0.conv.weight",
		"decoder.up.0.block.2.conv2.weight":        "decoder.up_blocks.3.resnets.2.conv2.weight",
		"decoder.up.1.block.0.nin_shortcut.weight": "decoder.up_blocks.2.resnets.0.conv_shortcut.weight",
		"encoder.down.2.downsample.conv.weight":    "encoder.down_blocks.2.downsamplers.0.conv.weight",
		"encoder.norm_out.weight":                  "encoder.conv_norm_out.weight",
	} {
		if got, ok := v.Original(diff); !ok || got != VAEPrefix+orig {
			t.Errorf("%s: read from %q, want %q", diff, got, VAEPrefix+orig)
		}
	}
	if _, sh, _ := v.Lookup("encoder.mid_block.attentions.0.to_q.weight"); !sh.Equal([]int{512, 512}) {
		t.Errorf("VAE to_q shape %v, want [512 512]", sh)
	}
	te, err := f.Component(TextEncoder, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := te.Lookup("text_model.embeddings.position_ids"); ok {
		t.Error("position_ids is bound as a weight")
	}
	// The SD 1.5 configs are the published ones, verbatim.
	var cfg unet.Config
	if err := json.Unmarshal(ucfg, &cfg); err != nil {
		t.Fatal(err)
	}
	if got := cfg.CrossAttentionDim.Values; len(got) != 1 || got[0] != 768 {
		t.Errorf("inferred UNet cross_attention_dim %v, want 768", got)
	}
}

// TestEmbeddedConfigsVerbatim compares the embedded configs with the
// published ones in ../shared/assets/configs, and the SD 2.x overrides.
func TestEmbeddedConfigsVerbatim(t *testing.T) {
	root := golden.Dir(t, "assets", "configs")
	for _, fam := range []Family{SD15, SD2Base, SDXL} {
		folder := fam.Folder()
		names := []string{"model_index.json", "scheduler/scheduler_config.json", "unet/config.json",
			"vae/config.json", "text_encoder/config.json", "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json"}
		if fam.Name == SDXL.Name {
			names = append(names, "text_encoder_2/config.json", "tokenizer_2/tokenizer_config.json", "tokenizer_2/special_tokens_map.json")
		}
		for _, name := range names {
			want, err := os.ReadFile(filepath.Join(root, fam.Repo, name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := folder.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if _, over := fam.overrides[name]; over {
				var g, w map[string]any
				json.Unmarshal(got, &g)
				json.Unmarshal(want, &w)
				for k, v := range fam.overrides[name] {
					w[k] = v
				}
				gb, _ := json.Marshal(g)
				wb, _ := json.Marshal(w)
				if !bytes.Equal(gb, wb) {
					t.Errorf("%s %s: %s, want the published file with %v", fam.Name, name, gb, fam.overrides[name])
				}
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s %s differs from %s", fam.Name, name, filepath.Join(root, fam.Repo, name))
			}
		}
	}
	sched, _ := SD2Base.Folder().ReadFile("scheduler/scheduler_config.json")
	if !strings.Contains(string(sched), `"prediction_type": "epsilon"`) {
		t.Errorf("SD 2.x scheduler config %s does not assume epsilon", sched)
	}
}

// TestInferredTokenizer checks that the tokenizer of an inferred config
// (openai/CLIP's BPE file) encodes like the tiny folder's vocab.json and
// merges.txt, which are SD 1.5's.
func TestInferredTokenizer(t *testing.T) {
	tok := hub.Sub(SD15.Folder(), "tokenizer")
	got, err := tokenizer.LoadCLIPWith(tok.String(), tok.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	want, err := tokenizer.LoadCLIP(filepath.Join(tinyFolder(t), "tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a photograph of an astronaut riding a horse", "Ünïcode, punctuation!!! and 123 numbers"} {
		g, w := fmt.Sprint(got.Encode(p)), fmt.Sprint(want.Encode(p))
		if g != w {
			t.Errorf("%q: %s, want %s", p, g, w)
		}
	}
}

// TestInferErrors checks the families InferFamily refuses.
func TestInferErrors(t *testing.T) {
	sd2 := map[string][]int{
		UNetPrefix + "input_blocks.0.0.weight":                                 {320, 4, 3, 3},
		UNetPrefix + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": {320, 1024},
		OpenCLIPPrefix + "transformer.resblocks.0.attn.in_proj_weight":         {3072, 1024},
	}
	fam, err := InferFamily(declare(t, sd2))
	if err != nil || fam.Name != SD2Base.Name || !strings.Contains(fam.Note, "v-prediction") {
		t.Errorf("SD 2.x header: %+v, %v; want SD 2.x base with a note on v-prediction", fam, err)
	}
	mixed := sd15Header()
	mixed[UNetPrefix+"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = []int{320, 1024}
	mixed[UNetPrefix+"middle_block.1.transformer_blocks.0.attn2.to_k.weight"] = []int{1280, 1024}
	mixed[UNetPrefix+"input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"] = []int{320, 1024}
	mixed[UNetPrefix+"output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight"] = []int{320, 1024}
	inpaint := sd15Header()
	inpaint[UNetPrefix+"input_blocks.0.0.weight"] = []int{320, 9, 3, 3}
	xl := map[string][]int{
		UNetPrefix + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": {640, 2048},
		XLCLIPPrefix + "text_model.final_layer_norm.weight":                    {768},
		XLOpenCLIPPrefix + "ln_final.weight":                                   {1280},
	}
	if fam, err := InferFamily(declare(t, xl)); err != nil || fam.Name != SDXL.Name || fam.Note != "" {
		t.Errorf("SD-XL header: %+v, %v; want SD-XL base", fam, err)
	}
	refiner := map[string][]int{
		UNetPrefix + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": {768, 1280},
		"conditioner.embedders.0.model.ln_final.weight":                        {1280},
	}
	for name, c := range map[string]struct {
		shapes map[string][]int
		want   string
	}{
		"context 1024 with CLIP":  {mixed, "neither SD 1.x"},
		"inpainting":              {inpaint, "9 input channels"},
		"SD-XL refiner":           {refiner, "context 1280"},
		"tiny (context 32)":       {map[string][]int{UNetPrefix + "a.attn2.to_k.weight": {32, 32}, CLIPPrefix + "x": {1}}, "context 32"},
		"no cross-attention keys": {map[string][]int{UNetPrefix + "out.2.weight": {4, 4}}, "no UNet cross-attention weight"},
	} {
		_, err := InferFamily(declare(t, c.shapes))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "config folder") {
			t.Errorf("%s: %v; want an error saying %q and asking for a config folder", name, err, c.want)
		}
	}
}

// scriptUNetKey is the original key of a diffusers UNet key by the
// hard-coded SD 1.5 tables of diffusers v0.30.3
// scripts/convert_diffusers_to_original_stable_diffusion.py
// (unet_conversion_map, unet_conversion_map_resnet,
// unet_conversion_map_layer), applied as its convert_unet_state_dict does:
// whole-key renames, then ResNet inner names inside resnets, then the
// block prefixes, each a substring replacement.
func scriptUNetKey(k string) string {
	whole := map[string]string{
		"time_embedding.linear_1.weight": "time_embed.0.weight", "time_embedding.linear_1.bias": "time_embed.0.bias",
		"time_embedding.linear_2.weight": "time_embed.2.weight", "time_embedding.linear_2.bias": "time_embed.2.bias",
		"conv_in.weight": "input_blocks.0.0.weight", "conv_in.bias": "input_blocks.0.0.bias",
		"conv_norm_out.weight": "out.0.weight", "conv_norm_out.bias": "out.0.bias",
		"conv_out.weight": "out.2.weight", "conv_out.bias": "out.2.bias",
	}
	if v, ok := whole[k]; ok {
		return v
	}
	if strings.Contains(k, "resnets") {
		for _, p := range [][2]string{{"in_layers.0", "norm1"}, {"in_layers.2", "conv1"}, {"out_layers.0", "norm2"},
			{"out_layers.3", "conv2"}, {"emb_layers.1", "time_emb_proj"}, {"skip_connection", "conv_shortcut"}} {
			k = strings.ReplaceAll(k, p[1], p[0])
		}
	}
	var layer [][2]string // (sd, hf)
	for i := range 4 {
		for j := range 2 {
			layer = append(layer, [2]string{fmt.Sprintf("input_blocks.%d.0.", 3*i+j+1), fmt.Sprintf("down_blocks.%d.resnets.%d.", i, j)})
			if i < 3 {
				layer = append(layer, [2]string{fmt.Sprintf("input_blocks.%d.1.", 3*i+j+1), fmt.Sprintf("down_blocks.%d.attentions.%d.", i, j)})
			}
		}
		for j := range 3 {
			layer = append(layer, [2]string{fmt.Sprintf("output_blocks.%d.0.", 3*i+j), fmt.Sprintf("up_blocks.%d.resnets.%d.", i, j)})
			if i > 0 {
				layer = append(layer, [2]string{fmt.Sprintf("output_blocks.%d.1.", 3*i+j), fmt.Sprintf("up_blocks.%d.attentions.%d.", i, j)})
			}
		}
		if i < 3 {
			layer = append(layer, [2]string{fmt.Sprintf("input_blocks.%d.0.op.", 3*(i+1)), fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.", i)})
			up := 2
			if i == 0 {
				up = 1
			}
			layer = append(layer, [2]string{fmt.Sprintf("output_blocks.%d.%d.", 3*i+2, up), fmt.Sprintf("up_blocks.%d.upsamplers.0.", i)})
		}
	}
	layer = append(layer, [2]string{"middle_block.1.", "mid_block.attentions.0."})
	for j := range 2 {
		layer = append(layer, [2]string{fmt.Sprintf("middle_block.%d.", 2*j), fmt.Sprintf("mid_block.resnets.%d.", j)})
	}
	for _, p := range layer {
		k = strings.ReplaceAll(k, p[1], p[0])
	}
	return k
}

// TestSD15UNetNumbering declares a header holding every weight of the
// SD 1.5 UNet (names and shapes from the model built on the meter backend
// with the published config), named by the conversion script's own SD 1.5
// tables, and checks that the numbering derived from the config places
// each tensor back under its diffusers key with its shape.
func TestSD15UNetNumbering(t *testing.T) {
	ucfg, err := SD15.Folder().ReadFile("unet/config.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := unet.ParseConfig(ucfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := unet.NewDeclared(meter.New(), cfg, tensor.F16)
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]int{CLIPPrefix + "text_model.final_layer_norm.weight": {768}}
	want := map[string]tensor.Shape{}
	for _, p := range m.Params() {
		shapes[UNetPrefix+scriptUNetKey(p.Name)] = p.Shape
		want[p.Name] = p.Shape
	}
	if len(want) < 680 {
		t.Fatalf("the SD 1.5 UNet declared %d weights; want its ~686", len(want))
	}
	f := declare(t, shapes)
	if fam, err := InferFamily(f); err != nil || fam.Name != SD15.Name {
		t.Fatalf("inferred %+v, %v; want SD 1.5", fam, err)
	}
	u, err := f.Component(UNet, ucfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Names()) != len(want) {
		t.Errorf("%d converted keys, want %d", len(u.Names()), len(want))
	}
	for k, sh := range want {
		_, got, ok := u.Lookup(k)
		if !ok || !got.Equal(sh) {
			t.Errorf("%s: converted shape %v (found %v), want %v", k, got, ok, sh)
		}
	}
}
