package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/internal/npy"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/pnginfo"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

func init() {
	register("generate", "generate an image from a prompt on the CPU (Stable Diffusion / LCM, with T-GATE)", runGenerate)
}

func runGenerate(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return generate(ctx, args, os.Stdout, os.Stderr)
}

// Valid values of the enumerated flags.
var (
	decoderNames = []string{"vae", "taesd"}
	spacingNames = []string{"leading", "trailing", "linspace"}
)

// oneOf returns an error naming the flag and listing the valid values when
// v is not one of them.
func oneOf(flagName, v string, valid []string) error {
	for _, s := range valid {
		if v == s {
			return nil
		}
	}
	return fmt.Errorf("unknown --%s value %q (valid: %s)", flagName, v, strings.Join(valid, ", "))
}

// optFloat is a float flag that remembers whether it was set.
type optFloat struct {
	v   float64
	set bool
}

func (o *optFloat) String() string {
	if !o.set {
		return "model default"
	}
	return strconv.FormatFloat(o.v, 'g', -1, 64)
}

func (o *optFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("not a finite number: %q", s)
	}
	o.v, o.set = v, true
	return nil
}

// generate runs `tgate generate`: it loads a diffusers model folder,
// generates one image on the CPU backend and writes it as PNG (and the
// final latents as .npy if asked). Progress and warnings go to stderr.
func generate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("generate", flag.ContinueOnError)
	fl.SetOutput(stderr)
	model := fl.String("model", "", "diffusers model folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)")
	prompt := fl.String("prompt", "", "the prompt")
	negative := fl.String("negative-prompt", "", "the negative prompt (classifier-free guidance)")
	steps := fl.Int("steps", 0, "denoising steps (0: 50 for Stable Diffusion, 4 for LCM)")
	var guidance optFloat
	fl.Var(&guidance, "guidance", "guidance scale (default 7.5 for Stable Diffusion, 8.5 for LCM; ≤ 1 turns guidance off for Stable Diffusion)")
	rescale := fl.Float64("guidance-rescale", 0, "guidance rescale φ in [0, 1] (rescale_noise_cfg)")
	seed := fl.Uint64("seed", 0, "seed of the PyTorch-compatible CPU generator")
	width := fl.Int("width", 0, "image width in pixels (0: the model's default)")
	height := fl.Int("height", 0, "image height in pixels (0: the model's default)")
	schedName := fl.String("scheduler", "", "scheduler: "+joinNames(sched.Names())+" (default: the model folder's)")
	spacing := fl.String("timestep-spacing", "", "timestep spacing: "+strings.Join(spacingNames, ", ")+" (default: the scheduler config's)")
	mode := fl.String("tgate", "off", "T-GATE mode: "+strings.Join(gate.ModeNames(), ", ")+" (off reproduces the diffusers pipeline)")
	gateStep := fl.Int("gate-step", -1, "T-GATE gate step (default: 10 for Stable Diffusion, 1 for LCM)")
	spInterval := fl.Int("sp-interval", -1, "T-GATE self-attention caching interval before the gate (default: 5, LCM 1)")
	fiInterval := fl.Int("fi-interval", -1, "T-GATE self-attention caching interval after the gate (default: 1)")
	warmUp := fl.Int("warm-up", -1, "T-GATE warm-up steps without self-attention caching (default: 2, LCM 0)")
	latentsIn := fl.String("latents", "", "initial latents (.npy, float32 [1,4,H/8,W/8]); scaled by the scheduler's init_noise_sigma")
	latentsOut := fl.String("save-latents", "", "write the final latents (float32 NCHW, before decoding) to this .npy file")
	out := fl.String("out", "out.png", "output PNG file (empty: no image)")
	decoder := fl.String("decoder", "vae", "image decoder: "+strings.Join(decoderNames, ", "))
	taesdPath := fl.String("taesd", "", "TAESD decoder weights (.safetensors) for --decoder taesd")
	quiet := fl.Bool("quiet", false, "no per-step progress")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: tgate generate --model DIR --prompt TEXT [flags]")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "tgate generate: %v\n", err)
		return 1
	}
	usageErr := func(err error) int {
		fmt.Fprintf(stderr, "tgate generate: %v\n", err)
		return 2
	}
	if fl.NArg() != 0 {
		return usageErr(fmt.Errorf("unexpected arguments %q", fl.Args()))
	}
	if *model == "" {
		return usageErr(errors.New("--model is required"))
	}

	// Enumerated flags first, so a typo fails before any loading.
	var name sched.Name
	if *schedName != "" {
		n, err := sched.ParseName(*schedName)
		if err != nil {
			return usageErr(fmt.Errorf("unknown --scheduler value %q (valid: %s)", *schedName, joinNames(sched.Names())))
		}
		name = n
	}
	if *spacing != "" {
		if err := oneOf("timestep-spacing", *spacing, spacingNames); err != nil {
			return usageErr(err)
		}
	}
	if err := oneOf("decoder", *decoder, decoderNames); err != nil {
		return usageErr(err)
	}
	gm, err := gate.ParseMode(*mode)
	if err != nil {
		return usageErr(fmt.Errorf("unknown --tgate value %q (valid: %s)", *mode, strings.Join(gate.ModeNames(), ", ")))
	}
	if *decoder == "taesd" && *taesdPath == "" && *out != "" {
		return usageErr(errors.New("--decoder taesd needs --taesd PATH (the TAESD decoder weights)"))
	}
	if *out == "" && *latentsOut == "" {
		return usageErr(errors.New("nothing to write: give --out and/or --save-latents"))
	}

	var init *tensor.Host
	if *latentsIn != "" {
		f, err := os.Open(*latentsIn)
		if err != nil {
			return fail(err)
		}
		init, err = npy.Read(f)
		f.Close()
		if err != nil {
			return fail(fmt.Errorf("%s: %w", *latentsIn, err))
		}
	}

	b := cpu.New()
	p, err := pipeline.Load(b, *model, pipeline.LoadOptions{SkipVAE: *decoder != "vae" || *out == ""})
	if err != nil {
		return fail(err)
	}
	defer p.Close()
	if *decoder == "taesd" && *out != "" {
		if err := p.LoadTAESD(*taesdPath); err != nil {
			return fail(err)
		}
	}

	gc := gate.SDDefaults()
	if p.Kind == pipeline.LatentConsistency {
		gc = gate.LCMDefaults()
	}
	gc.Mode = gm
	for _, o := range []struct {
		v   int
		dst *int
	}{{*gateStep, &gc.GateStep}, {*spInterval, &gc.SPInterval}, {*fiInterval, &gc.FIInterval}, {*warmUp, &gc.WarmUp}} {
		if o.v >= 0 {
			*o.dst = o.v
		}
	}
	if err := gc.Validate(); err != nil {
		return usageErr(err)
	}
	if gm == gate.Off {
		fl.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "gate-step", "sp-interval", "fi-interval", "warm-up":
				fmt.Fprintf(stderr, "WARNING: --%s is ignored: T-GATE is off (add --tgate v1 or v2)\n", f.Name)
			}
		})
	}

	req := pipeline.Request{
		Prompt:          *prompt,
		NegativePrompt:  *negative,
		Steps:           *steps,
		Guidance:        pipeline.DefaultGuidance,
		GuidanceRescale: *rescale,
		Seed:            *seed,
		Width:           *width,
		Height:          *height,
		Scheduler:       name,
		TimestepSpacing: *spacing,
		Gate:            gc,
		Latents:         init,
		Decoder:         pipeline.DecodeVAE,
	}
	if guidance.set {
		req.Guidance = guidance.v
	}
	switch {
	case *out == "":
		req.Decoder = pipeline.DecodeNone
	case *decoder == "taesd":
		req.Decoder = pipeline.DecodeTAESD
	}
	if !*quiet {
		req.Progress = func(pr pipeline.Progress) {
			fmt.Fprintf(stderr, "step %d/%d  t=%g  %s  %.1fs\n", pr.Step, pr.Total, pr.Timestep, describePlan(pr.Plan, gm), pr.Elapsed.Seconds())
		}
	}
	req.Warn = func(w string) { fmt.Fprintf(stderr, "WARNING: %s\n", w) }
	res, err := p.Generate(ctx, req)
	if err != nil {
		return fail(err)
	}
	if *latentsOut != "" {
		if err := writeNPY(*latentsOut, res.Latents); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "latents %v written to %s\n", res.Latents.Shape, *latentsOut)
	}
	if *out != "" {
		data, err := pipeline.EncodePNG(res.Image)
		if err == nil {
			model := *model
			if abs, err := filepath.Abs(model); err == nil {
				model = abs
			}
			settings := p.Settings(req, res, filepath.Base(model))
			data, err = pnginfo.Encode(data, pnginfo.Key, pnginfo.Format(settings))
		}
		if err != nil {
			return fail(fmt.Errorf("%s: %w", *out, err))
		}
		if err := os.WriteFile(*out, data, 0o644); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "image %dx%d written to %s\n", res.Image.Shape[3], res.Image.Shape[2], *out)
	}
	if gm != gate.Off {
		s := res.Gate
		fmt.Fprintf(stderr, "T-GATE %s: cross-attention computed %d, reused %d; self-attention computed %d, reused %d\n",
			gm, s.CrossComputed, s.CrossReused, s.SelfComputed, s.SelfReused)
	}
	return 0
}

// describePlan summarises a step's plan for the progress line.
func describePlan(p gate.StepPlan, m gate.Mode) string {
	cfg := "cfg"
	if !p.CFG {
		cfg = "no-cfg"
	}
	if m == gate.Off {
		return cfg
	}
	return fmt.Sprintf("%s cross=%s self=%s", cfg, p.Cross, p.Self)
}

func writeNPY(path string, h *tensor.Host) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = npy.Write(f, h)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func joinNames(ns []sched.Name) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}
