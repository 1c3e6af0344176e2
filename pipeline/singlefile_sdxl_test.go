package pipeline

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// sdxlOriginalUNetKey names a diffusers SD-XL UNet key as sgm's
// original SD-XL checkpoints do, by the tables of diffusers v0.30.3
// scripts/convert_diffusers_to_original_sdxl.py (3 levels,
// layers_per_block 2, cross-attention on down levels 1–2 and up levels
// 0–1, an up level's upsampler after its attention at output_blocks.{3i+2}.2,
// add_embedding as label_emb.0).
func sdxlOriginalUNetKey(k string) string {
	whole := map[string]string{"conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
		"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
		"add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2."}
	for hf, sd := range whole {
		if strings.HasPrefix(k, hf) {
			return sd + strings.TrimPrefix(k, hf)
		}
	}
	if strings.Contains(k, "resnets") {
		for _, p := range [][2]string{{"in_layers.0", "norm1"}, {"in_layers.2", "conv1"}, {"out_layers.0", "norm2"},
			{"out_layers.3", "conv2"}, {"emb_layers.1", "time_emb_proj"}, {"skip_connection", "conv_shortcut"}} {
			k = strings.ReplaceAll(k, p[1], p[0])
		}
	}
	var layer [][2]string // (sd, hf)
	for i := range 3 {
		for j := range 2 {
			layer = append(layer, [2]string{fmt.Sprintf("input_blocks.%d.0.", 3*i+j+1), fmt.Sprintf("down_blocks.%d.resnets.%d.", i, j)})
			if i > 0 {
				layer = append(layer, [2]string{fmt.Sprintf("input_blocks.%d.1.", 3*i+j+1), fmt.Sprintf("down_blocks.%d.attentions.%d.", i, j)})
			}
		}
		for j := range 3 {
			layer = append(layer, [2]string{fmt.Sprintf("output_blocks.%d.0.", 3*i+j), fmt.Sprintf("up_blocks.%d.resnets.%d.", i, j)})
			if i < 2 {
				layer = append(layer, [2]string{fmt.Sprintf("output_blocks.%d.1.", 3*i+j), fmt.Sprintf("up_blocks.%d.attentions.%d.", i, j)})
			}
		}
		if i < 2 {
			layer = append(layer, [2]string{fmt.Sprintf("input_blocks.%d.0.op.", 3*(i+1)), fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.", i)})
			layer = append(layer, [2]string{fmt.Sprintf("output_blocks.%d.2.", 3*i+2), fmt.Sprintf("up_blocks.%d.upsamplers.0.", i)})
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

// originalVAEKey names a diffusers AutoencoderKL key of a VAE with levels
// levels and layers_per_block 1 by the loops of the conversion scripts'
// vae_conversion_map (4 levels there), attention projections as 1×1
// convs.
func originalVAEKey(k string, levels int) (string, bool) {
	layer := [][2]string{{"nin_shortcut", "conv_shortcut"}, {"norm_out", "conv_norm_out"}, {"mid.attn_1.", "mid_block.attentions.0."}}
	for i := range levels {
		layer = append(layer, [2]string{fmt.Sprintf("encoder.down.%d.block.0.", i), fmt.Sprintf("encoder.down_blocks.%d.resnets.0.", i)})
		if i < levels-1 {
			layer = append(layer, [2]string{fmt.Sprintf("down.%d.downsample.", i), fmt.Sprintf("down_blocks.%d.downsamplers.0.", i)})
			layer = append(layer, [2]string{fmt.Sprintf("up.%d.upsample.", levels-1-i), fmt.Sprintf("up_blocks.%d.upsamplers.0.", i)})
		}
		for j := range 2 {
			layer = append(layer, [2]string{fmt.Sprintf("decoder.up.%d.block.%d.", levels-1-i, j), fmt.Sprintf("decoder.up_blocks.%d.resnets.%d.", i, j)})
		}
	}
	for i := range 2 {
		layer = append(layer, [2]string{fmt.Sprintf("mid.block_%d.", i+1), fmt.Sprintf("mid_block.resnets.%d.", i)})
	}
	v := k
	for _, p := range layer {
		v = strings.ReplaceAll(v, p[1], p[0])
	}
	conv := false
	if strings.Contains(k, "attentions") {
		for _, p := range [][2]string{{"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."}} {
			v = strings.ReplaceAll(v, p[1], p[0])
		}
		conv = strings.HasSuffix(k, ".weight") && !strings.Contains(k, "group_norm")
	}
	return v, conv
}

// transposed returns the transpose of a matrix.
func transposed(h *tensor.Host) *tensor.Host {
	r, c := h.Shape[0], h.Shape[1]
	out := tensor.New(c, r)
	for i := range r {
		for j := range c {
			out.Data[j*r+i] = h.Data[i*c+j]
		}
	}
	return out
}

// writeSDXLSingleFile writes the tiny SD-XL folder's weights as an
// original SD-XL single file: the UNet and VAE by the conversion tables,
// the first text encoder under conditioner.embedders.0.transformer., the
// second in open_clip's layout under conditioner.embedders.1.model.
// (fused in_proj, text_projection = the Linear weight transposed).
func writeSDXLSingleFile(t *testing.T, dir string) string {
	t.Helper()
	var named []safetensors.Named
	put := func(k string, h *tensor.Host) { named = append(named, safetensors.FromHost(k, h, tensor.F32)) }
	for k, h := range golden.Tensors(t, filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors")) {
		put("model.diffusion_model."+sdxlOriginalUNetKey(k), h)
	}
	for k, h := range golden.Tensors(t, filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors")) {
		o, conv := originalVAEKey(k, 2)
		if conv {
			h = &tensor.Host{Shape: tensor.Shape{h.Shape[0], h.Shape[1], 1, 1}, Data: h.Data}
		}
		put("first_stage_model."+o, h)
	}
	for k, h := range golden.Tensors(t, filepath.Join(dir, "text_encoder", "model.safetensors")) {
		put("conditioner.embedders.0.transformer."+k, h)
	}
	ws := golden.Tensors(t, filepath.Join(dir, "text_encoder_2", "model.safetensors"))
	oc := func(k string, h *tensor.Host) { put("conditioner.embedders.1.model."+k, h) }
	oc("token_embedding.weight", ws["text_model.embeddings.token_embedding.weight"])
	oc("positional_embedding", ws["text_model.embeddings.position_embedding.weight"])
	oc("ln_final.weight", ws["text_model.final_layer_norm.weight"])
	oc("ln_final.bias", ws["text_model.final_layer_norm.bias"])
	oc("text_projection", transposed(ws["text_projection.weight"]))
	for i := 0; ; i++ {
		l := fmt.Sprintf("text_model.encoder.layers.%d.", i)
		if ws[l+"layer_norm1.weight"] == nil {
			break
		}
		r := fmt.Sprintf("transformer.resblocks.%d.", i)
		for _, s := range []string{"weight", "bias"} {
			q, k, v := ws[l+"self_attn.q_proj."+s], ws[l+"self_attn.k_proj."+s], ws[l+"self_attn.v_proj."+s]
			shape := q.Shape.Clone()
			shape[0] *= 3
			fused := &tensor.Host{Shape: shape, Data: append(append(append([]float32{}, q.Data...), k.Data...), v.Data...)}
			oc(r+"attn.in_proj_"+s, fused)
			oc(r+"attn.out_proj."+s, ws[l+"self_attn.out_proj."+s])
			oc(r+"ln_1."+s, ws[l+"layer_norm1."+s])
			oc(r+"ln_2."+s, ws[l+"layer_norm2."+s])
			oc(r+"mlp.c_fc."+s, ws[l+"mlp.fc1."+s])
			oc(r+"mlp.c_proj."+s, ws[l+"mlp.fc2."+s])
		}
	}
	path := filepath.Join(t.TempDir(), "sdxl_tiny.safetensors")
	if err := safetensors.WriteFile(path, nil, named); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSingleFileSDXL loads an original-layout SD-XL file made from the
// tiny SD-XL folder, with that folder as config, and reproduces the
// sdxl_euler_baseline run: the same latents as the folder itself.
func TestSingleFileSDXL(t *testing.T) {
	dir := golden.Dir(t, "golden", "sdxl_tiny_pipeline")
	path := writeSDXLSingleFile(t, dir)
	p, err := LoadSingleFilePath(cpu.New(), path, dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Kind != StableDiffusionXL {
		t.Fatalf("kind %v, want %v", p.Kind, StableDiffusionXL)
	}
	got, gold := runLatents(t, p, "sdxl_euler_baseline", func(r *Request) { r.Scheduler, r.TimestepSpacing = "", "" })
	abs, _ := golden.Diff(got, gold["final.latents"])
	t.Logf("SD-XL single file sdxl_euler_baseline final latents: max abs diff %.3g from the golden", abs)
	golden.AssertClose(t, "final.latents", got, gold["final.latents"], 1e-4)
	folder, err := Load(cpu.New(), dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer folder.Close()
	want, _ := runLatents(t, folder, "sdxl_euler_baseline", func(r *Request) { r.Scheduler, r.TimestepSpacing = "", "" })
	if abs, _ := golden.Diff(got, want); abs != 0 {
		t.Errorf("SD-XL single file and folder differ by %g; want identical", abs)
	}
}
