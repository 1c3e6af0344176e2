package tokenizer

import (
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

func BenchmarkLoadCLIP(b *testing.B) {
	dir := golden.Dir(b, "golden", "sd15_tiny_pipeline", "tokenizer")
	for b.Loop() {
		if _, err := LoadCLIP(dir); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadOpenAIBPE(b *testing.B) {
	gz := readFile(b, golden.Dir(b, "assets", "clip", OpenAIBPEFile))
	for b.Loop() {
		if _, err := NewCLIP(CLIPFiles{OpenAIBPE: gz}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeForModel measures a typical prompt with a cold word cache
// (a fresh cache every iteration) and with a warm one.
func BenchmarkEncodeForModel(b *testing.B) {
	tok := loadDir(b, "golden", "sd15_tiny_pipeline", "tokenizer")
	const prompt = "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k, by Greg Rutkowski, trending on ArtStation"
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			tok.bpe.mu.Lock()
			clear(tok.bpe.cache)
			tok.bpe.mu.Unlock()
			tok.EncodeForModel(prompt)
		}
	})
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			tok.EncodeForModel(prompt)
		}
	})
}
