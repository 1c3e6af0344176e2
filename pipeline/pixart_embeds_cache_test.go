package pipeline

import (
	"context"
	"slices"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/golden"
)

// countingT5 counts the calls of the T5 encoder it wraps.
type countingT5 struct {
	t5Encoder
	calls int
}

func (c *countingT5) Encode(b backend.Backend, ids, mask [][]int32) (backend.Tensor, error) {
	c.calls++
	return c.t5Encoder.Encode(b, ids, mask)
}

// tinyEncodingBytes is the device size of one tiny-pipeline encoding with
// guidance: [negative; prompt] × 120 tokens × 32 channels of float32.
const tinyEncodingBytes = 2 * 120 * 32 * 4

// TestPixArtPromptCache checks the cache of recent prompts' embeddings: a
// repeated prompt does not call the encoder and gives bit-identical
// latents (runs/pixart_dpm_baseline's), another prompt or negative prompt
// misses, the least recently used encodings go beyond the count and byte
// bounds, the cache holds exactly its reported bytes, and clearing it or
// closing the pipeline frees them.
func TestPixArtPromptCache(t *testing.T) {
	b := cpu.New()
	p, err := Load(b, golden.Dir(t, "golden", "pixart_tiny_pipeline"), LoadOptions{SkipVAE: true})
	if err != nil {
		t.Fatal(err)
	}
	enc := &countingT5{t5Encoder: p.pixart.TextEncoder}
	p.pixart.TextEncoder = enc
	req, run := baselineRequest(t)
	calls := 0 // encoder calls so far
	gen := func(r Request, miss bool, what string) *Result {
		t.Helper()
		res, err := p.Generate(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if miss {
			calls++
		}
		if enc.calls != calls {
			t.Errorf("%s: %d encoder calls in all, want %d (cache miss: %v)", what, enc.calls, calls, miss)
		}
		return res
	}
	// The memory of the model alone: its weights and the buffers a
	// generation of this size keeps (the transformer's position-embedding
	// grid), measured after a generation with the cache off.
	p.SetPromptCacheLimits(PromptCacheLimits{})
	gen(req, true, "cache off")
	weights := b.Memory().Live
	p.SetPromptCacheLimits(DefaultPromptCacheLimits)

	first := gen(req, true, "first generation")
	golden.AssertClose(t, "first final latents", first.Latents, run["final.latents"], pixartTol)
	if n, bytes := p.PromptCacheLen(), p.PromptCacheBytes(); n != 1 || bytes != tinyEncodingBytes {
		t.Errorf("after one prompt the cache holds %d encodings, %d bytes; want 1, %d", n, bytes, tinyEncodingBytes)
	}
	if live := b.Memory().Live; live != weights+tinyEncodingBytes {
		t.Errorf("live bytes %d after a generation; want the weights' %d + the cache's %d", live, weights, tinyEncodingBytes)
	}
	second := gen(req, false, "same prompt again")
	if !slices.Equal(first.Latents.Data, second.Latents.Data) {
		t.Error("a cached encoding gave other latents than the encoder's")
	}

	short := req
	short.Steps = 1
	other := short
	other.Prompt = "A red fox in the snow."
	gen(other, true, "another prompt")
	negative := short
	negative.NegativePrompt = "blurry"
	gen(negative, true, "another negative prompt")
	longer := short
	longer.MaxSequenceLength = 60
	gen(longer, true, "another max sequence length")
	gen(short, false, "the first prompt at one step") // the steps are not part of the key
	if n := p.PromptCacheLen(); n != 4 {
		t.Fatalf("%d encodings cached, want 4", n)
	}

	// Bounds: at most two encodings of this size; the least recently
	// used (other, negative) go.
	p.SetPromptCacheLimits(PromptCacheLimits{Entries: 4, Bytes: 2 * tinyEncodingBytes})
	if n, bytes := p.PromptCacheLen(), p.PromptCacheBytes(); n != 2 || bytes > 2*tinyEncodingBytes {
		t.Errorf("byte bound %d: %d encodings, %d bytes", 2*tinyEncodingBytes, n, bytes)
	}
	gen(short, false, "the most recent prompt after eviction")
	gen(other, true, "an evicted prompt")
	p.SetPromptCacheLimits(PromptCacheLimits{Entries: 1, Bytes: 1 << 30})
	if n := p.PromptCacheLen(); n != 1 {
		t.Errorf("count bound 1: %d encodings", n)
	}
	gen(other, false, "the one prompt kept")
	p.SetPromptCacheLimits(PromptCacheLimits{Entries: 4, Bytes: tinyEncodingBytes - 1})
	gen(short, true, "a prompt larger than the byte bound")
	if n := p.PromptCacheLen(); n != 0 {
		t.Errorf("an encoding larger than the byte bound was kept (%d cached)", n)
	}
	p.SetPromptCacheLimits(PromptCacheLimits{})
	gen(short, true, "cache off")
	gen(short, true, "cache off, same prompt")
	if n, bytes := p.PromptCacheLen(), p.PromptCacheBytes(); n != 0 || bytes != 0 {
		t.Errorf("cache off holds %d encodings, %d bytes", n, bytes)
	}

	p.SetPromptCacheLimits(DefaultPromptCacheLimits)
	gen(short, true, "cache on again")
	gen(other, true, "cache on again, another prompt")
	if live := b.Memory().Live; live != weights+2*tinyEncodingBytes || p.PromptCacheBytes() != 2*tinyEncodingBytes {
		t.Errorf("live bytes %d, cache %d; want the weights' %d + 2 encodings' %d", live, p.PromptCacheBytes(), weights, 2*tinyEncodingBytes)
	}
	p.ClearPromptCache()
	if live := b.Memory().Live; live != weights || p.PromptCacheLen() != 0 {
		t.Errorf("after ClearPromptCache: live bytes %d, want the weights' %d", live, weights)
	}
	gen(short, true, "after clearing")
	p.Close()
	if live := b.Memory().Live; live != 0 {
		t.Errorf("after Close: %d bytes live, want 0", live)
	}
}

// TestPixArtPromptCacheStreamed repeats a T-GATE generation on a pipeline
// that streams T5 and releases it after each encoding (the browser's
// setting): the second run neither binds nor runs T5 (no block progress,
// the encoder stays released) and both reproduce runs/pixart_dpm_tgate_v2,
// though T-GATE frees its text embeddings after the gate.
func TestPixArtPromptCacheStreamed(t *testing.T) {
	b := cpu.New()
	p := loadPixArtTiny(t, b, LoadOptions{SkipVAE: true, StreamTextEncoder: true})
	r := readRun(t, "pixart_dpm_tgate_v2")
	run := golden.Tensors(t, golden.Dir(t, "golden", "runs", "pixart_dpm_tgate_v2.safetensors"))
	req := Request{Prompt: r.Call.Prompt, Steps: r.Call.Steps, Guidance: r.Call.Guidance,
		Latents: run["init.latents"], Decoder: DecodeNone, ReleaseTextEncoder: true,
		Gate: gate.Config{Mode: gate.V2, GateStep: *r.Call.GateStep, SPInterval: r.Call.SPInterval,
			FIInterval: r.Call.FIInterval, WarmUp: r.Call.WarmUp},
		PixArtOptions: PixArtOptions{NoResolutionBinning: true}}
	req.Height, req.Width = r.Call.Height, r.Call.Width
	var blocks int
	req.TextEncoderProgress = func(int, int) { blocks++ }
	for i, wantBlocks := range []int{2, 0} {
		blocks = 0
		res, err := p.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if blocks != wantBlocks {
			t.Errorf("run %d: %d T5 blocks ran, want %d", i+1, blocks, wantBlocks)
		}
		if p.pixart.TextEncoder != nil {
			t.Errorf("run %d: the T5 encoder is bound after a ReleaseTextEncoder run", i+1)
		}
		golden.AssertClose(t, "final latents", res.Latents, run["final.latents"], pixartTol)
	}
}
