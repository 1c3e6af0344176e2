package pipeline

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/models/vae"
	"github.com/tgate-web/tgate/pnginfo"
	"github.com/tgate-web/tgate/tensor"
)

// TestSDXLAddTimeIDs checks _get_add_time_ids and the negative rule
// against values written out from diffusers' definition
// (original_size + crops_coords_top_left + target_size; the negative ids
// differ only when both negative sizes are given), and the non-default
// row against the time ids of the UNet module golden.
func TestSDXLAddTimeIDs(t *testing.T) {
	io := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "sdxl_tiny_pipeline", "unet"), "io.safetensors"))
	golden64 := func(row int) []float64 {
		h := io["t901.in.time_ids"]
		out := make([]float64, 6)
		for i := range out {
			out[i] = float64(h.Data[row*6+i])
		}
		return out
	}
	micro := SDXLOptions{OriginalSize: ImageSize{1024, 768}, CropsCoordsTopLeft: CropOffset{64, 16}, TargetSize: ImageSize{1024, 1024}}
	cases := []struct {
		name     string
		opt      SDXLOptions
		pos, neg []float64
	}{
		{"defaults", SDXLOptions{}, golden64(0), golden64(0)},
		{"micro-conditioning (module golden row 1)", micro, golden64(1), golden64(1)},
		{"only the negative original size", SDXLOptions{NegativeOriginalSize: ImageSize{512, 512}, NegativeCropsCoordsTopLeft: CropOffset{8, 8}},
			[]float64{32, 32, 0, 0, 32, 32}, []float64{32, 32, 0, 0, 32, 32}},
		{"both negative sizes, default negative crop", SDXLOptions{OriginalSize: ImageSize{40, 48}, NegativeOriginalSize: ImageSize{512, 256}, NegativeTargetSize: ImageSize{64, 96}},
			[]float64{40, 48, 0, 0, 32, 32}, []float64{512, 256, 0, 0, 64, 96}},
		{"both negative sizes and crop", SDXLOptions{CropsCoordsTopLeft: CropOffset{4, 2}, NegativeOriginalSize: ImageSize{512, 256}, NegativeCropsCoordsTopLeft: CropOffset{10, 20}, NegativeTargetSize: ImageSize{64, 96}},
			[]float64{32, 32, 4, 2, 32, 32}, []float64{512, 256, 10, 20, 64, 96}},
	}
	for _, c := range cases {
		pos, neg := c.opt.addTimeIDs(32, 32)
		if !slices.Equal(pos, c.pos) || !slices.Equal(neg, c.neg) {
			t.Errorf("%s: add_time_ids %v / negative %v; want %v / %v", c.name, pos, neg, c.pos, c.neg)
		}
	}
	if err := (&SDXLOptions{TargetSize: ImageSize{-1, 32}}).validate(); err == nil {
		t.Errorf("a negative target size was accepted")
	}
}

// sdxlModuleGoldens are the hidden states and text_embeds of the SD-XL
// text encoders' module goldens for their three prompts: 0 the runs'
// prompt, 1 "", 2 "a photo of an astronaut riding a horse on mars".
type sdxlModuleGoldens struct {
	te1, te2, pooled *tensor.Host
}

func readSDXLModuleGoldens(t *testing.T) sdxlModuleGoldens {
	t.Helper()
	dir := golden.Dir(t, "golden", "sdxl_tiny_pipeline")
	te1 := golden.Tensors(t, filepath.Join(dir, "text_encoder", "io.safetensors"))
	te2 := golden.Tensors(t, filepath.Join(dir, "text_encoder_2", "io.safetensors"))
	// Each encoder with its own tokenizer's ids: pad 49407 for the
	// first, '!' = 0 for the second.
	return sdxlModuleGoldens{te1: te1["pad49407.out.hidden_states.2"], te2: te2["pad0.out.hidden_states.2"], pooled: te2["pad0.out.text_embeds"]}
}

// row returns batch row i of h as a tensor with batch 1.
func row(h *tensor.Host, i int) *tensor.Host {
	per := h.Shape.Numel() / h.Shape[0]
	shape := h.Shape.Clone()
	shape[0] = 1
	return &tensor.Host{Shape: shape, Data: append([]float32(nil), h.Data[i*per:(i+1)*per]...)}
}

// concatLast joins two [1, L, Da] and [1, L, Db] tensors along the last
// axis.
func concatLast(a, b *tensor.Host) *tensor.Host {
	l, da, db := a.Shape[1], a.Shape[2], b.Shape[2]
	out := tensor.New(1, l, da+db)
	for i := 0; i < l; i++ {
		copy(out.Data[i*(da+db):], a.Data[i*da:(i+1)*da])
		copy(out.Data[i*(da+db)+da:], b.Data[i*db:(i+1)*db])
	}
	return out
}

// expectedEmbeds is encode_prompt's prompt_embeds for module-golden
// prompts i (encoder 1) and j (encoder 2), and the pooled embedding of j.
func (g sdxlModuleGoldens) expectedEmbeds(i, j int) (embeds, pooled *tensor.Host) {
	return concatLast(row(g.te1, i), row(g.te2, j)), row(g.pooled, j)
}

// encodeForTest runs encodeSDXL with guidance and returns the negative
// and positive halves of the embeddings and pooled embeddings.
func encodeForTest(t *testing.T, p *Pipeline, req Request) (negEmb, posEmb, negPool, posPool *tensor.Host, warnings []string) {
	t.Helper()
	b := p.b
	embeds, cond, err := p.encodeSDXL(&req, true, 32, 32, func(w string) { warnings = append(warnings, w) }, func(string, bool) {})
	if err != nil {
		t.Fatal(err)
	}
	defer cond.release(b)
	defer b.Free(embeds)
	read := func(x backend.Tensor) *tensor.Host { return golden.ReadBack(t, b, x) }
	e, pl := read(embeds), read(cond.pooled)
	if e.Shape[0] != 2 || pl.Shape[0] != 2 {
		t.Fatalf("guided embeddings have batch %d and %d; want 2", e.Shape[0], pl.Shape[0])
	}
	if neg := read(cond.negPooled); !slices.Equal(neg.Data, row(pl, 0).Data) {
		t.Errorf("the batch-1 (after the gate) pooled embedding is not the negative row")
	}
	return row(e, 0), row(e, 1), row(pl, 0), row(pl, 1), warnings
}

// TestSDXLNegativePrompt checks the three negative-prompt cases of
// encode_prompt against the text encoders' module goldens: no negative
// prompt (zeros, as force_zeros_for_empty_prompt says), an explicitly
// encoded empty string, and a negative prompt that negative_prompt_2
// defaults to.
func TestSDXLNegativePrompt(t *testing.T) {
	p, err := Load(cpu.New(), golden.Dir(t, "golden", "sdxl_tiny_pipeline"), LoadOptions{SkipVAE: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	g := readSDXLModuleGoldens(t)
	const prompt = "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k"
	const other = "a photo of an astronaut riding a horse on mars"
	wantPos, wantPosPool := g.expectedEmbeds(0, 0)
	const tol = 1e-5

	// negative_prompt=None: zeros, no warning.
	negE, posE, negP, posP, warns := encodeForTest(t, p, Request{Prompt: prompt})
	golden.AssertClose(t, "prompt_embeds", posE, wantPos, tol)
	golden.AssertClose(t, "pooled_prompt_embeds", posP, wantPosPool, tol)
	if golden.MaxAbs(negE) != 0 || golden.MaxAbs(negP) != 0 {
		t.Errorf("negative_prompt=None: negative embeddings are not zeros (max %g, pooled %g)", golden.MaxAbs(negE), golden.MaxAbs(negP))
	}
	if len(warns) != 0 {
		t.Errorf("warnings %v", warns)
	}

	// negative_prompt="": "" is encoded by both encoders.
	negE, _, negP, _, _ = encodeForTest(t, p, Request{Prompt: prompt, SDXLOptions: SDXLOptions{EncodeEmptyNegativePrompt: true}})
	wantNeg, wantNegPool := g.expectedEmbeds(1, 1)
	golden.AssertClose(t, `negative_prompt="" embeds`, negE, wantNeg, tol)
	golden.AssertClose(t, `negative_prompt="" pooled`, negP, wantNegPool, tol)

	// A negative prompt; negative_prompt_2 defaults to it.
	negE, _, negP, _, _ = encodeForTest(t, p, Request{Prompt: prompt, NegativePrompt: other})
	wantNeg, wantNegPool = g.expectedEmbeds(2, 2)
	golden.AssertClose(t, "negative_prompt embeds", negE, wantNeg, tol)
	golden.AssertClose(t, "negative_prompt pooled", negP, wantNegPool, tol)

	// negative_prompt_2 alone under force_zeros: ignored, with a warning.
	negE, _, _, _, warns = encodeForTest(t, p, Request{Prompt: prompt, SDXLOptions: SDXLOptions{NegativePrompt2: other}})
	if golden.MaxAbs(negE) != 0 || len(warns) != 1 {
		t.Errorf("negative_prompt_2 without negative_prompt: max %g, warnings %v; want zeros and one warning", golden.MaxAbs(negE), warns)
	}

	// Without force_zeros_for_empty_prompt, no negative prompt means "".
	p.ForceZerosForEmptyPrompt = false
	negE, _, _, _, _ = encodeForTest(t, p, Request{Prompt: prompt})
	wantNeg, _ = g.expectedEmbeds(1, 1)
	golden.AssertClose(t, "negative_prompt=None without force_zeros", negE, wantNeg, tol)
}

// TestSDXLPrompt2 checks that prompt_2 goes to the second encoder only
// (its hidden states fill the last 32 features and its pooled embedding
// is the prompt's) and negative_prompt_2 likewise.
func TestSDXLPrompt2(t *testing.T) {
	p, err := Load(cpu.New(), golden.Dir(t, "golden", "sdxl_tiny_pipeline"), LoadOptions{SkipVAE: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	g := readSDXLModuleGoldens(t)
	req := Request{Prompt: "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k",
		NegativePrompt: "a photo of an astronaut riding a horse on mars"}
	req.Prompt2 = "a photo of an astronaut riding a horse on mars"
	req.NegativePrompt2 = "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k"
	negE, posE, negP, posP, _ := encodeForTest(t, p, req)
	want, wantPool := g.expectedEmbeds(0, 2)
	golden.AssertClose(t, "prompt_embeds with prompt_2", posE, want, 1e-5)
	golden.AssertClose(t, "pooled with prompt_2", posP, wantPool, 1e-5)
	want, wantPool = g.expectedEmbeds(2, 0)
	golden.AssertClose(t, "negative_prompt_embeds with negative_prompt_2", negE, want, 1e-5)
	golden.AssertClose(t, "negative pooled with negative_prompt_2", negP, wantPool, 1e-5)
}

// TestSDXLRunText compares the text conditioning with the run files'
// encode_prompt outputs and time ids.
func TestSDXLRunText(t *testing.T) {
	r := readRun(t, "sdxl_euler_baseline")
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "sdxl_euler_baseline.safetensors"))
	p, err := Load(cpu.New(), golden.Dir(t, "golden", "sdxl_tiny_pipeline"), LoadOptions{SkipVAE: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	req := requestFor(t, r, nil)
	negE, posE, negP, posP, _ := encodeForTest(t, p, req)
	golden.AssertClose(t, "text.prompt_embeds", posE, gold["text.prompt_embeds"], 1e-5)
	golden.AssertClose(t, "text.pooled_prompt_embeds", posP, gold["text.pooled_prompt_embeds"], 1e-5)
	golden.AssertClose(t, "text.negative_prompt_embeds", negE, gold["text.negative_prompt_embeds"], 0)
	golden.AssertClose(t, "text.negative_pooled_prompt_embeds", negP, gold["text.negative_pooled_prompt_embeds"], 0)
	pos, neg := req.SDXLOptions.addTimeIDs(r.Call.Height, r.Call.Width)
	for name, ids := range map[string][]float64{"text.add_time_ids": pos, "text.negative_add_time_ids": neg} {
		want := gold[name]
		for i, v := range want.Data {
			if float64(v) != ids[i] {
				t.Errorf("%s = %v, golden %v", name, ids, want.Data)
				break
			}
		}
	}
}

// TestSDXLSettings checks the PNG settings of non-default SD-XL options,
// read back through the settings line's parser.
func TestSDXLSettings(t *testing.T) {
	p := &Pipeline{Kind: StableDiffusionXL, VAEConfig: &vae.Config{BlockOutChannels: []int{16, 32}}}
	req := Request{Prompt: "a", Scheduler: "euler", Steps: 10, Guidance: DefaultGuidance}
	req.Prompt2 = "b, with a comma"
	req.OriginalSize = ImageSize{1024, 768}
	req.CropsCoordsTopLeft = CropOffset{64, 16}
	req.NegativeTargetSize = ImageSize{512, 256}
	s := p.Settings(req, &Result{Latents: tensor.New(1, 4, 16, 16)}, "m")
	parsed, err := pnginfo.Parse(pnginfo.Format(s))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Prompt 2": "b, with a comma", "Original size": "1024,768",
		"Crops coords top left": "64,16", "Negative target size": "512,256"}
	got := map[string]string{}
	for _, kv := range parsed.Extra {
		got[kv.Key] = kv.Value
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (settings %q)", k, got[k], v, pnginfo.Format(s))
		}
	}
	if _, ok := got["Target size"]; ok {
		t.Errorf("the default target size was recorded")
	}
	if parsed.Guidance != 5 {
		t.Errorf("guidance %g, want SD-XL's default 5", parsed.Guidance)
	}
}
