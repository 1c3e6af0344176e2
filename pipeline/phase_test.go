package pipeline

import (
	"context"
	"testing"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
)

// TestReleaseTextEncoder generates twice with the text encoder released
// after each encoding: the encoder is gone after the first run, bound again
// for the second, and both runs give the latents of a run that keeps it.
func TestReleaseTextEncoder(t *testing.T) {
	p := loadGolden(t, "sd15_tiny_pipeline", LoadOptions{SkipVAE: true})
	req := Request{Prompt: "a red fox", Steps: 3, Guidance: 7.5, Seed: 3, Decoder: DecodeNone,
		Gate: gate.Config{Mode: gate.Off}}
	keep, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	req.ReleaseTextEncoder = true
	var phases []PhaseEvent
	req.Phase = func(e PhaseEvent) { phases = append(phases, e) }
	for run := 0; run < 2; run++ {
		r, err := p.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if p.TextEncoder != nil {
			t.Fatalf("run %d: the text encoder is still bound", run)
		}
		golden.AssertClose(t, "latents", r.Latents, keep.Latents, 0)
	}
	// Decoding is off, so each run reports three phases, each started
	// then ended, in order.
	want := []string{PhaseTokenize, PhaseTextEncoder, PhaseDenoise}
	if len(phases) != 2*2*len(want) {
		t.Fatalf("phase events: %+v", phases)
	}
	for i, e := range phases {
		name := want[(i/2)%len(want)]
		if e.Name != name || e.Done != (i%2 == 1) {
			t.Errorf("event %d: %+v, want %s done=%v", i, e, name, i%2 == 1)
		}
		if !e.Done && e.Elapsed != 0 || e.Done && e.Elapsed < 0 {
			t.Errorf("event %d: elapsed %v", i, e.Elapsed)
		}
	}
}
