package pipeline

import (
	"context"
	"errors"
	"io/fs"
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

// baselineRequest is runs/pixart_dpm_baseline's call: its prompt, steps,
// guidance, size and initial latents, without resolution binning, latents
// only.
func baselineRequest(t *testing.T) (Request, map[string]*tensor.Host) {
	t.Helper()
	r := readRun(t, "pixart_dpm_baseline")
	run := golden.Tensors(t, golden.Dir(t, "golden", "runs", "pixart_dpm_baseline.safetensors"))
	req := Request{Prompt: r.Call.Prompt, Steps: r.Call.Steps, Guidance: r.Call.Guidance,
		Latents: run["init.latents"], Decoder: DecodeNone,
		PixArtOptions: PixArtOptions{NoResolutionBinning: true}}
	req.Height, req.Width = r.Call.Height, r.Call.Width
	return req, run
}

// loadPixArtTiny loads the tiny PixArt pipeline with opt, closed at the
// end of the test.
func loadPixArtTiny(t *testing.T, b backend.Backend, opt LoadOptions) *Pipeline {
	t.Helper()
	p, err := Load(b, golden.Dir(t, "golden", "pixart_tiny_pipeline"), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestPixArtPromptEmbedsSaved encodes the baseline's prompt with the tiny
// pipeline's own T5, writes the embeddings with SavePromptEmbeds, and
// generates from that file on a pipeline loaded without the T5 weights:
// the final latents are runs/pixart_dpm_baseline's.
func TestPixArtPromptEmbedsSaved(t *testing.T) {
	req, run := baselineRequest(t)
	var saved *PromptEmbeds
	enc := req
	enc.Steps = 1 // only the encoding is wanted
	enc.EncodedPrompt = func(e *PromptEmbeds) error { saved = e; return nil }
	p := loadPixArtTiny(t, cpu.New(), LoadOptions{SkipVAE: true})
	if _, err := p.Generate(context.Background(), enc); err != nil {
		t.Fatal(err)
	}
	if saved == nil {
		t.Fatal("EncodedPrompt was not called")
	}
	golden.AssertClose(t, "encoded prompt_embeds", saved.PromptEmbeds, run["text.prompt_embeds"], pixartTol)
	golden.AssertClose(t, "encoded negative_prompt_embeds", saved.NegativePromptEmbeds, run["text.negative_prompt_embeds"], pixartTol)
	path := filepath.Join(t.TempDir(), "cactus.safetensors")
	if err := SavePromptEmbeds(path, saved); err != nil {
		t.Fatal(err)
	}
	// The file has encode_prompt's names, dtypes and shapes.
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		name, dtype string
		shape       tensor.Shape
	}{
		{NamePromptEmbeds, "F32", tensor.Shape{1, 120, 32}}, {NamePromptAttentionMask, "I64", tensor.Shape{1, 120}},
		{NameNegativePromptEmbeds, "F32", tensor.Shape{1, 120, 32}}, {NameNegativePromptAttentionMask, "I64", tensor.Shape{1, 120}},
	} {
		info, ok := f.Info(w.name)
		if !ok || info.DType != w.dtype || !info.Shape.Equal(w.shape) {
			t.Errorf("%s: %s %v (present %v), want %s %v", w.name, info.DType, info.Shape, ok, w.dtype, w.shape)
		}
	}
	f.Close()

	b := cpu.New()
	q := loadPixArtTiny(t, b, LoadOptions{SkipTextEncoder: true, SkipVAE: true})
	if q.pixart.TextEncoder != nil || q.pixart.Tokenizer != nil {
		t.Error("SkipTextEncoder loaded the T5 tokenizer or encoder")
	}
	e, err := LoadPromptEmbedsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	req.PromptEmbeds = e
	res, err := q.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	golden.AssertClose(t, "final latents from the saved file", res.Latents, run["final.latents"], pixartTol)
}

// writeRunEmbeds writes the run's recorded text.* tensors, bytes as
// stored (F32 embeddings, I64 masks), into a prompt embeddings file under
// encode_prompt's names; withNegative adds the negative prompt's.
func writeRunEmbeds(t *testing.T, dir, name string, withNegative bool) string {
	t.Helper()
	ck, err := safetensors.OpenPath(golden.Dir(t, "golden", "runs", "pixart_dpm_baseline.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	names := []string{NamePromptEmbeds, NamePromptAttentionMask}
	if withNegative {
		names = append(names, NameNegativePromptEmbeds, NameNegativePromptAttentionMask)
	}
	var ts []safetensors.Named
	for _, n := range names {
		raw, err := ck.ReadRaw("text." + n)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, safetensors.Named{Name: n, Raw: raw})
	}
	path := filepath.Join(dir, name)
	if err := safetensors.WriteFile(path, nil, ts); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPixArtPromptEmbedsFromRun generates from the embeddings diffusers
// recorded in runs/pixart_dpm_baseline: with the negative prompt's in the
// file on a pipeline without T5 (and the image decoded), and without
// them on a pipeline that encodes the negative prompt "" with its T5.
func TestPixArtPromptEmbedsFromRun(t *testing.T) {
	dir := t.TempDir()
	writeRunEmbeds(t, dir, "both.safetensors", true)
	writeRunEmbeds(t, dir, "prompt.safetensors", false)
	req, run := baselineRequest(t)

	t.Run("with negative, no T5", func(t *testing.T) {
		b := cpu.New()
		p := loadPixArtTiny(t, b, LoadOptions{SkipTextEncoder: true})
		e, err := LoadPromptEmbeds(hub.Dir(dir), "both.safetensors")
		if err != nil {
			t.Fatal(err)
		}
		req := req
		req.PromptEmbeds, req.Decoder = e, DecodeVAE
		res, err := p.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		golden.AssertClose(t, "final latents", res.Latents, run["final.latents"], pixartTol)
		np := run["final.image_np"] // NHWC
		h, w := np.Shape[1], np.Shape[2]
		want := tensor.New(1, 3, h, w)
		for i := range h * w {
			for c := range 3 {
				want.Data[c*h*w+i] = np.Data[i*3+c]
			}
		}
		golden.AssertClose(t, "image", res.Image, want, 1e-3)
	})

	t.Run("negative encoded by T5", func(t *testing.T) {
		p := loadPixArtTiny(t, cpu.New(), LoadOptions{SkipVAE: true})
		e, err := LoadPromptEmbedsFile(filepath.Join(dir, "prompt.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		if e.NegativePromptEmbeds != nil {
			t.Fatal("negative embeddings read from a file without them")
		}
		req := req
		req.PromptEmbeds = e
		res, err := p.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		golden.AssertClose(t, "final latents", res.Latents, run["final.latents"], pixartTol)

		q := loadPixArtTiny(t, cpu.New(), LoadOptions{SkipTextEncoder: true, SkipVAE: true})
		_, err = q.Generate(context.Background(), req)
		if err == nil || !strings.Contains(err.Error(), NameNegativePromptEmbeds) || !strings.Contains(err.Error(), "SkipTextEncoder") {
			t.Errorf("guidance without negative embeddings or T5: error %v; want one naming %s and SkipTextEncoder", err, NameNegativePromptEmbeds)
		}
		// Without guidance the prompt's embeddings are enough.
		req.Guidance, req.Steps = 1, 1
		if _, err := q.Generate(context.Background(), req); err != nil {
			t.Errorf("no guidance, no negative embeddings: %v", err)
		}
	})
}

// TestPixArtPromptEmbedsErrors checks that malformed files, embeddings
// that do not fit the model, and a generation that needs the missing T5
// fail with errors naming the problem.
func TestPixArtPromptEmbedsErrors(t *testing.T) {
	dir := t.TempDir()
	emb := func(shape ...int) safetensors.Named {
		return safetensors.FromHost("", tensor.New(shape...), tensor.F32)
	}
	ones := func(l int) *tensor.Host {
		m := tensor.New(1, l)
		for i := range m.Data {
			m.Data[i] = 1
		}
		return m
	}
	named := func(n string, t safetensors.Named) safetensors.Named { t.Name = n; return t }
	maskNamed := func(n string, m *tensor.Host) safetensors.Named {
		return safetensors.FromHost(n, m, tensor.F32)
	}
	for _, c := range []struct {
		name    string
		tensors []safetensors.Named
		want    []string
	}{
		{"no prompt_embeds", []safetensors.Named{maskNamed(NamePromptAttentionMask, ones(8))}, []string{`no tensor "prompt_embeds"`, "--save-prompt-embeds"}},
		{"no mask", []safetensors.Named{named(NamePromptEmbeds, emb(1, 8, 32))}, []string{`no tensor "prompt_attention_mask"`}},
		{"2-D embeddings", []safetensors.Named{named(NamePromptEmbeds, emb(8, 32)), maskNamed(NamePromptAttentionMask, ones(8))}, []string{"shape [8,32]", "[1, L, D]"}},
		{"mask length", []safetensors.Named{named(NamePromptEmbeds, emb(1, 8, 32)), maskNamed(NamePromptAttentionMask, ones(7))}, []string{"prompt_attention_mask has shape", "[1, 8]"}},
		{"mask values", []safetensors.Named{named(NamePromptEmbeds, emb(1, 2, 32)), maskNamed(NamePromptAttentionMask, &tensor.Host{Shape: tensor.Shape{1, 2}, Data: []float32{1, 2}})}, []string{"only 0 and 1"}},
		{"negative without mask", []safetensors.Named{named(NamePromptEmbeds, emb(1, 8, 32)), maskNamed(NamePromptAttentionMask, ones(8)),
			named(NameNegativePromptEmbeds, emb(1, 8, 32))}, []string{"give both or neither"}},
		{"negative shape", []safetensors.Named{named(NamePromptEmbeds, emb(1, 8, 32)), maskNamed(NamePromptAttentionMask, ones(8)),
			named(NameNegativePromptEmbeds, emb(1, 9, 32)), maskNamed(NameNegativePromptAttentionMask, ones(9))}, []string{"negative_prompt_embeds has shape", "must match"}},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".safetensors")
		if err := safetensors.WriteFile(path, nil, c.tensors); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPromptEmbedsFile(path)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
	if _, err := LoadPromptEmbedsFile(filepath.Join(dir, "missing.safetensors")); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error %v", err)
	}

	// Against the model: width, length, and a generation without any
	// text encoder.
	p := loadPixArtTiny(t, cpu.New(), LoadOptions{SkipTextEncoder: true, SkipVAE: true})
	req, _ := baselineRequest(t)
	req.Steps = 1
	gen := func(e *PromptEmbeds, maxSeq int) error {
		r := req
		r.PromptEmbeds, r.MaxSequenceLength = e, maxSeq
		_, err := p.Generate(context.Background(), r)
		return err
	}
	wide := &PromptEmbeds{PromptEmbeds: tensor.New(1, 8, 64), PromptAttentionMask: ones(8),
		NegativePromptEmbeds: tensor.New(1, 8, 64), NegativePromptAttentionMask: ones(8)}
	if err := gen(wide, 0); err == nil || !strings.Contains(err.Error(), "width 64") || !strings.Contains(err.Error(), "caption_channels") {
		t.Errorf("64-wide embeddings for a 32-channel caption projection: error %v", err)
	}
	long := &PromptEmbeds{PromptEmbeds: tensor.New(1, 121, 32), PromptAttentionMask: ones(121),
		NegativePromptEmbeds: tensor.New(1, 121, 32), NegativePromptAttentionMask: ones(121)}
	if err := gen(long, 0); err == nil || !strings.Contains(err.Error(), "max sequence length 120") {
		t.Errorf("121 tokens for PixArt-α's 120: error %v", err)
	}
	if err := gen(long, 121); err != nil {
		t.Errorf("121 tokens with MaxSequenceLength 121: %v", err)
	}
	if err := gen(nil, 0); err == nil || !strings.Contains(err.Error(), "PromptEmbeds") || !strings.Contains(err.Error(), "--prompt-embeds") {
		t.Errorf("no embeddings and no T5: error %v; want one naming PixArtOptions.PromptEmbeds and --prompt-embeds", err)
	}
}
