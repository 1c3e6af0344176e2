// Command tgatebench measures T-GATE end to end on the CPU backend: the
// same generation with T-GATE off, v1 and v2 (gate step 10 and 5 of 25),
// with the variants alternating over several rounds, and prints the
// median time per phase and in total, the speedup over the plain run, the
// MAC ratio the macs package counts for the same settings, and the peak
// bytes the backend held.
//
// The model is Stable Diffusion 1.5 with its real configs and seeded
// random F16 weights, written to a temporary folder at start; -quick uses
// the tiny fixture model instead, as a smoke test.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the benchmark's settings.
type options struct {
	configs string // diffusers folder whose configs shape the model; "" is the tiny fixture
	latent  int    // latent height and width
	steps   int
	rounds  int
	seed    uint64
	prompt  string
	keep    string // keep the model folder here instead of a temporary one
}

func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("tgatebench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var o options
	fl.StringVar(&o.configs, "configs", "../shared/assets/configs/runwayml/stable-diffusion-v1-5", "diffusers folder whose config files shape the model (weights are seeded random F16)")
	fl.IntVar(&o.latent, "latent", 16, "latent height and width (the image is 8× larger)")
	fl.IntVar(&o.steps, "steps", 25, "denoising steps (DPM-Solver++, guidance 7.5)")
	fl.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every variant once, in turn")
	seed := fl.Uint64("seed", 1, "seed of the weights and of the generation")
	fl.StringVar(&o.prompt, "prompt", "a red fox in the snow", "prompt")
	fl.StringVar(&o.keep, "model-dir", "", "write the model folder here and keep it (default: a temporary folder, removed at exit)")
	quick := fl.Bool("quick", false, "smoke test: the tiny fixture model, 8×8 latents, 4 steps, 1 round")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	o.seed = *seed
	if *quick {
		o.configs, o.latent, o.steps, o.rounds = "", 8, 4, 1
	}
	if o.rounds < 1 || o.steps < 1 || o.latent < 1 {
		fmt.Fprintln(stderr, "tgatebench: -rounds, -steps and -latent must be at least 1")
		return 2
	}
	rows, err := bench(context.Background(), o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tgatebench: %v\n", err)
		return 1
	}
	model := "tiny SD 1.5 fixture"
	if o.configs != "" {
		model = "SD 1.5 (" + o.configs + "), random F16 weights"
	}
	fmt.Fprintf(stdout, "T-GATE end to end, CPU backend: %s; %d×%d latents (%d×%d image), %d steps DPM-Solver++, guidance 7.5; median of %d rounds; %s/%s, %d CPUs, %s\n\n",
		model, o.latent, o.latent, o.latent*8, o.latent*8, o.steps, o.rounds, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	writeTable(stdout, rows)
	return 0
}
