package pipeline

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// TestUNet8Bit loads the tiny SD 1.5 and SD-XL pipelines with 8-bit UNet
// weights and reports how far their final latents move from diffusers'
// F32 runs (ddim_baseline, sdxl_euler_baseline): every Linear and
// convolution weight of the UNet must be 8-bit, the result must differ
// from the F32 one (the quantisation is real) and equal, to float32
// rounding, the same run of a model whose UNet weights were quantised in
// float64 by the test (q = round(w·127/max|w_row|), half away from zero)
// and stored as F32. The errors against the F32 runs are logged (they are
// in docs/memory.md). For SD 1.5 it also measures one UNet evaluation on
// the run's first input.
func TestUNet8Bit(t *testing.T) {
	for _, name := range []string{"ddim_baseline", "sdxl_euler_baseline"} {
		t.Run(name, func(t *testing.T) {
			r := readRun(t, name)
			gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
			p, err := loadRunWith(t, r, LoadOptions{UNet8Bit: true, SkipVAE: true})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			n8 := 0
			for _, prm := range p.UNet.Params() {
				if prm.Tensor.DType() == tensor.I8 {
					n8++
				} else if len(prm.Shape) == 2 || len(prm.Shape) == 4 {
					t.Errorf("%s %v is %v, want I8", prm.Name, prm.Shape, prm.Tensor.DType())
				}
			}
			if n8 == 0 {
				t.Fatal("no 8-bit weights")
			}
			req := requestFor(t, r, gold["init.latents"])
			req.Decoder = DecodeNone
			res, err := p.Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			abs, rel := golden.Diff(res.Latents, gold["final.latents"])
			t.Logf("%d 8-bit weights; final latents differ from the F32 reference by %.3g (%.3g of their largest magnitude)", n8, abs, rel)
			if rel == 0 {
				t.Error("the 8-bit run equals the F32 reference: nothing was quantised")
			}
			// The same run with the UNet's weights quantised here, in
			// float64, written to a folder and loaded as plain F32: the
			// 8-bit path must compute exactly that model.
			q, err := Load(cpu.New(), quantizedCopy(t, r), LoadOptions{SkipVAE: true})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			want, err := q.Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			// Not bit for bit: the backend divides by the float32 scale,
			// the test multiplies by 127/max in float64, and a value at
			// a half can round either way (one of the 785,664 SD 1.5
			// weights does; it moves one evaluation by 3.7e-5 of its
			// largest value). A wrong scale or rounding rule moves it by
			// percents.
			abs8, rel8 := golden.Diff(res.Latents, want.Latents)
			t.Logf("8-bit run vs the host-quantised model: %.3g (%.3g relative)", abs8, rel8)
			if rel8 > 1e-4 {
				t.Errorf("8-bit run differs from the host-quantised model by %.3g (%.3g relative)", abs8, rel8)
			}
			if name == "ddim_baseline" {
				one := func(p *Pipeline) *tensor.Host {
					b := p.b
					x := b.Upload(gold["step.00.unet_sample"])
					neg, pos := gold["text.negative_prompt_embeds"], gold["text.prompt_embeds"]
					both := tensor.New(append(tensor.Shape{2}, pos.Shape[1:]...)...)
					copy(both.Data, neg.Data)
					copy(both.Data[len(neg.Data):], pos.Data)
					ctx := b.Upload(both)
					out, err := p.UNet.Forward(b, x, []float64{float64(gold["step.00.t"].Data[0])}, ctx, unet.ForwardOpts{})
					if err != nil {
						t.Fatal(err)
					}
					h := golden.ReadBack(t, b, out)
					nn.Free(b, x, ctx, out)
					return h
				}
				a, r := golden.Diff(one(p), one(q))
				t.Logf("one UNet evaluation, 8-bit vs host-quantised: %.3g (%.3g relative)", a, r)
				if r > 1e-4 {
					t.Errorf("one UNet evaluation: 8-bit differs from the host-quantised model by %.3g relative", r)
				}
			}
			if name != "ddim_baseline" {
				return
			}
			b := p.b
			x := b.Upload(gold["step.00.unet_sample"])
			neg, pos := gold["text.negative_prompt_embeds"], gold["text.prompt_embeds"]
			both := tensor.New(append(tensor.Shape{2}, pos.Shape[1:]...)...)
			copy(both.Data, neg.Data)
			copy(both.Data[len(neg.Data):], pos.Data)
			ctx := b.Upload(both)
			out, err := p.UNet.Forward(b, x, []float64{float64(gold["step.00.t"].Data[0])}, ctx, unet.ForwardOpts{})
			if err != nil {
				t.Fatal(err)
			}
			got := golden.ReadBack(t, b, out)
			nn.Free(b, x, ctx, out)
			abs, rel = golden.Diff(got, gold["step.00.unet_out"])
			t.Logf("one UNet evaluation: %.3g from the F32 reference (%.3g of its largest magnitude)", abs, rel)
			if rel == 0 || rel > 0.05 {
				t.Errorf("one evaluation: relative error %.3g, want above 0 and at most 0.05", rel)
			}
		})
	}
}

// loadRunWith loads the run's pipeline folder on a fresh CPU backend.
func loadRunWith(t *testing.T, r *runFile, opt LoadOptions) (*Pipeline, error) {
	t.Helper()
	rel := filepath.Base(r.PipelineFolder)
	return Load(cpu.New(), golden.Dir(t, "golden", rel), opt)
}

// TestT58Bit runs the tiny PixArt pipeline with 8-bit T5 projections,
// streamed, and reports how far its prompt embeddings move from
// transformers' (the run's text.prompt_embeds): within 5% of their
// largest magnitude, and not equal (the quantisation is real).
func TestT58Bit(t *testing.T) {
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "pixart_dpm_baseline.safetensors"))
	p, err := Load(cpu.New(), golden.Dir(t, "golden", "pixart_tiny_pipeline"),
		LoadOptions{TextEncoder8Bit: true, StreamTextEncoder: true, SkipVAE: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := readRun(t, "pixart_dpm_baseline")
	req := requestFor(t, r, gold["init.latents"])
	req.Decoder, req.NoResolutionBinning, req.EncodeEmptyNegativePrompt = DecodeNone, true, true
	var got *tensor.Host
	req.EncodedPrompt = func(e *PromptEmbeds) error { got = e.PromptEmbeds; return nil }
	if _, err := p.Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	abs, rel := golden.Diff(got, gold["text.prompt_embeds"])
	t.Logf("8-bit T5: prompt embeddings %.3g from transformers' (%.3g of their largest magnitude)", abs, rel)
	if rel == 0 || rel > 0.05 {
		t.Errorf("relative error %.3g: want above 0 and at most 0.05", rel)
	}
}

// quantizedCopy writes the run's pipeline folder with every 2-D and 4-D
// UNet weight replaced by its 8-bit value, computed here in float64 from
// the definition, and links the other components.
func quantizedCopy(t *testing.T, r *runFile) string {
	t.Helper()
	src := golden.Dir(t, "golden", filepath.Base(r.PipelineFolder))
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "unet" {
			if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	os.MkdirAll(filepath.Join(dst, "unet"), 0o755)
	cfg, err := os.ReadFile(filepath.Join(src, "unet", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dst, "unet", "config.json"), cfg, 0o644)
	var out []safetensors.Named
	for name, h := range golden.Tensors(t, filepath.Join(src, "unet", "diffusion_pytorch_model.safetensors")) {
		if n := len(h.Shape); (n == 2 || n == 4) && strings.HasSuffix(name, ".weight") {
			rows := h.Shape[0]
			k := len(h.Data) / rows
			for r := 0; r < rows; r++ {
				row := h.Data[r*k : (r+1)*k]
				m := 0.0
				for _, v := range row {
					m = math.Max(m, math.Abs(float64(v)))
				}
				if m == 0 {
					continue
				}
				for j, v := range row {
					q := math.Max(-127, math.Min(127, math.Round(float64(v)*127/m)))
					row[j] = float32(q * m / 127)
				}
			}
		}
		out = append(out, safetensors.FromHost(name, h, tensor.F32))
	}
	if err := safetensors.WriteFile(filepath.Join(dst, "unet", "diffusion_pytorch_model.safetensors"), nil, out); err != nil {
		t.Fatal(err)
	}
	return dst
}
