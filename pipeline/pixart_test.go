package pipeline

import (
	"context"
	"fmt"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/tensor"
	"github.com/tgate-web/tgate/tokenizer"
)

// pixartTol bounds PixArt latents relative to their largest magnitude. The
// tiny PixArt loop's latents reach ~1e3 (its linear betas make DPM-Solver++
// divide by alpha_t = 0.0066 at the first step), and the float32 goldens
// differ from float64 re-runs by ~1e-6 of that (golden README); a wrong
// step, a missed mask or a wrong gate moves them by far more than 1e-4.
const pixartTol = 1e-4

func loadPixArtGolden(t *testing.T, b backend.Backend) *Pipeline {
	t.Helper()
	p, err := Load(b, golden.Dir(t, "golden", "pixart_tiny_pipeline"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if p.Kind != PixArtAlpha {
		t.Fatalf("kind %v, want %v", p.Kind, PixArtAlpha)
	}
	return p
}

// goldenPixArtText uploads the run's recorded T5 embeddings [negative;
// prompt] and their masks.
func goldenPixArtText(b backend.Backend, run map[string]*tensor.Host) *pixartText {
	neg, pos := b.Upload(run["text.negative_prompt_embeds"]), b.Upload(run["text.prompt_embeds"])
	defer b.Free(neg)
	defer b.Free(pos)
	nm, pm := run["text.negative_prompt_attention_mask"], run["text.prompt_attention_mask"]
	mask := tensor.New(2, nm.Shape[1])
	copy(mask.Data, nm.Data)
	copy(mask.Data[nm.Shape[1]:], pm.Data)
	return &pixartText{embeds: b.Concat(0, neg, pos), mask: mask}
}

// TestPixArtTokenization checks the pipeline's text preparation against
// the ids and masks the run recorded: lowercased, stripped prompt, T5 ids
// padded to 120, and the negative prompt "" as [</s>, <pad>, ...].
func TestPixArtTokenization(t *testing.T) {
	b := cpu.New()
	p := loadPixArtGolden(t, b)
	run := golden.Tensors(t, golden.Dir(t, "golden", "runs", "pixart_dpm_baseline.safetensors"))
	r := readRun(t, "pixart_dpm_baseline")
	for _, c := range []struct{ name, text string }{
		{"prompt", r.Call.Prompt},
		{"negative_prompt", ""},
	} {
		ids, mask, _ := p.pixart.Tokenizer.EncodePadded(tokenizer.PixArtPreprocess(c.text, false), pixartAlphaMaxSeq)
		wantIDs, wantMask := run["text."+c.name+"_input_ids"], run["text."+c.name+"_attention_mask"]
		for i := range ids {
			if float32(ids[i]) != wantIDs.Data[i] || float32(mask[i]) != wantMask.Data[i] {
				t.Fatalf("%s: position %d: id %d mask %d, want %g %g", c.name, i, ids[i], mask[i], wantIDs.Data[i], wantMask.Data[i])
			}
		}
	}
}

// runPixArtGolden runs the PixArt loop on the recorded embeddings and
// initial latents of a run and compares every step's latents, the final
// latents and the decoded image.
func runPixArtGolden(t *testing.T, name string, g gate.Config) *Result {
	b := cpu.New()
	p := loadPixArtGolden(t, b)
	r := readRun(t, name)
	run := golden.Tensors(t, golden.Dir(t, "golden", "runs", name+".safetensors"))
	req := Request{
		Prompt: r.Call.Prompt, Steps: r.Call.Steps, Guidance: r.Call.Guidance,
		Latents: run["init.latents"], Gate: g, Decoder: DecodeVAE,
		PixArtOptions: PixArtOptions{NoResolutionBinning: true},
	}
	req.Height, req.Width = r.Call.Height, r.Call.Width
	var worst float64
	req.Progress = func(pr Progress) {
		got := golden.ReadBack(t, b, pr.Latents)
		want := run[fmt.Sprintf("step.%02d.latents", pr.Step-1)]
		_, rel := golden.Diff(got, want)
		worst = max(worst, rel)
		golden.AssertClose(t, fmt.Sprintf("step %d latents", pr.Step-1), got, want, pixartTol)
	}
	res, err := p.denoisePixArt(context.Background(), req, goldenPixArtText(b, run), &Result{}, newPhaseTimer(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: worst per-step latents error %.3g of max |latents|", name, worst)
	golden.AssertClose(t, "final latents", res.Latents, run["final.latents"], pixartTol)
	// The image: final.image_np is NHWC.
	np := run["final.image_np"]
	h, w := np.Shape[1], np.Shape[2]
	want := tensor.New(1, 3, h, w)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for c := 0; c < 3; c++ {
				want.Data[(c*h+y)*w+x] = np.Data[(y*w+x)*3+c]
			}
		}
	}
	golden.AssertClose(t, "image", res.Image, want, 1e-3)
	if live := b.Memory().Live; live == 0 {
		t.Error("no weights live after the run")
	}
	return res
}

// TestPixArtBaselineGolden is runs/pixart_dpm_baseline: PixArtAlphaPipeline,
// DPM-Solver++ 2M, 10 steps, guidance 4.5, 32×32.
func TestPixArtBaselineGolden(t *testing.T) {
	res := runPixArtGolden(t, "pixart_dpm_baseline", gate.Config{})
	if want := []float64{999, 899, 799, 699, 599, 500, 400, 300, 200, 100}; fmt.Sprint(res.Timesteps) != fmt.Sprint(want) {
		t.Errorf("timesteps %v, want %v", res.Timesteps, want)
	}
}

// TestPixArtTGateGolden is runs/pixart_dpm_tgate_v2: the original
// TgatePixArtAlphaLoader with gate 6, sp 3, fi 1, warm-up 1 — self-attention
// replayed at steps 2 and 4 (rescaled by the step's own gate_msa),
// cross-attention cached as the guidance-halves mean at step 5 and
// replayed from step 6 on, without guidance, with the cross-attention
// weights released.
func TestPixArtTGateGolden(t *testing.T) {
	r := readRun(t, "pixart_dpm_tgate_v2")
	res := runPixArtGolden(t, "pixart_dpm_tgate_v2", gate.Config{Mode: gate.V2, GateStep: *r.Call.GateStep,
		SPInterval: r.Call.SPInterval, FIInterval: r.Call.FIInterval, WarmUp: r.Call.WarmUp})
	// The gate must matter: the baseline's latents lie outside the
	// tolerance of this run's.
	base := golden.Tensors(t, golden.Dir(t, "golden", "runs", "pixart_dpm_baseline.safetensors"))
	if _, rel := golden.Diff(res.Latents, base["final.latents"]); rel < 10*pixartTol {
		t.Errorf("T-GATE final latents within %.2g of the baseline's: the test cannot tell them apart", rel)
	} else {
		t.Logf("T-GATE vs baseline final latents: %.3g of max |latents|", rel)
	}
	st := res.Gate
	// 3 blocks: cross computed at steps 0-5, replayed at 6-9; self
	// replayed at steps 2 and 4 only.
	if st.CrossComputed != 18 || st.CrossReused != 12 || st.SelfReused != 6 || st.SelfComputed != 24 {
		t.Errorf("gate stats %+v; want cross 18 computed / 12 reused, self 24 computed / 6 reused", st)
	}
}

// TestPixArtGenerate runs both runs end to end through Generate: the
// prompt tokenised and encoded by the folder's T5 encoder (streamed block
// by block for the T-GATE run), the loop, and the final latents.
func TestPixArtGenerate(t *testing.T) {
	for _, c := range []struct {
		run    string
		stream bool
	}{
		{"pixart_dpm_baseline", false},
		{"pixart_dpm_tgate_v2", true},
	} {
		t.Run(c.run, func(t *testing.T) {
			b := cpu.New()
			p, err := Load(b, golden.Dir(t, "golden", "pixart_tiny_pipeline"), LoadOptions{StreamTextEncoder: c.stream})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			r := readRun(t, c.run)
			run := golden.Tensors(t, golden.Dir(t, "golden", "runs", c.run+".safetensors"))

			// The encoder's output for the recorded ids.
			ids, mask, _ := p.pixart.Tokenizer.EncodePadded(tokenizer.PixArtPreprocess(r.Call.Prompt, false), pixartAlphaMaxSeq)
			emb, err := p.pixart.TextEncoder.Encode(b, [][]int32{ids}, [][]int32{mask})
			if err != nil {
				t.Fatal(err)
			}
			golden.AssertClose(t, "prompt embeds", golden.ReadBack(t, b, emb), run["text.prompt_embeds"], pixartTol)
			b.Free(emb)

			req := Request{Prompt: r.Call.Prompt, Steps: r.Call.Steps, Guidance: r.Call.Guidance,
				Latents: run["init.latents"], Decoder: DecodeNone,
				PixArtOptions: PixArtOptions{NoResolutionBinning: true}}
			req.Height, req.Width = r.Call.Height, r.Call.Width
			if r.Call.GateStep != nil {
				req.Gate = gate.Config{Mode: gate.V2, GateStep: *r.Call.GateStep,
					SPInterval: r.Call.SPInterval, FIInterval: r.Call.FIInterval, WarmUp: r.Call.WarmUp}
			}
			var blocks, total int
			req.TextEncoderProgress = func(done, n int) { blocks, total = done, n }
			res, err := p.Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if blocks != 2 || total != 2 {
				t.Errorf("text encoder progress ended at %d of %d blocks; the tiny T5 has 2", blocks, total)
			}
			golden.AssertClose(t, "final latents", res.Latents, run["final.latents"], pixartTol)
			// A second run after T-GATE released the cross-attention
			// weights reloads them and gives the same result.
			res2, err := p.Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			golden.AssertClose(t, "final latents, second run", res2.Latents, run["final.latents"], pixartTol)
		})
	}
}
