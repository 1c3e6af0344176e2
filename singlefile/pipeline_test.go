package singlefile_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/models/clip"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/models/vae"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/singlefile"
	"github.com/tgate-web/tgate/tensor"
)

// scriptVAEKey is the original key of a diffusers AutoencoderKL key by
// the hard-coded SD tables of diffusers v0.30.3
// scripts/convert_diffusers_to_original_stable_diffusion.py
// (vae_conversion_map, vae_conversion_map_attn), applied as its
// convert_vae_state_dict does.
func scriptVAEKey(k string) string {
	layer := [][2]string{{"nin_shortcut", "conv_shortcut"}, {"norm_out", "conv_norm_out"}, {"mid.attn_1.", "mid_block.attentions.0."}}
	for i := range 4 {
		for j := range 2 {
			layer = append(layer, [2]string{fmt.Sprintf("encoder.down.%d.block.%d.", i, j), fmt.Sprintf("encoder.down_blocks.%d.resnets.%d.", i, j)})
		}
		if i < 3 {
			layer = append(layer, [2]string{fmt.Sprintf("down.%d.downsample.", i), fmt.Sprintf("down_blocks.%d.downsamplers.0.", i)})
			layer = append(layer, [2]string{fmt.Sprintf("up.%d.upsample.", 3-i), fmt.Sprintf("up_blocks.%d.upsamplers.0.", i)})
		}
		for j := range 3 {
			layer = append(layer, [2]string{fmt.Sprintf("decoder.up.%d.block.%d.", 3-i, j), fmt.Sprintf("decoder.up_blocks.%d.resnets.%d.", i, j)})
		}
	}
	for i := range 2 {
		layer = append(layer, [2]string{fmt.Sprintf("mid.block_%d.", i+1), fmt.Sprintf("mid_block.resnets.%d.", i)})
	}
	v := k
	for _, p := range layer {
		v = strings.ReplaceAll(v, p[1], p[0])
	}
	if strings.Contains(k, "attentions") {
		for _, p := range [][2]string{{"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."}} {
			v = strings.ReplaceAll(v, p[1], p[0])
		}
	}
	return v
}

// declaredParams builds a model on the meter backend and returns its
// weights' names and shapes.
func declaredParams(t *testing.T, build func(s *nn.Scope) error) []nn.Param {
	t.Helper()
	s := nn.NewDeclaredScope(meter.New(), tensor.F16)
	if err := build(s); err != nil {
		t.Fatal(err)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return s.Params()
}

// publishedShapes returns every tensor of a published single file of fam
// (UNet, VAE, text encoder), named as the original layout names them:
// the UNet and VAE by the conversion script's tables, the text encoder
// as CLIP or OpenCLIP (fused in_proj, an extra last layer and
// text_projection, which SD 2.x files carry), with the original shapes
// (1×1 conv kernels where the original modules are convolutions).
func publishedShapes(t *testing.T, fam singlefile.Family) map[string][]int {
	t.Helper()
	cfgs := fam.Folder()
	read := func(name string) []byte {
		data, err := cfgs.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	out := map[string][]int{}
	ucfg, err := unet.ParseConfig(read("unet/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := unet.NewDeclared(meter.New(), ucfg, tensor.F16)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range u.Params() {
		sh := []int(p.Shape.Clone())
		if !ucfg.UseLinearProj && (strings.HasSuffix(p.Name, "proj_in.weight") || strings.HasSuffix(p.Name, "proj_out.weight")) {
			sh = append(sh, 1, 1)
		}
		out[singlefile.UNetPrefix+singlefile.ScriptUNetKey(p.Name)] = sh
	}
	vcfg, err := vae.ParseConfig(read("vae/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range declaredParams(t, func(s *nn.Scope) error {
		if _, err := vae.NewEncoder(s, vcfg); err != nil {
			return err
		}
		_, err := vae.NewDecoder(s, vcfg)
		return err
	}) {
		sh := []int(p.Shape.Clone())
		if strings.Contains(p.Name, "attentions") && len(sh) == 2 {
			sh = append(sh, 1, 1)
		}
		out[singlefile.VAEPrefix+scriptVAEKey(p.Name)] = sh
	}
	ccfg, err := clip.ParseConfig(read("text_encoder/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	params := declaredParams(t, func(s *nn.Scope) error { _, err := clip.New(s, ccfg); return err })
	if fam.Name == singlefile.SD15.Name {
		for _, p := range params {
			out[singlefile.CLIPPrefix+p.Name] = p.Shape
		}
		return out
	}
	c := ccfg.HiddenSize
	oc := func(k string, sh ...int) { out[singlefile.OpenCLIPPrefix+k] = append([]int{}, sh...) }
	oc("token_embedding.weight", ccfg.VocabSize, c)
	oc("positional_embedding", ccfg.MaxPositionEmbeddings, c)
	oc("ln_final.weight", c)
	oc("ln_final.bias", c)
	oc("text_projection", c, c)
	oc("logit_scale")
	for i := range ccfg.NumHiddenLayers + 1 { // SD 2.x files hold the last layer too
		r := fmt.Sprintf("transformer.resblocks.%d.", i)
		oc(r+"attn.in_proj_weight", 3*c, c)
		oc(r+"attn.in_proj_bias", 3*c)
		for _, s := range []string{"weight", "bias"} {
			oc(r+"ln_1."+s, c)
			oc(r+"ln_2."+s, c)
			oc(r+"attn.out_proj."+s, append([]int{c}, map[string][]int{"weight": {c}}[s]...)...)
			oc(r+"mlp.c_fc."+s, append([]int{ccfg.IntermediateSize}, map[string][]int{"weight": {c}}[s]...)...)
			oc(r+"mlp.c_proj."+s, append([]int{c}, map[string][]int{"weight": {ccfg.IntermediateSize}}[s]...)...)
		}
	}
	return out
}

// TestLoadInferred loads declared headers with every tensor of the
// published SD 1.5 and SD 2.x single files (no data: the meter backend
// takes shapes only) with no config: the configs are inferred, every
// weight binds with the shape the published configs imply, and SD 2.x
// says it assumed ε-prediction.
func TestLoadInferred(t *testing.T) {
	for _, c := range []struct {
		fam       singlefile.Family
		context   int
		scheduler string
	}{
		{singlefile.SD15, 768, "PNDMScheduler"},
		{singlefile.SD2Base, 1024, "DDIMScheduler"},
	} {
		shapes := publishedShapes(t, c.fam)
		var loaded []string
		p, err := pipeline.LoadSingleFile(meter.New(), singlefile.DeclaredFile(shapes), "model.safetensors", nil,
			pipeline.LoadOptions{Loaded: func(c string) { loaded = append(loaded, c) }})
		if err != nil {
			t.Fatalf("%s: %v", c.fam.Name, err)
		}
		if got := p.UNet.Config.CrossAttentionDim.Values; len(got) != 1 || got[0] != c.context {
			t.Errorf("%s: cross_attention_dim %v, want %d", c.fam.Name, got, c.context)
		}
		if p.TextEncoder.Config.HiddenSize != c.context {
			t.Errorf("%s: text encoder width %d, want %d", c.fam.Name, p.TextEncoder.Config.HiddenSize, c.context)
		}
		if p.Scheduler.ClassName != c.scheduler || strings.Join(loaded, ",") != "text_encoder,unet,vae" {
			t.Errorf("%s: scheduler %s, loaded %v", c.fam.Name, p.Scheduler.ClassName, loaded)
		}
		if h, w := p.DefaultSize(); h != 512 || w != 512 {
			t.Errorf("%s: default size %dx%d, want 512x512", c.fam.Name, h, w)
		}
		// openai/CLIP's ids ("a photograph of an astronaut riding a
		// horse" is [49406 320 8853 539 550 18376 6765 320 4558 49407]).
		if ids := fmt.Sprint(p.Tokenizer.Encode("a photograph of an astronaut")); ids != "[320 8853 539 550 18376]" {
			t.Errorf("%s: tokenizer gives %v", c.fam.Name, ids)
		}
		wantNote := c.fam.Name == singlefile.SD2Base.Name
		if gotNote := len(p.Notes) == 1 && strings.Contains(p.Notes[0], "v-prediction"); gotNote != wantNote {
			t.Errorf("%s: notes %q", c.fam.Name, p.Notes)
		}
		t.Logf("%s: %d tensors declared; loaded with inferred %s configs; notes %q", c.fam.Name, len(shapes), c.fam.Repo, p.Notes)
		p.Close()
	}
}
