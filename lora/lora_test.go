package lora

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// TestKohyaGoldenFile reads the golden kohya file and checks what its
// README states: 60 modules of rank 4 with alpha 2 (scaling 0.5), 48 in
// the UNet and 12 in the text encoder.
func TestKohyaGoldenFile(t *testing.T) {
	f, err := OpenPath(kohyaFile(t))
	if err != nil {
		t.Fatal(err)
	}
	if f.Format != Kohya {
		t.Errorf("format %v, want %v", f.Format, Kohya)
	}
	if f.Metadata["ss_network_dim"] != "4" {
		t.Errorf("metadata %v", f.Metadata)
	}
	count := map[string]int{}
	for _, m := range f.Modules {
		count[m.Component]++
		if m.Rank() != 4 || !m.HasAlpha || m.Alpha != 2 || m.Scaling() != 0.5 {
			t.Errorf("%s: rank %d alpha %g (stored %v) scaling %g; want 4, 2, 0.5", m.Key, m.Rank(), m.Alpha, m.HasAlpha, m.Scaling())
		}
	}
	if count[UNet] != 48 || count[TextEncoder] != 12 || len(f.Modules) != 60 {
		t.Errorf("modules per component %v (total %d); want unet 48, text_encoder 12", count, len(f.Modules))
	}
}

// TestResolveKohya maps every kohya module onto the tiny pipeline's keys
// and checks the names the README lists.
func TestResolveKohya(t *testing.T) {
	f, err := OpenPath(kohyaFile(t))
	if err != nil {
		t.Fatal(err)
	}
	layers := []Layer{{File: f, Scale: 1}}
	want := map[string]map[string]string{
		UNet: {
			"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q":     "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
			"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0": "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.weight",
			"lora_unet_mid_block_attentions_0_proj_in":                                 "mid_block.attentions.0.proj_in.weight",
			"lora_unet_up_blocks_1_attentions_1_transformer_blocks_0_ff_net_0_proj":    "up_blocks.1.attentions.1.transformer_blocks.0.ff.net.0.proj.weight",
		},
		TextEncoder: {
			"lora_te_text_model_encoder_layers_0_self_attn_q_proj": "text_model.encoder.layers.0.self_attn.q_proj.weight",
			"lora_te_text_model_encoder_layers_1_mlp_fc2":          "text_model.encoder.layers.1.mlp.fc2.weight",
		},
	}
	total := 0
	for _, comp := range []string{UNet, TextEncoder} {
		s, err := NewSource(tinyComponent(t, comp), comp, layers)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for key, terms := range s.Plan().Terms {
			if len(terms) != 1 || terms[0].Coef != 0.5 {
				t.Errorf("%s: terms %v; want one with coefficient 0.5", key, terms)
			}
			got[terms[0].Module.Key] = key
		}
		total += len(got)
		for mod, key := range want[comp] {
			if got[mod] != key {
				t.Errorf("%s: %q resolved to %q, want %q", comp, mod, got[mod], key)
			}
		}
		// The patched weight is reported as F32 with the base shape.
		for key := range s.Plan().Terms {
			dt, shape, ok := s.Lookup(key)
			_, base, _ := tinyComponent(t, comp).Lookup(key)
			if !ok || dt != tensor.F32 || !shape.Equal(base) {
				t.Errorf("%s: Lookup gives %v %v %v; want F32 %v", key, dt, shape, ok, base)
			}
		}
	}
	if total != 60 {
		t.Errorf("%d modules resolved, want 60", total)
	}
}

// TestFormatsAgree builds diffusers-format files from the kohya one by
// renaming (PEFT lora_A/lora_B with and without base_model.model., with
// alphas kept or folded into the up weights; pre-PEFT .lora.down/.lora.up)
// and checks every format gives the kohya file's fused weights.
func TestFormatsAgree(t *testing.T) {
	kohya, err := OpenPath(kohyaFile(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name             string
		prefix, down, up string
		keepAlpha        bool
		format           Format
	}{
		{"peft", "", ".lora_A.weight", ".lora_B.weight", false, PEFT},
		{"peft-alpha", "", ".lora_A.weight", ".lora_B.weight", true, PEFT},
		{"peft-base-model", "base_model.model.", ".lora_A.weight", ".lora_B.weight", false, PEFT},
		{"diffusers", "", ".lora.down.weight", ".lora.up.weight", true, Diffusers},
	}
	b := cpu.New()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := writeLoRA(t, tc.name, renamed(t, tc.prefix, tc.down, tc.up, tc.keepAlpha))
			if err != nil {
				t.Fatal(err)
			}
			if f.Format != tc.format {
				t.Errorf("format %v, want %v", f.Format, tc.format)
			}
			for _, comp := range []string{UNet, TextEncoder} {
				base := tinyComponent(t, comp)
				ref, err := NewSource(base, comp, []Layer{{File: kohya, Scale: 1}})
				if err != nil {
					t.Fatal(err)
				}
				got, err := NewSource(base, comp, []Layer{{File: f, Scale: 1}})
				if err != nil {
					t.Fatal(err)
				}
				if a, b := ref.Plan().Keys(), got.Plan().Keys(); strings.Join(a, ",") != strings.Join(b, ",") {
					t.Fatalf("%s: changed keys differ:\nkohya %v\n%s %v", comp, a, tc.name, b)
				}
				worst := 0.0
				for _, key := range ref.Plan().Keys() {
					w0, err := ref.Fused(b, key)
					if err != nil {
						t.Fatal(err)
					}
					w1, err := got.Fused(b, key)
					if err != nil {
						t.Fatal(err)
					}
					worst = math.Max(worst, maxDiff(w0, w1))
				}
				t.Logf("%s: %d weights, max |kohya − %s| = %.3g", comp, len(ref.Plan().Keys()), tc.name, worst)
				if worst > 1e-6 {
					t.Errorf("%s: fused weights differ from the kohya file's by %.3g", comp, worst)
				}
			}
		})
	}
}

// TestScaleHalf checks W + 0.5·(alpha/r)·up @ down against a computation
// from the file's tensors read without this package, on linear, 1×1
// convolution and text-encoder weights.
func TestScaleHalf(t *testing.T) {
	f, err := OpenPath(kohyaFile(t))
	if err != nil {
		t.Fatal(err)
	}
	raw := kohyaTensors(t)
	b := cpu.New()
	for _, tc := range []struct{ comp, stem, key string }{
		{UNet, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"},
		{UNet, "lora_unet_mid_block_attentions_0_proj_out", "mid_block.attentions.0.proj_out.weight"},
		{UNet, "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_ff_net_0_proj", "up_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj.weight"},
		{TextEncoder, "lora_te_text_model_encoder_layers_1_self_attn_out_proj", "text_model.encoder.layers.1.self_attn.out_proj.weight"},
	} {
		base := tinyComponent(t, tc.comp)
		s, err := NewSource(base, tc.comp, []Layer{{File: f, Scale: 0.5}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Fused(b, tc.key)
		if err != nil {
			t.Fatal(err)
		}
		w, err := base.Checkpoint().ReadFloat32(tc.key)
		if err != nil {
			t.Fatal(err)
		}
		down, up, alpha := raw[tc.stem+".lora_down.weight"], raw[tc.stem+".lora_up.weight"], float64(raw[tc.stem+".alpha"].Data[0])
		want := lowRankUpdate(w, up, down, 0.5*alpha/float64(down.Shape[0]))
		d := maxDiff(got, want)
		t.Logf("%s: max |fused − independent| = %.3g (update size %.3g)", tc.key, d, maxDiff(want, w))
		if d > 1e-6 || maxDiff(want, w) < 1e-3 {
			t.Errorf("%s: fused weight differs by %.3g from W + 0.5·(α/r)·up@down", tc.key, d)
		}
	}
}

// TestStackedLoRAs checks that two layers add: the file at scales 1 and
// −0.5 equals the file at 0.5, and at scales 0.25 and −0.25 the base.
func TestStackedLoRAs(t *testing.T) {
	f, err := OpenPath(kohyaFile(t))
	if err != nil {
		t.Fatal(err)
	}
	b := cpu.New()
	base := tinyComponent(t, UNet)
	one, err := NewSource(base, UNet, []Layer{{File: f, Scale: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	two, err := NewSource(base, UNet, []Layer{{File: f, Scale: 1}, {File: f, Scale: -0.5}})
	if err != nil {
		t.Fatal(err)
	}
	none, err := NewSource(base, UNet, []Layer{{File: f, Scale: 0.25}, {File: f, Scale: -0.25}})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range one.Plan().Keys() {
		w1, _ := one.Fused(b, key)
		w2, _ := two.Fused(b, key)
		w0, _ := none.Fused(b, key)
		w, _ := base.Checkpoint().ReadFloat32(key)
		if d := maxDiff(w1, w2); d > 1e-6 {
			t.Errorf("%s: scales 1 and −0.5 differ from 0.5 by %.3g", key, d)
		}
		if d := maxDiff(w0, w); d > 1e-6 {
			t.Errorf("%s: scales 0.25 and −0.25 differ from the base by %.3g", key, d)
		}
	}
}

// TestConvLoCon fuses a 3×3 down with a 1×1 up (kohya's LoCon) into a
// resnet convolution and checks it against the kernel Σ_r up[o,r]·down[r].
func TestConvLoCon(t *testing.T) {
	const key, r = "down_blocks.0.resnets.0.conv1.weight", 2
	base := tinyComponent(t, UNet)
	w, err := base.Checkpoint().ReadFloat32(key)
	if err != nil {
		t.Fatal(err)
	}
	out, in := w.Shape[0], w.Shape[1]
	down, up := tensor.New(r, in, 3, 3), tensor.New(out, r, 1, 1)
	for i := range down.Data {
		down.Data[i] = float32(math.Sin(float64(i)))
	}
	for i := range up.Data {
		up.Data[i] = float32(math.Cos(float64(3 * i)))
	}
	alpha := tensor.New()
	alpha.Data[0] = 1
	f, err := writeLoRA(t, "locon", map[string]*tensor.Host{
		"lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight": down,
		"lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight":   up,
		"lora_unet_down_blocks_0_resnets_0_conv1.alpha":            alpha,
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSource(base, UNet, []Layer{{File: f, Scale: 0.8}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Fused(cpu.New(), key)
	if err != nil {
		t.Fatal(err)
	}
	want := w.Shape.Clone()
	wantW := tensor.New(want...)
	for o := range out {
		for c := range in {
			for k := range 9 {
				sum := 0.0
				for j := range r {
					sum += float64(up.Data[o*r+j]) * float64(down.Data[(j*in+c)*9+k])
				}
				i := (o*in+c)*9 + k
				wantW.Data[i] = float32(float64(w.Data[i]) + 0.8*0.5*sum)
			}
		}
	}
	if d := maxDiff(got, wantW); d > 1e-6 {
		t.Errorf("LoCon fused kernel differs by %.3g", d)
	}
	b := cpu.New()
	dev, err := s.Load(b, key)
	if err != nil {
		t.Fatal(err)
	}
	onDevice := golden.ReadBack(t, b, dev)
	if !onDevice.Shape.Equal(w.Shape) {
		t.Errorf("device kernel shape %v, want %v", onDevice.Shape, w.Shape)
	}
	if d := maxDiff(onDevice, wantW); d > 1e-5 {
		t.Errorf("LoCon kernel fused on the device differs by %.3g", d)
	}
}

// lowRankUpdate computes w + coef·up @ down in float64, for [out, r(,1,1)]
// up and [r, in(,1,1)] down.
func lowRankUpdate(w, up, down *tensor.Host, coef float64) *tensor.Host {
	out := tensor.New(w.Shape...)
	rows, r := up.Shape[0], up.Shape[1]
	cols := len(w.Data) / rows
	for o := range rows {
		for c := range cols {
			sum := 0.0
			for j := range r {
				sum += float64(up.Data[o*r+j]) * float64(down.Data[j*cols+c])
			}
			out.Data[o*cols+c] = float32(float64(w.Data[o*cols+c]) + coef*sum)
		}
	}
	return out
}

// maxDiff is max |a − b|; +Inf when the sizes differ.
func maxDiff(a, b *tensor.Host) float64 {
	if len(a.Data) != len(b.Data) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a.Data {
		m = math.Max(m, math.Abs(float64(a.Data[i])-float64(b.Data[i])))
	}
	return m
}

// TestDeviceFuse checks Load, which fuses on the backend, against the
// host's float64 Fused, for two stacked layers on F32 weights and on the
// same weights stored as F16.
func TestDeviceFuse(t *testing.T) {
	f, err := OpenPath(kohyaFile(t))
	if err != nil {
		t.Fatal(err)
	}
	layers := []Layer{{File: f, Scale: 0.7}, {File: f, Scale: -0.2}}
	b := cpu.New()
	unetBase := tinyComponent(t, UNet)
	half := map[string]*tensor.Host{}
	for _, n := range unetBase.Names() {
		h, err := unetBase.Checkpoint().ReadFloat32(n)
		if err != nil {
			t.Fatal(err)
		}
		half[n] = h
	}
	path := filepath.Join(t.TempDir(), "unet.fp16.safetensors")
	var named []safetensors.Named
	for n, h := range half {
		named = append(named, safetensors.FromHost(n, h, tensor.F16))
	}
	if err := safetensors.WriteFile(path, nil, named); err != nil {
		t.Fatal(err)
	}
	halfBase, err := hub.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer halfBase.Close()
	for _, tc := range []struct {
		name, comp string
		base       Base
	}{
		{"unet F32", UNet, unetBase},
		{"text encoder F32", TextEncoder, tinyComponent(t, TextEncoder)},
		{"unet F16", UNet, halfBase},
	} {
		s, err := NewSource(tc.base, tc.comp, layers)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for _, key := range s.Plan().Keys() {
			dev, err := s.Load(b, key)
			if err != nil {
				t.Fatal(err)
			}
			got := golden.ReadBack(t, b, dev)
			b.Free(dev)
			want, err := s.Fused(b, key)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Shape.Equal(want.Shape) {
				t.Fatalf("%s: device shape %v, host %v", key, got.Shape, want.Shape)
			}
			worst = math.Max(worst, maxDiff(got, want))
		}
		t.Logf("%s: %d weights, max |device − host| = %.3g", tc.name, len(s.Plan().Keys()), worst)
		if worst > 1e-6 {
			t.Errorf("%s: device fuse differs from the host's by %.3g", tc.name, worst)
		}
	}
}
