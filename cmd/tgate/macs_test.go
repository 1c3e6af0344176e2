package main

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

func runMacsCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = macsCmd(args, &o, &e)
	return code, o.String(), e.String()
}

// macsSummary matches the closing line of `tgate macs`.
var macsSummary = regexp.MustCompile(`calflops convention \(UNet only, docs/macs.md\): MACs ([0-9.]+)T, parameters ([0-9.]+)M(?:; with T-GATE (v1|v2): MACs ([0-9.]+)T, parameters used after the gate ([0-9.]+)M)?`)

// TestMacsReproducesPaperTable runs `tgate macs` on the real SD 1.5 and
// SD 2.1 configs and compares its figures with the T-GATE paper's table
// (HaozheLiu-ST/T-GATE README, April 2024, also in diffusers'
// docs/source/en/optimization/tgate.md): 25 steps with classifier-free
// guidance, calflops' MACs and parameters.
func TestMacsReproducesPaperTable(t *testing.T) {
	for _, c := range []struct {
		rel          string
		macs, params float64 // the paper's baseline, T and M
		tgParams     float64 // parameters with T-GATE, M
		tgMACs       float64 // MACs with T-GATE, T: reproduced by v1 with --gate-step 5 (docs/macs.md)
	}{
		{"runwayml/stable-diffusion-v1-5", 16.938, 859.520, 815.557, 9.875},
		{"stabilityai/stable-diffusion-2-1", 38.041, 865.785, 815.433, 22.208},
	} {
		dir := golden.Dir(t, "assets", "configs", c.rel)
		code, out, errOut := runMacsCmd("--model", dir, "--tgate", "v1", "--gate-step", "5")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.rel, code, errOut)
		}
		m := macsSummary.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s: no summary line in\n%s", c.rel, out)
		}
		num := func(i int) float64 {
			v, err := strconv.ParseFloat(m[i], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		within := func(what string, got, want, tol float64) {
			if e := math.Abs(got-want) / want; e > tol {
				t.Errorf("%s: %s %.3f, paper %.3f (%.2f%% off, allowed %.2f%%)", c.rel, what, got, want, 100*e, 100*tol)
			}
		}
		within("MACs (T)", num(1), c.macs, 0.01)
		within("parameters (M)", num(2), c.params, 0.01)
		within("T-GATE parameters (M)", num(5), c.tgParams, 0.01)
		within("T-GATE MACs at gate step 5 (T)", num(4), c.tgMACs, 0.01)
		for _, want := range []string{"semantics planning", "fidelity improving", "generation, all models resident", "generation, one model at a time", "Released at evaluation 5"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q", c.rel, want)
			}
		}
	}
}

func TestMacsOffPrintsBaselineOnly(t *testing.T) {
	dir := golden.Dir(t, "assets", "configs", "runwayml/stable-diffusion-v1-5")
	code, out, errOut := runMacsCmd("--model", dir, "--tgate", "off")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	m := macsSummary.FindStringSubmatch(out)
	if m == nil || m[3] != "" {
		t.Fatalf("want a baseline-only summary line, got\n%s", out)
	}
	if strings.Contains(out, "with T-GATE") {
		t.Errorf("T-GATE columns printed with --tgate off:\n%s", out)
	}
}

func TestMacsErrors(t *testing.T) {
	sd15 := golden.Dir(t, "assets", "configs", "runwayml/stable-diffusion-v1-5")
	sd3 := golden.Dir(t, "assets", "configs", "stabilityai/stable-diffusion-3-medium-diffusers")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "--model is required"},
		{[]string{"--model", sd15, "extra"}, 2, "unexpected argument"},
		{[]string{"--model", sd15, "--tgate", "v3"}, 2, `unknown --tgate value "v3" (valid: off, v1, v2)`},
		{[]string{"--model", sd15, "--weights", "int8"}, 2, `unknown --weights value "int8"`},
		{[]string{"--model", sd15, "--scheduler", "heun"}, 2, `unknown --scheduler value "heun"`},
		{[]string{"--model", sd15, "--width", "500"}, 1, "500x512"},
		{[]string{"--model", sd15, "--gate-step", "0"}, 2, "gate step 0"},
		{[]string{"--model", sd3}, 1, "StableDiffusion3Pipeline"},
		{[]string{"--model", t.TempDir()}, 1, "model_index.json"},
	} {
		code, out, errOut := runMacsCmd(c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errOut, c.code, c.want)
		}
		if out != "" {
			t.Errorf("%v: printed %q on stdout", c.args, out)
		}
		if c.code == 1 && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: error is not one line: %q", c.args, errOut)
		}
		if c.code == 2 && (!strings.HasSuffix(errOut, "\nRun 'tgate macs -h' for its flags.\n") || strings.Count(errOut, "\n") != 2) {
			t.Errorf("%v: a usage error is not one line and a pointer to -h: %q", c.args, errOut)
		}
	}
}
