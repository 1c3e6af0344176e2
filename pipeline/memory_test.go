package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/nn"
)

// crossBytes sums the bytes of the UNet weights T-GATE releases after the
// gate: every transformer block's norm2 and attn2 projections.
func crossBytes(p *Pipeline) int64 {
	var n int64
	for _, prm := range p.UNet.Params() {
		blk := strings.Contains(prm.Name, ".transformer_blocks.")
		if blk && (strings.Contains(prm.Name, ".attn2.") || strings.Contains(prm.Name, ".norm2.")) {
			n += int64(4 * prm.Shape.Numel())
		}
	}
	return n
}

// TestGateReleasesMemory runs ddim_tgate_v2's settings and checks the
// memory T-GATE frees when the gate passes: the cross-attention weights
// and the text embeddings ([2,77,D] plus the batch-1 negative slice) go,
// and from then on the cache holds exactly one batch-1 output per
// attention module.
func TestGateReleasesMemory(t *testing.T) {
	p := loadGolden(t, "sd15_tiny_pipeline", LoadOptions{SkipVAE: true})
	b := p.b
	cross := crossBytes(p)
	if cross == 0 {
		t.Fatal("no cross-attention weights found")
	}
	d := int64(p.TextEncoder.Config.HiddenSize)
	l := int64(p.Tokenizer.MaxLength())
	text := 4 * (2*l*d + l*d)
	// One batch-1 output per module at 16x16 latents.
	var perBatch int64
	for _, m := range p.UNet.AttentionModules() {
		hh, ww := 16, 16
		for s := 1; s < m.Stride; s *= 2 {
			hh, ww = (hh+1)/2, (ww+1)/2
		}
		perBatch += int64(4 * hh * ww * m.Dim)
	}
	before := b.Memory().Live

	var live, cache []int64
	req := Request{Prompt: "a photo of an astronaut riding a horse on mars", Steps: 10, Guidance: 7.5, Seed: 42,
		Width: 32, Height: 32, Scheduler: "ddim", Decoder: DecodeNone,
		Gate: gate.Config{Mode: gate.V2, GateStep: 4, SPInterval: 2, FIInterval: 1, WarmUp: 1}}
	req.Progress = func(pr Progress) {
		live = append(live, b.Memory().Live)
		cache = append(cache, pr.CacheBytes)
	}
	if _, err := p.Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	// Step 3 (the gate step) stores the means; step 4 releases the
	// weights and embeddings before its evaluation.
	if got := live[3] - live[4]; got != cross+text {
		t.Errorf("memory freed when the gate passed: %d bytes, want %d (cross-attention weights %d + text embeddings %d)", got, cross+text, cross, text)
	}
	for i := 3; i < 10; i++ {
		if cache[i] != perBatch {
			t.Errorf("step %d: cache holds %d bytes, want %d (one batch-1 output per module)", i, cache[i], perBatch)
		}
	}
	// Before the gate, the self-attention caches hold the guidance batch.
	var selfBatch2 int64
	for _, m := range p.UNet.AttentionModules() {
		if m.Kind == nn.SelfAttn {
			hh, ww := 16, 16
			for s := 1; s < m.Stride; s *= 2 {
				hh, ww = (hh+1)/2, (ww+1)/2
			}
			selfBatch2 += int64(2 * 4 * hh * ww * m.Dim)
		}
	}
	if cache[1] != selfBatch2 || cache[0] != 0 {
		t.Errorf("cache before the gate: %v, want 0 then %d", cache[:3], selfBatch2)
	}
	if after := b.Memory().Live; after != before-cross {
		t.Errorf("after the run %d bytes live, want the weights less the released ones: %d", after, before-cross)
	}
}

// TestCancel stops a generation from its progress callback and checks
// that the context's error comes back and nothing is leaked.
func TestCancel(t *testing.T) {
	p := loadGolden(t, "sd15_tiny_pipeline", LoadOptions{SkipVAE: true})
	b := p.b
	before := b.Memory().Live
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	req := Request{Prompt: "an owl", Steps: 10, Guidance: 7.5, Seed: 1, Width: 32, Height: 32, Scheduler: "ddim",
		Decoder: DecodeNone, Progress: func(Progress) {
			calls++
			if calls == 2 {
				cancel()
			}
		}}
	res, err := p.Generate(ctx, req)
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Fatalf("Generate after cancel: %v, %v", res, err)
	}
	if calls != 2 {
		t.Errorf("%d steps ran after cancelling at step 2", calls)
	}
	if after := b.Memory().Live; after != before {
		t.Errorf("%d bytes live after a cancelled run, %d before", after, before)
	}
}

// TestKeepCrossAttention checks that keeping the cross-attention weights
// after the gate changes nothing in the result and releases nothing.
func TestKeepCrossAttention(t *testing.T) {
	p := loadGolden(t, "sd15_tiny_pipeline", LoadOptions{SkipVAE: true})
	req := Request{Prompt: "an owl", Steps: 6, Guidance: 7.5, Seed: 4, Width: 32, Height: 32, Scheduler: "ddim",
		Decoder: DecodeNone, Gate: gate.Config{Mode: gate.V2, GateStep: 2, SPInterval: 2, FIInterval: 2, WarmUp: 0}}
	released, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !p.crossReleased {
		t.Fatal("the gated run did not release the cross-attention weights")
	}
	before := p.b.Memory().Live
	req.KeepCrossAttention = true
	kept, err := p.Generate(context.Background(), req) // reloads the UNet first
	if err != nil {
		t.Fatal(err)
	}
	if p.crossReleased {
		t.Error("KeepCrossAttention released the weights")
	}
	if after := p.b.Memory().Live; after != before+crossBytes(p) {
		t.Errorf("live bytes %d after the kept run, want %d (reloaded cross-attention weights kept)", after, before+crossBytes(p))
	}
	if abs, _ := golden.Diff(kept.Latents, released.Latents); abs != 0 {
		t.Errorf("keeping the cross-attention weights changed the result by %g", abs)
	}
}
