package pnginfo

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestFormatLayout checks Format against the literal line the web UI
// writes for the same settings.
func TestFormatLayout(t *testing.T) {
	p := Params{
		Prompt: "a red fox", NegativePrompt: "blurry", Steps: 25, Sampler: "ddim", Guidance: 7.5, Seed: 1,
		Width: 512, Height: 512, Model: "owner/name",
		Extra: []KV{{"Guidance rescale", "0.7"}, {"T-GATE", "v2"}, {"Gate step", "10"}},
	}
	want := "a red fox\nNegative prompt: blurry\n" +
		"Steps: 25, Sampler: DDIM, CFG scale: 7.5, Seed: 1, Size: 512x512, Model: owner/name, " +
		"Guidance rescale: 0.7, T-GATE: v2, Gate step: 10"
	if got := Format(p); got != want {
		t.Errorf("Format:\n%s\nwant\n%s", got, want)
	}
	// No negative prompt: no such line; whole numbers print without ".0".
	p = Params{Prompt: "x", Steps: 4, Sampler: "euler-a", Guidance: 7, Seed: 18446744073709551615, Width: 768, Height: 512}
	want = "x\nSteps: 4, Sampler: Euler a, CFG scale: 7, Seed: 18446744073709551615, Size: 768x512"
	if got := Format(p); got != want {
		t.Errorf("Format:\n%s\nwant\n%s", got, want)
	}
}

// TestQuoting checks values with commas, colons, quotes and line breaks:
// written as JSON strings (non-ASCII kept), read back unchanged.
func TestQuoting(t *testing.T) {
	for _, c := range []struct{ value, written string }{
		{"plain", "plain"},
		{"a, b", `"a, b"`},
		{"C:/models/sd", `"C:/models/sd"`},
		{`say "hi"`, `"say \"hi\""`},
		{"two\nlines", `"two\nlines"`},
		{" padded", `" padded"`},
		{"é, ü", `"é, ü"`},
		{`back\slash`, `back\slash`},
		{"<b>&", "<b>&"},
	} {
		if got := quote(c.value); got != c.written {
			t.Errorf("quote(%q) = %s, want %s", c.value, got, c.written)
		}
		p := Params{Prompt: "p", Steps: 1, Model: c.value, Extra: []KV{{"Note", c.value}}}
		q, err := Parse(Format(p))
		if err != nil {
			t.Errorf("%q: %v", c.value, err)
			continue
		}
		if q.Model != c.value {
			t.Errorf("Model %q read back as %q", c.value, q.Model)
		}
		if v, _ := q.Get("Note"); v != c.value {
			t.Errorf("extra %q read back as %q", c.value, v)
		}
	}
}

// TestRoundTrip formats and parses settings with multi-line prompts,
// commas and colons in the prompt, and Unicode.
func TestRoundTrip(t *testing.T) {
	for _, p := range []Params{
		{Prompt: "a cat", Steps: 25, Sampler: "ddim", Guidance: 7.5, Seed: 1, Width: 512, Height: 512, Model: "tiny-sd"},
		{Prompt: "line one\nline two, with comma\n\nline four: colon", NegativePrompt: "ugly,\nbad: hands",
			Steps: 10, Sampler: "dpm++2m", Guidance: 0.1 + 0.2, Seed: 42, Width: 64, Height: 32},
		{Prompt: "Steps: 1, Seed: 2, Size: 3x4", Steps: 3, Guidance: 1, Seed: 5},
		{Prompt: "夕焼けの富士山, 油絵", NegativePrompt: "ぼやけた", Steps: 4, Sampler: "lcm", Guidance: 8.5,
			Seed: 7, Width: 512, Height: 512, Model: "モデル", Extra: []KV{{"Decoder", "taesd"}}},
		{NegativePrompt: "only negative", Steps: 2, Sampler: "pndm", Guidance: 7.5},
		{Steps: 0},
	} {
		text := Format(p)
		q, err := Parse(text)
		if err != nil {
			t.Errorf("%q: %v", text, err)
			continue
		}
		if !reflect.DeepEqual(q, p) {
			t.Errorf("round trip of\n%s\ngave %+v\nwant %+v", text, q, p)
		}
	}
}

// TestRoundTripRandom round-trips seeded random settings whose prompts
// and values mix letters, commas, colons, quotes, backslashes, line
// breaks and non-ASCII characters.
func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("ab ,:\"\\\n{}()[]éß日")
	word := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		// Lines are trimmed and a line opening "Negative prompt:" starts
		// the negative prompt, as in the web UI; avoid both here.
		lines := strings.Split(b.String(), "\n")
		for i, l := range lines {
			lines[i] = "w" + strings.TrimSpace(l) + "w"
		}
		return strings.Join(lines, "\n")
	}
	samplerNames := []string{"", "ddim", "pndm", "euler", "euler-a", "dpm++2m", "lcm"}
	for i := 0; i < 500; i++ {
		p := Params{
			Prompt: word(r.IntN(40)), Steps: r.IntN(200), Sampler: samplerNames[r.IntN(len(samplerNames))],
			Guidance: r.Float64() * 20, Seed: r.Uint64(), Width: 8 * r.IntN(200), Height: 8 * (1 + r.IntN(200)),
			Model: word(r.IntN(10)),
		}
		if p.Width == 0 {
			p.Height = 0
		}
		if r.IntN(2) == 0 {
			p.NegativePrompt = word(r.IntN(20))
		}
		for j := r.IntN(4); j > 0; j-- {
			p.Extra = append(p.Extra, KV{Key: []string{"Guidance rescale", "Gate step", "Note/x-1"}[r.IntN(3)], Value: word(r.IntN(12))})
		}
		text := Format(p)
		q, err := Parse(text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if !reflect.DeepEqual(q, p) {
			t.Fatalf("round trip of\n%s\ngave %+v\nwant %+v", text, q, p)
		}
	}
}

// TestParseWebUI parses text exactly as the web UI writes it.
func TestParseWebUI(t *testing.T) {
	text := "a cat\nNegative prompt: ugly\nSteps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, " +
		"Seed: 1234, Size: 512x768, Model hash: abc, Model: v1-5"
	got, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	want := Params{
		Prompt: "a cat", NegativePrompt: "ugly", Steps: 20, Sampler: "euler-a", Guidance: 7, Seed: 1234,
		Width: 512, Height: 768, Model: "v1-5",
		Extra: []KV{{"Schedule type", "Karras"}, {"Model hash", "abc"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	// A prompt over several lines, a negative prompt over two, a quoted
	// value holding commas and colons, a flag written without a value,
	// and a sampler we have no scheduler for.
	text = "masterpiece,\n  a castle: on a hill  \nNegative prompt: lowres,\nbad anatomy\n" +
		`Steps: 30, Sampler: DPM++ SDE, CFG scale: 6.5, Seed: 3, Size: 640x448, Lora hashes: "detail: 1a2b, style: 3c4d", ` +
		`Denoising strength: 0.4, Hires upscale: 2, Version: v1.9.4`
	got, err = Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	want = Params{
		Prompt: "masterpiece,\na castle: on a hill", NegativePrompt: "lowres,\nbad anatomy", Steps: 30,
		Guidance: 6.5, Seed: 3, Width: 640, Height: 448,
		Extra: []KV{{"Sampler", "DPM++ SDE"}, {"Lora hashes", "detail: 1a2b, style: 3c4d"},
			{"Denoising strength", "0.4"}, {"Hires upscale", "2"}, {"Version", "v1.9.4"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// TestParseWithoutSettingsLine checks that a last line with fewer than
// three pairs belongs to the prompt, as in the web UI.
func TestParseWithoutSettingsLine(t *testing.T) {
	for text, want := range map[string]Params{
		"just a prompt":                      {Prompt: "just a prompt"},
		"a dog\nStyle: oil, Light: soft":     {Prompt: "a dog\nStyle: oil, Light: soft"},
		"a dog\nNegative prompt: cat":        {Prompt: "a dog", NegativePrompt: "cat"},
		"\n\n  a dog  \n\n":                  {Prompt: "a dog"},
		"Steps: 5, CFG scale: 2, Seed: 9":    {Steps: 5, Guidance: 2, Seed: 9},
		"x\nSteps: 5,CFG scale: 2,Seed: 9  ": {Prompt: "x", Steps: 5, Guidance: 2, Seed: 9},
	} {
		got, err := Parse(text)
		if err != nil {
			t.Errorf("%q: %v", text, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %+v, want %+v", text, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"p\nSteps: many, CFG scale: 7, Seed: 1", `Steps value "many"`},
		{"p\nSteps: 2, CFG scale: high, Seed: 1", `CFG scale value "high"`},
		{"p\nSteps: 2, CFG scale: 7, Seed: -1", `Seed value "-1"`},
		{"p\nSteps: 2, CFG scale: 7, Seed: 1, Size: 512", `Size value "512"`},
		{"p\nSteps: 2, CFG scale: 7, Seed: 1, Size: 512x", `Size value "512x"`},
	} {
		_, err := Parse(c.text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one containing %s", c.text, err, c.want)
		}
	}
}

// TestSamplerNames checks the label table both ways against the web UI's
// spellings.
func TestSamplerNames(t *testing.T) {
	labels := map[string]string{"ddim": "DDIM", "pndm": "PNDM", "euler": "Euler", "euler-a": "Euler a", "dpm++2m": "DPM++ 2M", "lcm": "LCM"}
	for name, label := range labels {
		if got := SamplerLabel(name); got != label {
			t.Errorf("SamplerLabel(%q) = %q, want %q", name, got, label)
		}
		for _, in := range []string{label, strings.ToLower(label), name} {
			if got, ok := SamplerName(in); !ok || got != name {
				t.Errorf("SamplerName(%q) = %q, %v; want %q", in, got, ok, name)
			}
		}
	}
	if got, ok := SamplerName("Heun"); ok || got != "" {
		t.Errorf("SamplerName(Heun) = %q, %v; want no scheduler", got, ok)
	}
}
