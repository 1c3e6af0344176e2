package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/tgate-web/tgate/fixture"
	"github.com/tgate-web/tgate/tensor"
)

func init() {
	register("fixture", "write a tiny diffusers model folder with seeded random weights", runFixture)
}

func runFixture(args []string) int {
	fs := flag.NewFlagSet("fixture", flag.ContinueOnError)
	out := fs.String("out", "", "folder to write the model into (required)")
	preset := fs.String("preset", string(fixture.SD15), "model family: "+presetNames())
	seed := fs.Uint64("seed", 1, "seed of the random weights")
	dtype := fs.String("dtype", "F32", "weight dtype: F32, F16 or BF16")
	variant := fs.String("variant", "", "weight file variant, e.g. fp16 (diffusion_pytorch_model.fp16.safetensors)")
	shards := fs.Int("shards", 1, "split each component's weights over this many files with an index")
	vocab := fs.String("tokenizer", "", "folder with the CLIP vocab.json and merges.txt (or bpe_simple_vocab_16e6.txt.gz) to use instead of the built-in openai/CLIP vocabulary")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" {
		fmt.Fprintln(os.Stderr, "tgate fixture: --out is required")
		return 2
	}
	p := fixture.Preset(*preset)
	if !validPreset(p) {
		fmt.Fprintf(os.Stderr, "tgate fixture: unknown --preset %q (valid: %s)\n", *preset, presetNames())
		return 2
	}
	dt, err := tensor.ParseDType(strings.ToUpper(*dtype))
	if err != nil || !dt.IsFloat() {
		fmt.Fprintf(os.Stderr, "tgate fixture: unknown --dtype %q (valid: F32, F16, BF16)\n", *dtype)
		return 2
	}
	err = fixture.Write(*out, fixture.Options{Preset: p, Seed: *seed, DType: dt, Variant: *variant,
		Shards: *shards, TokenizerDir: *vocab})
	if err != nil {
		fmt.Fprintf(os.Stderr, "tgate fixture: %v\n", err)
		return 1
	}
	fmt.Printf("wrote %s model to %s\n", p, *out)
	return 0
}

func validPreset(p fixture.Preset) bool {
	for _, q := range fixture.Presets {
		if p == q {
			return true
		}
	}
	return false
}

func presetNames() string {
	var s []string
	for _, p := range fixture.Presets {
		s = append(s, string(p))
	}
	return strings.Join(s, ", ")
}
