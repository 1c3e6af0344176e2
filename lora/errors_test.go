package lora

import (
	"strings"
	"testing"

	"github.com/tgate-web/tgate/tensor"
)

// goldenSubset returns the golden kohya tensors of the named modules.
func goldenSubset(t *testing.T, stems ...string) map[string]*tensor.Host {
	t.Helper()
	all := kohyaTensors(t)
	out := map[string]*tensor.Host{}
	for _, s := range stems {
		for _, suf := range []string{".lora_down.weight", ".lora_up.weight", ".alpha"} {
			out[s+suf] = all[s+suf]
		}
	}
	return out
}

const (
	toQ    = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
	teFC1  = "lora_te_text_model_encoder_layers_0_mlp_fc1"
	bogus  = "lora_unet_down_blocks_7_attentions_0_transformer_blocks_0_attn1_to_q"
	teBig2 = "lora_te2_text_model_encoder_layers_0_mlp_fc1"
)

// TestUnmatchedModules checks that modules matching no weight are an error
// naming them, that IgnoreUnmatched skips them, and that a module for a
// component the pipeline lacks is reported by Foreign.
func TestUnmatchedModules(t *testing.T) {
	ts := goldenSubset(t, toQ, teFC1)
	for _, suf := range []string{".lora_down.weight", ".lora_up.weight", ".alpha"} {
		ts[bogus+suf] = ts[toQ+suf]
	}
	f, err := writeLoRA(t, "unmatched", ts)
	if err != nil {
		t.Fatal(err)
	}
	base := tinyComponent(t, UNet)
	_, err = NewSource(base, UNet, []Layer{{File: f, Scale: 1}})
	if err == nil || !strings.Contains(err.Error(), bogus) || !strings.Contains(err.Error(), "match no weight") {
		t.Fatalf("error %v; want one naming %s", err, bogus)
	}
	if strings.Contains(err.Error(), toQ+",") || strings.HasSuffix(err.Error(), toQ) {
		t.Errorf("error names a module that matches: %v", err)
	}
	t.Logf("unmatched: %v", err)
	s, err := NewSource(base, UNet, []Layer{{File: f, Scale: 1, IgnoreUnmatched: true}})
	if err != nil {
		t.Fatal(err)
	}
	if keys := s.Plan().Keys(); len(keys) != 1 || keys[0] != "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight" {
		t.Errorf("with IgnoreUnmatched the plan changes %v", keys)
	}

	ts = goldenSubset(t, toQ)
	for _, suf := range []string{".lora_down.weight", ".lora_up.weight", ".alpha"} {
		ts[teBig2+suf] = goldenSubset(t, teFC1)[teFC1+suf]
	}
	f, err = writeLoRA(t, "sdxl", ts)
	if err != nil {
		t.Fatal(err)
	}
	err = Foreign([]Layer{{File: f, Scale: 1}}, UNet, TextEncoder)
	if err == nil || !strings.Contains(err.Error(), teBig2) {
		t.Fatalf("Foreign: %v; want an error naming %s", err, teBig2)
	}
	t.Logf("foreign: %v", err)
	if err := Foreign([]Layer{{File: f, Scale: 1}}, UNet, TextEncoder, TextEncoder2); err != nil {
		t.Errorf("Foreign with text_encoder_2: %v", err)
	}
}

// TestMalformedFiles checks the errors for files that are not well-formed
// LoRAs.
func TestMalformedFiles(t *testing.T) {
	cases := []struct {
		name string
		edit func(ts map[string]*tensor.Host)
		want []string
	}{
		{"missing up", func(ts map[string]*tensor.Host) { delete(ts, toQ+".lora_up.weight") }, []string{toQ, "no up weight"}},
		{"missing down", func(ts map[string]*tensor.Host) { delete(ts, teFC1+".lora_down.weight") }, []string{teFC1, "no down weight"}},
		{"alpha only", func(ts map[string]*tensor.Host) {
			delete(ts, toQ+".lora_up.weight")
			delete(ts, toQ+".lora_down.weight")
		}, []string{toQ, "neither"}},
		{"rank mismatch", func(ts map[string]*tensor.Host) { ts[toQ+".lora_down.weight"] = tensor.New(3, 32) }, []string{toQ, "rank mismatch"}},
		{"alpha not a number", func(ts map[string]*tensor.Host) { ts[toQ+".alpha"] = tensor.New(2) }, []string{toQ + ".alpha", "one number"}},
		{"up with a kernel", func(ts map[string]*tensor.Host) { ts[toQ+".lora_up.weight"] = tensor.New(32, 4, 3, 3) }, []string{toQ, "up weight has shape"}},
		{"foreign tensor", func(ts map[string]*tensor.Host) { ts["model.diffusion_model.out.2.weight"] = tensor.New(4) }, []string{"model.diffusion_model.out.2.weight", "not LoRA weights"}},
		{"LoHa", func(ts map[string]*tensor.Host) { ts[toQ+".hada_w1_a"] = tensor.New(4, 4) }, []string{toQ + ".hada_w1_a", "LoHa"}},
		{"mixed formats", func(ts map[string]*tensor.Host) {
			ts["unet.mid_block.attentions.0.proj_in.lora_A.weight"] = tensor.New(4, 64)
			ts["unet.mid_block.attentions.0.proj_in.lora_B.weight"] = tensor.New(64, 4)
		}, []string{"mixes key formats", "kohya", "PEFT"}},
		{"empty", func(ts map[string]*tensor.Host) {
			for k := range ts {
				delete(ts, k)
			}
			ts["x"] = tensor.New(1)
		}, []string{"not LoRA weights"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := goldenSubset(t, toQ, teFC1)
			tc.edit(ts)
			_, err := writeLoRA(t, "bad.safetensors", ts)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, "bad.safetensors") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestShapeDoesNotFit checks that an update whose shape disagrees with the
// weight it resolves to is an error naming both.
func TestShapeDoesNotFit(t *testing.T) {
	ts := goldenSubset(t, toQ)
	ts[toQ+".lora_down.weight"] = tensor.New(4, 64)
	f, err := writeLoRA(t, "wide", ts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewSource(tinyComponent(t, UNet), UNet, []Layer{{File: f, Scale: 1}})
	if err == nil || !strings.Contains(err.Error(), "does not fit") || !strings.Contains(err.Error(), "attn1.to_q.weight") {
		t.Fatalf("error %v; want a shape mismatch naming the weight", err)
	}
}

// TestAttentionProcessorForm reads diffusers' attention-processor names
// (<attn>.processor.to_q_lora.down.weight, to_out_lora for to_out.0) and
// checks they fuse as the kohya modules they were renamed from.
func TestAttentionProcessorForm(t *testing.T) {
	const toOut = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0"
	src := goldenSubset(t, toQ, toOut)
	attn := "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor."
	ts := map[string]*tensor.Host{}
	for stem, proj := range map[string]string{toQ: "to_q_lora", toOut: "to_out_lora"} {
		alpha := float64(src[stem+".alpha"].Data[0])
		up := src[stem+".lora_up.weight"]
		scaled := tensor.New(up.Shape...)
		for i, v := range up.Data {
			scaled.Data[i] = float32(float64(v) * alpha / float64(up.Shape[1]))
		}
		ts[attn+proj+".down.weight"] = src[stem+".lora_down.weight"]
		ts[attn+proj+".up.weight"] = scaled
	}
	f, err := writeLoRA(t, "processor", ts)
	if err != nil {
		t.Fatal(err)
	}
	if f.Format != Diffusers {
		t.Errorf("format %v, want %v", f.Format, Diffusers)
	}
	ref, err := writeLoRA(t, "kohya", src)
	if err != nil {
		t.Fatal(err)
	}
	base := tinyComponent(t, UNet)
	got, err := NewSource(base, UNet, []Layer{{File: f, Scale: 1}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := NewSource(base, UNet, []Layer{{File: ref, Scale: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if g, w := strings.Join(got.Plan().Keys(), " "), strings.Join(want.Plan().Keys(), " "); g != w {
		t.Fatalf("changed keys %s, want %s", g, w)
	}
	for _, key := range want.Plan().Keys() {
		a, _ := got.Fused(nil, key)
		b, _ := want.Fused(nil, key)
		if d := maxDiff(a, b); d > 1e-6 {
			t.Errorf("%s: differs by %.3g", key, d)
		}
	}
}
