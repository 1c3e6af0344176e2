package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
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

func runGenerate(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return generate(ctx, args, stdout, stderr)
}

var generateHelp = help{
	name:  "generate",
	usage: "--model DIR --prompt TEXT [flags]",
	about: `Generates one image from a diffusers model folder (model_index.json layout: Stable Diffusion
1.x/2.x or a latent consistency model, F32 or F16 safetensors) on the CPU and writes it as a PNG
that carries its settings. Progress goes to stderr, one line per denoiser evaluation.`,
	groups: []flagGroup{
		{"model and prompt", []string{"model", "prompt", "negative-prompt"}},
		{"sampling", []string{"steps", "scheduler", "timestep-spacing", "guidance", "guidance-rescale", "seed", "width", "height", "latents"}},
		{"T-GATE", []string{"tgate", "gate-step", "sp-interval", "fi-interval", "warm-up"}},
		{"output", []string{"out", "save-latents", "decoder", "taesd", "quiet"}},
	},
	values: map[string]string{
		"model": "DIR", "prompt": "TEXT", "negative-prompt": "TEXT", "scheduler": "NAME", "timestep-spacing": "NAME",
		"tgate": "MODE", "latents": "FILE.npy", "save-latents": "FILE.npy", "out": "FILE.png", "decoder": "NAME",
		"taesd": "FILE", "guidance": "X",
	},
	notes: warnHelp + `

The outputs are checked for writability and --steps against the scheduler before any weights
are read. T-GATE's summary line gives the share of the attention work it skipped: every
attention module's evaluations, weighted by batch (two rows with the guidance batch), against
the same run without T-GATE.`,
}

// generate runs `tgate generate`: it loads a diffusers model folder,
// generates one image on the CPU backend and writes it as PNG (and the
// final latents as .npy if asked). Progress and warnings go to stderr.
func generate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("generate", flag.ContinueOnError)
	model := fl.String("model", "", "diffusers model folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/), or a single-file .safetensors checkpoint (CompVis/A1111 layout, see --config); required")
	prompt := fl.String("prompt", "", "the prompt")
	negative := fl.String("negative-prompt", "", "the negative prompt (classifier-free guidance)")
	steps := fl.Int("steps", 0, "denoising steps (default: 50 for Stable Diffusion and SD-XL, 4 for LCM, 20 for PixArt)")
	var guidance optFloat
	fl.Var(&guidance, "guidance", "guidance scale; at most 1 turns classifier-free guidance off for Stable Diffusion (default: 7.5 for Stable Diffusion, 5 for SD-XL, 8.5 for LCM, 4.5 for PixArt)")
	rescale := fl.Float64("guidance-rescale", 0, "guidance rescale φ in [0, 1] (rescale_noise_cfg; 0 is off)")
	seed := fl.Uint64("seed", 0, "seed of the PyTorch-compatible CPU generator")
	width := fl.Int("width", 0, "image width in pixels (default: the model's)")
	height := fl.Int("height", 0, "image height in pixels (default: the model's)")
	schedName := fl.String("scheduler", "", "scheduler: "+joinNames(sched.Names())+" (default: the model folder's)")
	spacing := fl.String("timestep-spacing", "", "timestep spacing: "+strings.Join(spacingNames, ", ")+" (default: the scheduler config's)")
	mode := fl.String("tgate", "off", "T-GATE mode: "+strings.Join(gate.ModeNames(), ", ")+"; off reproduces the diffusers pipeline")
	spInterval := fl.Int("sp-interval", -1, "v2: self-attention is cached every this many steps before the gate and reused in between (default: 5, LCM 1)")
	fiInterval := fl.Int("fi-interval", -1, "v2: the same after the gate (default: 1, which reuses nothing)")
	warmUp := fl.Int("warm-up", -1, "v2: first steps whose self-attention is neither cached nor reused (default: 2, LCM 0)")
	latentsIn := fl.String("latents", "", "initial latents (float32 [1,4,H/8,W/8]); scaled by the scheduler's init_noise_sigma")
	latentsOut := fl.String("save-latents", "", "write the final latents (float32 NCHW, before decoding) to this file")
	out := fl.String("out", "out.png", "output PNG file; empty for no image")
	decoder := fl.String("decoder", "vae", "image decoder: "+strings.Join(decoderNames, ", "))
	taesdPath := fl.String("taesd", "", "TAESD decoder weights (.safetensors) for --decoder taesd")
	quiet := fl.Bool("quiet", false, "no per-step progress")
	var extra extraFlags
	extra.register(fl)
	if code, ok := parseFlags(fl, generateHelp, args, stdout, stderr); !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "tgate generate: %v\n", err)
		return 1
	}
	usageErr := func(err error) int { return usageError(stderr, "generate", err) }
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
	if *steps < 0 {
		return usageErr(fmt.Errorf("--steps %d: must be at least 1 (0 picks the model's default)", *steps))
	}
	if *decoder == "taesd" && *taesdPath == "" && *out != "" {
		return usageErr(errors.New("--decoder taesd needs --taesd PATH (the TAESD decoder weights)"))
	}
	if *out == "" && *latentsOut == "" {
		return usageErr(errors.New("nothing to write: give --out and/or --save-latents"))
	}
	given := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if err := extra.check(given); err != nil {
		return usageErr(err)
	}

	// Before any weights are read: the model's class and scheduler, the
	// step count, T-GATE's plan and where the outputs go.
	planFolder, err := configFolder(*model, extra.config)
	if err != nil {
		return fail(err)
	}
	r, err := planRun(planFolder, runChoices{steps: *steps, scheduler: name, spacing: *spacing, guidance: guidance, mode: gm,
		gateStep: extra.gateStep.n, auto: extra.auto(), edit: extra.initImage != "", inpaint: extra.mask != "", strength: extra.strength,
		spInterval: *spInterval, fiInterval: *fiInterval, warmUp: *warmUp})
	var ue choiceError
	switch {
	case errors.As(err, &ue):
		return usageErr(ue.error)
	case err != nil:
		return fail(err)
	}
	for _, o := range []struct{ flag, path string }{{"out", *out}, {"save-latents", *latentsOut}} {
		if o.path != "" {
			if err := checkWritable(o.flag, o.path); err != nil {
				return fail(err)
			}
		}
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, w := range settingWarnings(r, generateFlags{set: set, prompt: *prompt, guidance: guidance, rescale: *rescale, decoder: *decoder}) {
		fmt.Fprintf(stderr, "WARNING: %s\n", w)
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
	lopt := pipeline.LoadOptions{SkipVAE: *decoder != "vae" || *out == ""}
	extra.loadOptions(&lopt)
	var p *pipeline.Pipeline
	if isSingleFile(*model) {
		p, err = pipeline.LoadSingleFilePath(b, *model, extra.config, lopt)
	} else {
		p, err = pipeline.Load(b, *model, lopt)
	}
	if err != nil {
		return fail(err)
	}
	defer p.Close()
	p.VAETiling.Enabled = extra.vaeTiling
	for _, n := range p.Notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	if *decoder == "taesd" && *out != "" {
		if err := p.LoadTAESD(*taesdPath); err != nil {
			return fail(err)
		}
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
		Gate:            r.gate,
		Latents:         init,
		Decoder:         pipeline.DecodeVAE,
	}
	if guidance.set {
		req.Guidance = guidance.v
	}
	if err := extra.apply(&req, given); err != nil {
		return fail(err)
	}
	switch {
	case *out == "":
		req.Decoder = pipeline.DecodeNone
	case *decoder == "taesd":
		req.Decoder = pipeline.DecodeTAESD
	}
	prog := newProgress(r)
	req.Progress = func(pr pipeline.Progress) {
		line := prog.line(pr)
		if !*quiet {
			fmt.Fprintln(stderr, line)
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
		fmt.Fprintln(stderr, gateSummary(gm, res.Gate, prog.plans))
	}
	for _, l := range runSummary(req, res) {
		fmt.Fprintln(stderr, l)
	}
	return 0
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
