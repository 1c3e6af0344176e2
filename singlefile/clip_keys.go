package singlefile

import (
	"strings"
)

// clipConverter is convert_ldm_clip_checkpoint's renaming of an SD 1.x
// text encoder (key without cond_stage_model.transformer.): the keys are
// transformers' CLIPTextModel keys already. Files written by transformers
// before the text_model. level existed get it added; position_ids (a
// buffer, not a weight) is left out.
func clipConverter(key string) ([]target, bool) {
	if strings.HasSuffix(key, "position_ids") {
		return nil, false
	}
	if !strings.HasPrefix(key, "text_model.") {
		key = "text_model." + key
	}
	return []target{{key: key}}, true
}

// openCLIPLayerInner renames the parts of an OpenCLIP residual attention
// block (open_clip transformer.ResidualAttentionBlock) to transformers'
// CLIPEncoderLayer.
var openCLIPLayerInner = map[string]string{
	"ln_1":          "layer_norm1",
	"ln_2":          "layer_norm2",
	"mlp.c_fc":      "mlp.fc1",
	"mlp.c_proj":    "mlp.fc2",
	"attn.out_proj": "self_attn.out_proj",
}

// openCLIPConverter is convert_open_clip_checkpoint's renaming of an SD
// 2.x OpenCLIP text encoder (key without its prefix) to
// transformers' CLIPTextModel: token_embedding, positional_embedding and
// ln_final become text_model.embeddings.* and final_layer_norm;
// transformer.resblocks.i becomes text_model.encoder.layers.i, and the
// fused attention projection attn.in_proj_weight/bias [3C, …] splits into
// its three row blocks q_proj, k_proj, v_proj (contiguous byte ranges, so
// nothing is copied). text_projection and logit_scale have no place in
// CLIPTextModel and are left out, as are layers beyond the config's
// num_hidden_layers (SD 2.x uses the penultimate layer), which are simply
// never bound.
func openCLIPConverter(key string) ([]target, bool) {
	switch {
	case key == "token_embedding.weight":
		return []target{{key: "text_model.embeddings.token_embedding.weight"}}, true
	case key == "positional_embedding":
		return []target{{key: "text_model.embeddings.position_embedding.weight"}}, true
	case strings.HasPrefix(key, "ln_final."):
		return []target{{key: "text_model.final_layer_norm." + strings.TrimPrefix(key, "ln_final.")}}, true
	}
	rest, ok := strings.CutPrefix(key, "transformer.resblocks.")
	if !ok {
		return nil, false
	}
	layer, inner, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, false
	}
	base := "text_model.encoder.layers." + layer + "."
	switch inner {
	case "attn.in_proj_weight", "attn.in_proj_bias":
		suffix := ".weight"
		if inner == "attn.in_proj_bias" {
			suffix = ".bias"
		}
		var ts []target
		for i, p := range []string{"q_proj", "k_proj", "v_proj"} {
			ts = append(ts, target{key: base + "self_attn." + p + suffix, chunk: i, parts: 3})
		}
		return ts, true
	}
	dot := strings.LastIndex(inner, ".")
	if dot < 0 {
		return nil, false
	}
	to, ok := openCLIPLayerInner[inner[:dot]]
	if !ok {
		return nil, false
	}
	return []target{{key: base + to + inner[dot:]}}, true
}

// openCLIPProjectionConverter is openCLIPConverter for SD-XL's second text
// encoder, a CLIPTextModelWithProjection: open_clip's text_projection
// [hidden, projection] (applied as x @ P) becomes the Linear weight
// text_projection.weight [projection, hidden], its transpose.
func openCLIPProjectionConverter(key string) ([]target, bool) {
	if key == "text_projection" {
		return []target{{key: "text_projection.weight", transpose: true}}, true
	}
	return openCLIPConverter(key)
}
