package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tgate-web/tgate/fixture"
	"github.com/tgate-web/tgate/tensor"
)

func init() {
	register("fixture", "write a tiny diffusers model folder with seeded random weights", runFixture)
}

var fixtureHelp = help{
	name:  "fixture",
	usage: "--out DIR [flags]",
	about: `Writes a tiny model in the diffusers layout (model_index.json, tokenizer/, text_encoder/,
unet/, vae/, scheduler/) with seeded random weights, for tests and the demo. It loads like a
real checkpoint, but its images are noise. The tokenizer is the real CLIP vocabulary, built in.`,
	values: map[string]string{"out": "DIR", "preset": "NAME", "dtype": "DTYPE", "variant": "NAME", "tokenizer": "DIR"},
}

func runFixture(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("fixture", flag.ContinueOnError)
	out := fl.String("out", "", "folder to write the model into (required)")
	preset := fl.String("preset", string(fixture.SD15), "model family: "+presetNames())
	seed := fl.Uint64("seed", 1, "seed of the random weights")
	dtype := fl.String("dtype", "F32", "weight dtype: F32, F16 or BF16")
	variant := fl.String("variant", "", "weight file variant, e.g. fp16 (diffusion_pytorch_model.fp16.safetensors)")
	shards := fl.Int("shards", 1, "split each component's weights over this many files with an index")
	vocab := fl.String("tokenizer", "", "folder with the CLIP vocab.json and merges.txt (or bpe_simple_vocab_16e6.txt.gz) to use instead of the built-in openai/CLIP vocabulary")
	if code, ok := parseFlags(fl, fixtureHelp, args, stdout, stderr); !ok {
		return code
	}
	if fl.NArg() != 0 {
		return usageError(stderr, "fixture", fmt.Errorf("unexpected argument %q", fl.Arg(0)))
	}
	if *out == "" {
		return usageError(stderr, "fixture", errors.New("--out is required"))
	}
	p := fixture.Preset(*preset)
	if !validPreset(p) {
		return usageError(stderr, "fixture", fmt.Errorf("unknown --preset value %q (valid: %s)", *preset, presetNames()))
	}
	dt, err := tensor.ParseDType(strings.ToUpper(*dtype))
	if err != nil || !dt.IsFloat() {
		return usageError(stderr, "fixture", fmt.Errorf("unknown --dtype value %q (valid: F32, F16, BF16)", *dtype))
	}
	err = fixture.Write(*out, fixture.Options{Preset: p, Seed: *seed, DType: dt, Variant: *variant,
		Shards: *shards, TokenizerDir: *vocab})
	if err != nil {
		fmt.Fprintf(stderr, "tgate fixture: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s model to %s\n", p, *out)
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
