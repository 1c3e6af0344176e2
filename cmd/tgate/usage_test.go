package main

import (
	"regexp"
	"sort"
	"strings"
	"testing"
)

// flagBlock matches one flag of a help text: "  --name [VALUE]" and its
// indented description.
var flagBlock = regexp.MustCompile(`(?m)^  --([a-z-]+)(?: (\S+))?\n        (.*)$`)

// TestSubcommandHelp: every subcommand's -h prints to stdout, exits 0 and
// has the same layout: "usage: tgate NAME ...", a paragraph, then each
// flag as "  --name VALUE" with its description indented below, stating
// its default at most once and never a placeholder such as -1.
func TestSubcommandHelp(t *testing.T) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		if n != "help" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		for _, h := range []string{"-h", "--help"} {
			code, out, errOut := runTgate(name, h)
			if code != 0 || errOut != "" {
				t.Errorf("%s %s: exit %d, stderr %q", name, h, code, errOut)
			}
			if !strings.HasPrefix(out, "usage: tgate "+name) || !strings.Contains(out, "\n\n") {
				t.Errorf("%s %s: no usage line and paragraph:\n%s", name, h, out)
			}
			for _, m := range flagBlock.FindAllStringSubmatch(out, -1) {
				desc := m[3]
				if n := strings.Count(desc, "default"); n > 1 {
					t.Errorf("%s --%s: default stated %d times: %q", name, m[1], n, desc)
				}
				if strings.Contains(desc, "(default: -1)") || strings.Contains(desc, "model default") {
					t.Errorf("%s --%s: placeholder default: %q", name, m[1], desc)
				}
			}
		}
	}
	_, out, _ := runTgate("generate", "-h")
	got := map[string]string{}
	for _, m := range flagBlock.FindAllStringSubmatch(out, -1) {
		got[m[1]] = m[3]
	}
	for flag, want := range map[string]string{
		"steps":     "(default: 50 for Stable Diffusion and SD-XL, 4 for LCM, 20 for PixArt)",
		"gate-step": "(default: 10 for Stable Diffusion, 1 for LCM)",
		"guidance":  "(default: 7.5 for Stable Diffusion, 5 for SD-XL, 8.5 for LCM, 4.5 for PixArt)",
		"out":       `(default: "out.png")`,
		"tgate":     `(default: "off")`,
	} {
		if !strings.HasSuffix(got[flag], want) {
			t.Errorf("generate --%s: %q, want it to end %q", flag, got[flag], want)
		}
	}
	for _, section := range []string{"\nmodel and prompt:\n", "\nsampling:\n", "\nT-GATE:\n", "\noutput:\n", "WARNING line"} {
		if !strings.Contains(out, section) {
			t.Errorf("generate -h lacks %q", section)
		}
	}
	if strings.Contains(out, "other flags:") {
		t.Errorf("generate -h has flags outside its groups:\n%s", out)
	}
}

// TestBadFlagValue: a flag that does not parse, or a missing required
// flag, prints exactly one error line and a pointer to -h (not the whole
// help) and exits 2, in every subcommand.
func TestBadFlagValue(t *testing.T) {
	for _, c := range []struct {
		args []string
		line string
	}{
		{[]string{"generate", "--steps", "ten"}, `tgate generate: invalid value "ten" for flag -steps: parse error`},
		{[]string{"generate", "--guidance", "NaN", "--model", "x"}, `tgate generate: invalid value "NaN" for flag -guidance: not a finite number: "NaN"`},
		{[]string{"generate", "--prompt", "x"}, "tgate generate: --model is required"},
		{[]string{"generate", "--model", "m", "--tgate", "v3"}, `tgate generate: unknown --tgate value "v3" (valid: off, v1, v2)`},
		{[]string{"macs", "--weights", "f8", "--model", "m"}, `tgate macs: unknown --weights value "f8" (valid: f16, bf16, f32)`},
		{[]string{"macs", "--gate-step", "x"}, `tgate macs: invalid value "x" for flag -gate-step: parse error`},
		{[]string{"macs"}, "tgate macs: --model is required"},
		{[]string{"fixture", "--shards", "many"}, `tgate fixture: invalid value "many" for flag -shards: parse error`},
		{[]string{"fixture"}, "tgate fixture: --out is required"},
		{[]string{"fixture", "--out", "x", "--preset", "sdxl"}, `tgate fixture: unknown --preset value "sdxl" (valid: sd15, sd21, lcm)`},
		{[]string{"inspect", "--nope"}, "tgate inspect: flag provided but not defined: -nope"},
		{[]string{"inspect"}, "tgate inspect: no PATH given"},
		{[]string{"version", "--short"}, "tgate version: flag provided but not defined: -short"},
	} {
		code, out, errOut := runTgate(c.args...)
		name := c.args[0]
		want := c.line + "\nRun 'tgate " + name + " -h' for its flags.\n"
		if code != 2 || out != "" || errOut != want {
			t.Errorf("%q: exit %d, stdout %q, stderr\n%q\nwant\n%q", c.args, code, out, errOut, want)
		}
	}
}
