package jsapi

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/sched"
)

// model describes the loaded model a case resolves against.
type model struct {
	kind     pipeline.Kind
	hasVAE   bool
	hasTAESD bool
}

var (
	sdVAE   = model{kind: pipeline.StableDiffusion, hasVAE: true}
	sdBoth  = model{kind: pipeline.StableDiffusion, hasVAE: true, hasTAESD: true}
	sdBare  = model{kind: pipeline.StableDiffusion}
	lcmVAE  = model{kind: pipeline.LatentConsistency, hasVAE: true}
	sdNoVAE = model{kind: pipeline.StableDiffusion, hasTAESD: true}
)

// Gate settings written out (SD paper defaults 10/5/1/2, LCM 1/1/1/0).
var (
	sdOff  = gate.Config{Mode: gate.Off, GateStep: 10, SPInterval: 5, FIInterval: 1, WarmUp: 2}
	lcmOff = gate.Config{Mode: gate.Off, GateStep: 1, SPInterval: 1, FIInterval: 1, WarmUp: 0}
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name     string
		json     string
		model    model
		steps    int
		guidance float64
		req      pipeline.Request
		warnings []string
	}{
		{
			name: "SD defaults", json: `{}`, model: sdVAE,
			steps: 50, guidance: 7.5,
			req: pipeline.Request{Steps: 50, Guidance: 7.5, Gate: sdOff, Decoder: pipeline.DecodeVAE},
		},
		{
			name: "LCM defaults", json: `{}`, model: lcmVAE,
			steps: 4, guidance: 8.5,
			req: pipeline.Request{Steps: 4, Guidance: 8.5, Gate: lcmOff, Decoder: pipeline.DecodeVAE},
		},
		{
			name: "LCM v2 takes the LCM gate defaults", json: `{"tgate":{"mode":"v2"}}`, model: lcmVAE,
			steps: 4, guidance: 8.5,
			req: pipeline.Request{Steps: 4, Guidance: 8.5, Decoder: pipeline.DecodeVAE,
				Gate: gate.Config{Mode: gate.V2, GateStep: 1, SPInterval: 1, FIInterval: 1, WarmUp: 0}},
		},
		{
			name: "SD v2 takes the paper's defaults", json: `{"tgate":{"mode":"v2"}}`, model: sdVAE,
			steps: 50, guidance: 7.5,
			req: pipeline.Request{Steps: 50, Guidance: 7.5, Decoder: pipeline.DecodeVAE,
				Gate: gate.Config{Mode: gate.V2, GateStep: 10, SPInterval: 5, FIInterval: 1, WarmUp: 2}},
		},
		{
			name: "tgate without mode is off", json: `{"tgate":{}}`, model: sdVAE,
			steps: 50, guidance: 7.5,
			req: pipeline.Request{Steps: 50, Guidance: 7.5, Gate: sdOff, Decoder: pipeline.DecodeVAE},
		},
		{
			name: "every field carried",
			json: `{"prompt":"a red fox","negativePrompt":"blurry","steps":25,"guidance":5,
				"guidanceRescale":0.7,"seed":9007199254740992,"width":768,"height":512,
				"scheduler":"DPMSolverMultistepScheduler","timestepSpacing":"trailing",
				"decoder":"taesd","returnLatents":true,"previewEvery":3,
				"tgate":{"mode":"V1","gateStep":7,"spInterval":3,"fiInterval":2,"warmUp":0}}`,
			model: sdBoth,
			steps: 25, guidance: 5,
			req: pipeline.Request{
				Prompt: "a red fox", NegativePrompt: "blurry", Steps: 25, Guidance: 5,
				GuidanceRescale: 0.7, Seed: 9007199254740992, Width: 768, Height: 512,
				Scheduler: sched.DPMSolver, TimestepSpacing: "trailing", Decoder: pipeline.DecodeTAESD,
				Gate: gate.Config{Mode: gate.V1, GateStep: 7, SPInterval: 3, FIInterval: 2, WarmUp: 0},
			},
		},
		{
			name:  "scheduler short name, any case; linspace",
			json:  `{"scheduler":"Euler-A","timestepSpacing":"linspace","seed":1}`,
			model: sdVAE, steps: 50, guidance: 7.5,
			req: pipeline.Request{Steps: 50, Guidance: 7.5, Seed: 1, Scheduler: sched.EulerAncestral,
				TimestepSpacing: "linspace", Gate: sdOff, Decoder: pipeline.DecodeVAE},
		},
		{
			name:  "leading spacing, LCM scheduler on SD",
			json:  `{"scheduler":"lcm","timestepSpacing":"leading"}`,
			model: sdVAE, steps: 50, guidance: 7.5,
			req: pipeline.Request{Steps: 50, Guidance: 7.5, Scheduler: sched.LCM,
				TimestepSpacing: "leading", Gate: sdOff, Decoder: pipeline.DecodeVAE},
		},
		{
			name:  "explicit vae decoder",
			json:  `{"decoder":"vae"}`,
			model: sdBoth, steps: 50, guidance: 7.5,
			req: pipeline.Request{Steps: 50, Guidance: 7.5, Gate: sdOff, Decoder: pipeline.DecodeVAE},
		},
		{
			name:  "decoder none needs neither decoder",
			json:  `{"decoder":"none"}`,
			model: sdBare, steps: 50, guidance: 7.5,
			req: pipeline.Request{Steps: 50, Guidance: 7.5, Gate: sdOff, Decoder: pipeline.DecodeNone},
		},
		{
			name:  "boundaries: 1 step, guidance 0, rescale 1, seed 0",
			json:  `{"steps":1,"guidance":0,"guidanceRescale":1,"seed":0}`,
			model: sdVAE, steps: 1, guidance: 0,
			req: pipeline.Request{Steps: 1, Guidance: 0, GuidanceRescale: 1, Gate: sdOff, Decoder: pipeline.DecodeVAE},
		},
		{
			name:  "1000 steps, negative guidance",
			json:  `{"steps":1000,"guidance":-2.5}`,
			model: lcmVAE, steps: 1000, guidance: -2.5,
			req: pipeline.Request{Steps: 1000, Guidance: -2.5, Gate: lcmOff, Decoder: pipeline.DecodeVAE},
		},
		{
			name:  "mode off: interval settings warn and are dropped",
			json:  `{"tgate":{"mode":"off","spInterval":3,"fiInterval":4,"warmUp":0}}`,
			model: sdVAE, steps: 50, guidance: 7.5,
			req: pipeline.Request{Steps: 50, Guidance: 7.5, Gate: sdOff, Decoder: pipeline.DecodeVAE},
			warnings: []string{
				"tgate.spInterval is ignored: T-GATE is off (mode v1 or v2 turns it on)",
				"tgate.fiInterval is ignored: T-GATE is off (mode v1 or v2 turns it on)",
				"tgate.warmUp is ignored: T-GATE is off (mode v1 or v2 turns it on)",
			},
		},
		{
			name:  "mode off keeps gateStep without a warning",
			json:  `{"steps":25,"tgate":{"mode":"off","gateStep":20}}`,
			model: sdVAE, steps: 25, guidance: 7.5,
			req: pipeline.Request{Steps: 25, Guidance: 7.5, Decoder: pipeline.DecodeVAE,
				Gate: gate.Config{Mode: gate.Off, GateStep: 20, SPInterval: 5, FIInterval: 1, WarmUp: 2}},
		},
		{
			name:  "mode off: gateStep past the last step does not warn",
			json:  `{"steps":8,"tgate":{"gateStep":30,"warmUp":1}}`,
			model: lcmVAE, steps: 8, guidance: 8.5,
			req: pipeline.Request{Steps: 8, Guidance: 8.5, Decoder: pipeline.DecodeVAE,
				Gate: gate.Config{Mode: gate.Off, GateStep: 30, SPInterval: 1, FIInterval: 1, WarmUp: 0}},
			warnings: []string{"tgate.warmUp is ignored: T-GATE is off (mode v1 or v2 turns it on)"},
		},
		{
			name:  "gate step one before the end does not warn",
			json:  `{"steps":10,"tgate":{"mode":"v2","gateStep":9}}`,
			model: sdVAE, steps: 10, guidance: 7.5,
			req: pipeline.Request{Steps: 10, Guidance: 7.5, Decoder: pipeline.DecodeVAE,
				Gate: gate.Config{Mode: gate.V2, GateStep: 9, SPInterval: 5, FIInterval: 1, WarmUp: 2}},
		},
		{
			name:  "gate step equal to steps warns",
			json:  `{"steps":10,"tgate":{"mode":"v2","gateStep":10}}`,
			model: sdVAE, steps: 10, guidance: 7.5,
			req: pipeline.Request{Steps: 10, Guidance: 7.5, Decoder: pipeline.DecodeVAE,
				Gate: gate.Config{Mode: gate.V2, GateStep: 10, SPInterval: 5, FIInterval: 1, WarmUp: 2}},
			warnings: []string{"T-GATE gate step 10 is not before the last of 10 steps: cross-attention is never cached, so T-GATE changes nothing"},
		},
		{
			name:  "default gate step beyond few steps warns",
			json:  `{"steps":8,"tgate":{"mode":"v1"}}`,
			model: sdVAE, steps: 8, guidance: 7.5,
			req: pipeline.Request{Steps: 8, Guidance: 7.5, Decoder: pipeline.DecodeVAE,
				Gate: gate.Config{Mode: gate.V1, GateStep: 10, SPInterval: 5, FIInterval: 1, WarmUp: 2}},
			warnings: []string{"T-GATE gate step 10 is not before the last of 8 steps: cross-attention is never cached, so T-GATE changes nothing"},
		},
		{
			name:  "LCM single step with v2 warns",
			json:  `{"steps":1,"tgate":{"mode":"v2"}}`,
			model: lcmVAE, steps: 1, guidance: 8.5,
			req: pipeline.Request{Steps: 1, Guidance: 8.5, Decoder: pipeline.DecodeVAE,
				Gate: gate.Config{Mode: gate.V2, GateStep: 1, SPInterval: 1, FIInterval: 1, WarmUp: 0}},
			warnings: []string{"T-GATE gate step 1 is not before the last of 1 steps: cross-attention is never cached, so T-GATE changes nothing"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := ParseGenerate([]byte(tc.json))
			if err != nil {
				t.Fatalf("ParseGenerate: %v", err)
			}
			r, err := Resolve(g, tc.model.kind, tc.model.hasVAE, tc.model.hasTAESD)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if r.Steps != tc.steps || r.Guidance != tc.guidance {
				t.Errorf("Steps, Guidance = %d, %g; want %d, %g", r.Steps, r.Guidance, tc.steps, tc.guidance)
			}
			if !reflect.DeepEqual(r.Request, tc.req) {
				t.Errorf("Request =\n%+v\nwant\n%+v", r.Request, tc.req)
			}
			if !reflect.DeepEqual(r.Warnings, tc.warnings) {
				t.Errorf("Warnings = %q; want %q", r.Warnings, tc.warnings)
			}
		})
	}
}

func TestParseGenerateFields(t *testing.T) {
	g, err := ParseGenerate([]byte(`{"returnLatents":true,"previewEvery":4,"seed":12345}`))
	if err != nil {
		t.Fatal(err)
	}
	if !g.ReturnLatents || g.PreviewEvery != 4 || g.Seed == nil || *g.Seed != 12345 {
		t.Errorf("got returnLatents %v, previewEvery %d, seed %v; want true, 4, 12345", g.ReturnLatents, g.PreviewEvery, g.Seed)
	}
	g, err = ParseGenerate([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if g.Steps != nil || g.Guidance != nil || g.Seed != nil || g.TGate != nil {
		t.Errorf("unset options must stay unset (nil), got %+v", g)
	}
}

func TestParseGenerateErrors(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"stepz":5}`, `unknown field "stepz"`},
		{`{"tgate":{"mode":"v2","gatestep_":3}}`, `unknown field "gatestep_"`},
		{`{"latents":[0,1]}`, `unknown field "latents"`},
		{`{"steps":"5"}`, "cannot unmarshal"},
		{`{"steps":2.5}`, "cannot unmarshal"},
		{`[]`, "cannot unmarshal"},
		{`{"prompt":`, "unexpected EOF"},
		{``, "EOF"},
	} {
		g, err := ParseGenerate([]byte(tc.json))
		if err == nil {
			t.Errorf("ParseGenerate(%s) = %+v; want an error", tc.json, g)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "generate options: ") {
			t.Errorf("ParseGenerate(%s) error %q; want it to start with \"generate options: \" and contain %q", tc.json, err, tc.want)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name  string
		json  string    // parsed with ParseGenerate, unless g is set
		g     *Generate // options JSON cannot express (NaN, ±Inf)
		model model
		want  string
	}{
		{name: "steps 0", json: `{"steps":0}`, model: sdVAE, want: "steps 0: must be between 1 and 1000"},
		{name: "steps 1001", json: `{"steps":1001}`, model: sdVAE, want: "steps 1001: must be between 1 and 1000"},
		{name: "steps negative", json: `{"steps":-4}`, model: lcmVAE, want: "steps -4"},
		{name: "guidance NaN", g: &Generate{Guidance: f(math.NaN())}, model: sdVAE, want: "guidance must be a finite number"},
		{name: "guidance +Inf", g: &Generate{Guidance: f(math.Inf(1))}, model: sdVAE, want: "guidance must be a finite number"},
		{name: "guidance -Inf", g: &Generate{Guidance: f(math.Inf(-1))}, model: lcmVAE, want: "guidance must be a finite number"},
		{name: "rescale below 0", json: `{"guidanceRescale":-0.1}`, model: sdVAE, want: "guidanceRescale -0.1: must be in [0, 1]"},
		{name: "rescale above 1", json: `{"guidanceRescale":1.5}`, model: sdVAE, want: "guidanceRescale 1.5: must be in [0, 1]"},
		{name: "seed negative", json: `{"seed":-1}`, model: sdVAE, want: "seed -1: must be a whole number from 0 to 2^53"},
		{name: "seed fractional", json: `{"seed":1.5}`, model: sdVAE, want: "seed 1.5: must be a whole number"},
		{name: "seed above 2^53", json: `{"seed":9007199254740994}`, model: sdVAE, want: "must be a whole number from 0 to 2^53"},
		{name: "seed NaN", g: &Generate{Seed: f(math.NaN())}, model: sdVAE, want: "must be a whole number"},
		{name: "width not a multiple of 8", json: `{"width":513,"height":512}`, model: sdVAE, want: "width and height must be multiples of 8 (got 513x512)"},
		{name: "height not a multiple of 8", json: `{"width":512,"height":500}`, model: sdVAE, want: "(got 512x500)"},
		{name: "width negative", json: `{"width":-8}`, model: sdVAE, want: "(got -8x0)"},
		{name: "bad scheduler", json: `{"scheduler":"heun"}`, model: sdVAE, want: `unknown scheduler "heun"`},
		{name: "bad spacing", json: `{"timestepSpacing":"Trailing"}`, model: sdVAE, want: `timestepSpacing "Trailing": valid values are leading, trailing, linspace`},
		{name: "taesd without TAESD", json: `{"decoder":"taesd"}`, model: sdVAE, want: `decoder "taesd": no TAESD decoder is loaded`},
		{name: "vae without VAE", json: `{"decoder":"vae"}`, model: sdNoVAE, want: `decoder "vae": the model was loaded without its VAE`},
		{name: "default decoder without VAE", json: `{}`, model: sdNoVAE, want: `decoder "vae": the model was loaded without its VAE`},
		{name: "bad decoder", json: `{"decoder":"png"}`, model: sdBoth, want: `decoder "png": valid values are vae, taesd, none`},
		{name: "negative previewEvery", json: `{"previewEvery":-1}`, model: sdVAE, want: "previewEvery -1: must not be negative"},
		{name: "bad tgate mode", json: `{"tgate":{"mode":"v3"}}`, model: sdVAE, want: `unknown T-GATE mode "v3"`},
		{name: "v2 spInterval 0", json: `{"tgate":{"mode":"v2","spInterval":0}}`, model: sdVAE, want: "T-GATE sp_interval 0: must be at least 1"},
		{name: "v2 fiInterval 0", json: `{"tgate":{"mode":"v2","fiInterval":0}}`, model: lcmVAE, want: "T-GATE fi_interval 0: must be at least 1"},
		{name: "v2 negative warmUp", json: `{"tgate":{"mode":"v2","warmUp":-1}}`, model: sdVAE, want: "T-GATE warm_up -1: must not be negative"},
		{name: "v1 gateStep 0", json: `{"tgate":{"mode":"v1","gateStep":0}}`, model: sdVAE, want: "T-GATE gate step 0: must be at least 1"},
		{name: "v2 gateStep negative", json: `{"tgate":{"mode":"v2","gateStep":-3}}`, model: lcmVAE, want: "T-GATE gate step -3: must be at least 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			if g == nil {
				var err error
				if g, err = ParseGenerate([]byte(tc.json)); err != nil {
					t.Fatalf("ParseGenerate: %v", err)
				}
			}
			r, err := Resolve(g, tc.model.kind, tc.model.hasVAE, tc.model.hasTAESD)
			if err == nil {
				t.Fatalf("Resolve = %+v; want an error containing %q", r, tc.want)
			}
			if r != nil {
				t.Errorf("Resolve returned %+v with its error; want nil", r)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q; want it to contain %q", err, tc.want)
			}
		})
	}
}
