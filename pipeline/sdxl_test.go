package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/models/taesd"
	"github.com/tgate-web/tgate/tensor"
)

// sdxlRuns are the shared SD-XL runs: diffusers' StableDiffusionXLPipeline
// and the original TgateSDXLLoader.
var sdxlRuns = []string{"sdxl_euler_baseline", "sdxl_euler_tgate_v2"}

// TestSDXLRunParity reproduces the shared SD-XL runs on the CPU backend:
// the timesteps, every step's latents, the final latents and the decoded
// image.
func TestSDXLRunParity(t *testing.T) {
	for _, name := range sdxlRuns {
		t.Run(name, func(t *testing.T) {
			r := readRun(t, name)
			if r.PipelineClass != ClassStableDiffusionXL {
				t.Fatalf("%s: pipeline class %q", name, r.PipelineClass)
			}
			gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), name+".safetensors"))
			p := loadRunPipeline(t, r)
			if p.Kind != StableDiffusionXL {
				t.Fatalf("kind %v", p.Kind)
			}
			req := requestFor(t, r, gold["init.latents"])
			// The runs use the folder's scheduler: the default must give it.
			req.Scheduler, req.TimestepSpacing = "", ""
			var steps []*tensor.Host
			req.Progress = func(pr Progress) {
				steps = append(steps, golden.ReadBack(t, p.b, pr.Latents))
			}
			res, err := p.Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Timesteps) != len(r.Scheduler.Timesteps) {
				t.Fatalf("timesteps %v, run %v", res.Timesteps, r.Scheduler.Timesteps)
			}
			for i, ts := range r.Scheduler.Timesteps {
				if float32(res.Timesteps[i]) != float32(ts) {
					t.Fatalf("timesteps %v, run %v", res.Timesteps, r.Scheduler.Timesteps)
				}
			}
			if len(steps) != r.UNetEvaluations {
				t.Fatalf("%d evaluations, run has %d", len(steps), r.UNetEvaluations)
			}
			for i, h := range steps {
				abs, rel := golden.Diff(h, gold[fmt.Sprintf("step.%02d.latents", i)])
				t.Logf("step %02d latents: max abs %.3g, relative %.3g", i, abs, rel)
				if rel > 1e-4 {
					t.Errorf("step %02d latents differ: max abs %.3g, relative %.3g", i, abs, rel)
				}
			}
			golden.AssertClose(t, "final.latents", res.Latents, gold["final.latents"], 1e-4)
			golden.AssertClose(t, "final.image_np", res.Image, nhwcToNCHW(gold["final.image_np"]), 1e-4)
			if r.Call.GateStep != nil {
				// The gated golden must be far from the baseline at this
				// tolerance, or the comparison proves nothing.
				base := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "sdxl_euler_baseline.safetensors"))
				_, rel := golden.Diff(gold["final.latents"], base["final.latents"])
				t.Logf("golden %s vs golden sdxl_euler_baseline: relative %.3g", name, rel)
				if rel < 1e-3 {
					t.Errorf("golden %s is within %.3g of the baseline", name, rel)
				}
				if !p.crossReleased {
					t.Errorf("the cross-attention weights were kept after the gate")
				}
			}
			if len(res.Warnings) != 0 {
				t.Errorf("unexpected warnings %v", res.Warnings)
			}
		})
	}
}

// TestSDXLTGateReleaseAndReload runs the gated SD-XL run twice on one
// pipeline with the text encoders released after encoding: the second run
// binds the encoders and the cross-attention weights again and must
// reproduce the golden too.
func TestSDXLTGateReleaseAndReload(t *testing.T) {
	r := readRun(t, "sdxl_euler_tgate_v2")
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "sdxl_euler_tgate_v2.safetensors"))
	p := loadRunPipeline(t, r)
	req := requestFor(t, r, gold["init.latents"])
	req.Decoder = DecodeNone
	req.ReleaseTextEncoder = true
	for run := 0; run < 2; run++ {
		res, err := p.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if p.TextEncoder != nil || p.TextEncoder2 != nil {
			t.Errorf("run %d: a text encoder is still bound after encoding", run)
		}
		golden.AssertClose(t, fmt.Sprintf("run %d final.latents", run), res.Latents, gold["final.latents"], 1e-4)
	}
}

// TestSDXLLoadChecks loads the tiny SD-XL folder and checks what the
// pipeline reads from it.
func TestSDXLLoadChecks(t *testing.T) {
	p, err := Load(cpu.New(), golden.Dir(t, "golden", "sdxl_tiny_pipeline"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Kind != StableDiffusionXL || p.Kind.String() != ClassStableDiffusionXL {
		t.Errorf("kind %v", p.Kind)
	}
	if !p.ForceZerosForEmptyPrompt {
		t.Errorf("force_zeros_for_empty_prompt not read")
	}
	if p.Tokenizer.Pad() != 49407 || p.Tokenizer2.Pad() != 0 {
		t.Errorf("pad ids %d, %d; want 49407 (tokenizer) and 0 ('!', tokenizer_2)", p.Tokenizer.Pad(), p.Tokenizer2.Pad())
	}
	if p.VAEConfig.ScalingFactor != 0.13025 {
		t.Errorf("VAE scaling_factor %g, want 0.13025", p.VAEConfig.ScalingFactor)
	}
	if h, w := p.DefaultSize(); h != 32 || w != 32 {
		t.Errorf("default size %dx%d, want 32x32", w, h)
	}
	// A UNet whose add_embedding does not fit 6 time ids and the
	// projection is rejected with both numbers.
	dim := 9
	p.UNet.Config.AdditionTimeEmbedDim = &dim
	if err := p.checkAddEmbedding(false); err == nil {
		t.Errorf("addition_time_embed_dim 9 accepted with projection_class_embeddings_input_dim 80")
	} else {
		t.Log(err)
	}
}

// TestSDXLTAESDXL decodes the SD-XL baseline run with TAESDXL (the real
// taesdxl decoder of ../shared/assets) and compares the image with the
// TAESD decoder run on its own on the golden final latents, clamped to
// [0, 1].
func TestSDXLTAESDXL(t *testing.T) {
	r := readRun(t, "sdxl_euler_baseline")
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "sdxl_euler_baseline.safetensors"))
	p := loadRunPipeline(t, r)
	path := filepath.Join(golden.Dir(t, "assets", "taesd", "bf16_comfyui_fork"), "taesdxl_decoder.safetensors")
	if err := p.LoadTAESD(path); err != nil {
		t.Fatal(err)
	}
	req := requestFor(t, r, gold["init.latents"])
	req.Decoder = DecodeTAESD
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}

	b := cpu.New()
	src, err := hub.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	d, err := taesd.LoadDecoder(b, src)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release(b)
	z := b.Upload(gold["final.latents"])
	defer b.Free(z)
	out, err := d.Decode(b, z)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free(out)
	want := golden.ReadBack(t, b, out)
	inside := 0
	for i, v := range want.Data {
		if v > 0 && v < 1 {
			inside++
		}
		want.Data[i] = min(max(v, 0), 1)
	}
	t.Logf("%d of %d TAESDXL values lie inside (0, 1)", inside, len(want.Data))
	if inside == 0 {
		t.Fatal("every TAESDXL value is clamped: the comparison would prove nothing")
	}
	golden.AssertClose(t, "TAESDXL image", res.Image, want, 1e-4)
}

// TestSDXLGateReleasesMemory runs sdxl_euler_tgate_v2's settings and
// checks what T-GATE frees when the gate passes on the SD-XL UNet: every
// transformer block's cross-attention weights and the prompt embeddings
// ([2, 77, 48] and the batch-1 negative slice), while the pooled
// embeddings stay (the batch-1 UNet still takes the negative ones); and
// that the text encoders are freed after encoding with
// ReleaseTextEncoder.
func TestSDXLGateReleasesMemory(t *testing.T) {
	r := readRun(t, "sdxl_euler_tgate_v2")
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "sdxl_euler_tgate_v2.safetensors"))
	p, err := Load(cpu.New(), golden.Dir(t, "golden", "sdxl_tiny_pipeline"), LoadOptions{SkipVAE: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b := p.b
	cross := crossBytes(p)
	if cross == 0 {
		t.Fatal("no cross-attention weights found")
	}
	l := int64(p.Tokenizer.MaxLength())
	text := 4 * (2*l*48 + l*48)
	before := b.Memory().Live
	// The encoders' size, measured by releasing them (Generate binds them
	// again).
	p.TextEncoder.Release(b)
	p.TextEncoder2.Release(b)
	p.TextEncoder, p.TextEncoder2 = nil, nil
	encoders := before - b.Memory().Live
	if encoders <= 0 {
		t.Fatalf("releasing the text encoders freed %d bytes", encoders)
	}
	var live []int64
	req := requestFor(t, r, gold["init.latents"])
	req.Decoder = DecodeNone
	req.ReleaseTextEncoder = true
	req.Progress = func(Progress) { live = append(live, b.Memory().Live) }
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	golden.AssertClose(t, "final.latents", res.Latents, gold["final.latents"], 1e-4)
	// Step 3 is the last before the gate (gate step 4); step 4 releases
	// the weights and embeddings before its evaluation.
	if got := live[3] - live[4]; got != cross+text {
		t.Errorf("memory freed when the gate passed: %d bytes, want %d (cross-attention weights %d + prompt embeddings %d)", got, cross+text, cross, text)
	}
	if after := b.Memory().Live; after != before-cross-encoders {
		t.Errorf("after the run %d bytes live, want %d (less the cross-attention weights %d and the text encoders %d)", after, before-cross-encoders, cross, encoders)
	}
}

// TestSDXLDefaults runs sdxl_euler_baseline with every setting the run
// leaves at diffusers' default left at the Request's zero value (guidance
// 5.0, the model's 32×32 size, the folder's Euler scheduler with leading
// spacing, no negative prompt, default micro-conditioning), and checks
// that a DDIM built from the folder's config inherits its leading
// spacing (901, 801, ..., 1), as the golden README records.
func TestSDXLDefaults(t *testing.T) {
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "sdxl_euler_baseline.safetensors"))
	p, err := Load(cpu.New(), golden.Dir(t, "golden", "sdxl_tiny_pipeline"), LoadOptions{SkipVAE: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	req := Request{Prompt: "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k", Steps: 10,
		Guidance: DefaultGuidance, Latents: gold["init.latents"], Decoder: DecodeNone}
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	golden.AssertClose(t, "final.latents with defaults", res.Latents, gold["final.latents"], 1e-4)
	if s := p.Settings(req, res, "sdxl"); s.Guidance != 5 {
		t.Errorf("settings record guidance %g, want SD-XL's default 5", s.Guidance)
	}

	req.Scheduler = "ddim"
	req.Steps = 10
	res, err = p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for i, ts := range res.Timesteps {
		if want := float64(901 - 100*i); ts != want {
			t.Fatalf("DDIM from the SD-XL config: timesteps %v, want 901, 801, ..., 1", res.Timesteps)
		}
	}
}
