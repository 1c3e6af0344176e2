// Package pnginfo stores generation settings in a PNG the way
// AUTOMATIC1111's Stable Diffusion web UI does: a text chunk with the
// keyword "parameters" whose text is the prompt, an optional
// "Negative prompt: ..." line and one line of "Key: value" pairs, e.g.
//
//	a red fox
//	Negative prompt: blurry
//	Steps: 25, Sampler: DDIM, CFG scale: 7.5, Seed: 1, Size: 512x512, Model: tiny-sd, T-GATE: v2, Gate step: 10
//
// Other tools (the web UI's "PNG Info" tab, ComfyUI, image browsers) read
// these settings, and a PNG carrying them restores its settings when it is
// given back to us. Format and Parse convert between Params and that text;
// Encode and Read put the text into a PNG file and get it back out.
package pnginfo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Key is the PNG text keyword under which the settings are stored.
const Key = "parameters"

// KV is one "Key: value" pair of the settings line.
type KV struct {
	Key, Value string
}

// Params are the settings of one generated image.
type Params struct {
	Prompt         string
	NegativePrompt string
	// Steps is the number of denoising steps.
	Steps int
	// Sampler is our scheduler name: ddim, pndm, euler, euler-a, dpm++2m,
	// lcm, or "" when unknown. It is written under the web UI's label
	// (DDIM, PNDM, Euler, Euler a, DPM++ 2M, LCM); Parse turns a label
	// with no scheduler of ours into Sampler "" and keeps it in Extra.
	Sampler string
	// Guidance is the classifier-free guidance scale ("CFG scale").
	Guidance float64
	Seed     uint64
	// Width and Height in pixels ("Size: WIDTHxHEIGHT"; not written when
	// either is 0).
	Width, Height int
	// Model names the checkpoint ("" writes no Model pair).
	Model string
	// Extra holds the further pairs, in order, after the ones above: ours
	// (Guidance rescale, Timestep spacing, T-GATE, Gate step, SP interval,
	// FI interval, Warm up, Decoder) and, from Parse, every key it does not
	// map to a field. A key must start with a letter, digit or underscore
	// and hold only those, spaces, hyphens and slashes, or it will not read
	// back.
	Extra []KV
}

// Get returns the value of the first Extra pair with the given key.
func (p Params) Get(key string) (string, bool) {
	for _, kv := range p.Extra {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// samplers pairs our scheduler names with the web UI's sampler labels.
var samplers = [...]struct{ name, label string }{
	{"ddim", "DDIM"},
	{"pndm", "PNDM"},
	{"euler", "Euler"},
	{"euler-a", "Euler a"},
	{"dpm++2m", "DPM++ 2M"},
	{"lcm", "LCM"},
}

// SamplerLabel returns the web UI's label for one of our scheduler names
// ("euler-a" → "Euler a"); a name that is not ours is returned unchanged.
func SamplerLabel(name string) string {
	for _, s := range samplers {
		if s.name == name {
			return s.label
		}
	}
	return name
}

// SamplerName returns our scheduler name for a web UI sampler label
// ("Euler a" → "euler-a"), matching case-insensitively and also accepting
// our own names; ok is false when no scheduler of ours has that label.
func SamplerName(label string) (name string, ok bool) {
	for _, s := range samplers {
		if strings.EqualFold(label, s.label) || label == s.name {
			return s.name, true
		}
	}
	return "", false
}

// Format returns the settings text of p, exactly as the web UI's
// create_infotext lays it out: the prompt, then "Negative prompt: ..." if
// there is one, then the pairs Steps, Sampler (if set), CFG scale, Seed,
// Size (if both sides are set), Model (if set) and p.Extra, joined by
// ", "; the whole text is trimmed of surrounding white space. Values are
// quoted as described at quote; floats are written in the shortest form
// that reads back exactly (7.5 stays "7.5").
func Format(p Params) string {
	pairs := make([]KV, 0, 6+len(p.Extra))
	pairs = append(pairs, KV{"Steps", strconv.Itoa(p.Steps)})
	if p.Sampler != "" {
		pairs = append(pairs, KV{"Sampler", SamplerLabel(p.Sampler)})
	}
	pairs = append(pairs,
		KV{"CFG scale", FormatFloat(p.Guidance)},
		KV{"Seed", strconv.FormatUint(p.Seed, 10)})
	if p.Width > 0 && p.Height > 0 {
		pairs = append(pairs, KV{"Size", fmt.Sprintf("%dx%d", p.Width, p.Height)})
	}
	if p.Model != "" {
		pairs = append(pairs, KV{"Model", p.Model})
	}
	pairs = append(pairs, p.Extra...)

	var b strings.Builder
	b.WriteString(p.Prompt)
	if p.NegativePrompt != "" {
		b.WriteString("\nNegative prompt: ")
		b.WriteString(p.NegativePrompt)
	}
	b.WriteString("\n")
	for i, kv := range pairs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(kv.Key)
		b.WriteString(": ")
		b.WriteString(quote(kv.Value))
	}
	return strings.TrimSpace(b.String())
}

// FormatFloat writes v in the shortest form that parses back to v
// (strconv 'g', -1): 7.5 → "7.5", 7 → "7", 0.7 → "0.7".
func FormatFloat(v float64) string {
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// quote returns a value as it is written in the settings line. Like the
// web UI's quote(), a value holding a comma, colon or line break is
// written as a JSON string (without escaping non-ASCII characters); so is
// one holding a double quote or starting or ending with white space, which
// would otherwise read back differently.
func quote(v string) string {
	if !strings.ContainsAny(v, ",:\"\n\r") && v == strings.TrimSpace(v) {
		return v
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // a string always encodes
		return v
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// unquote undoes quote as the web UI does: a value that starts and ends
// with a double quote is decoded as a JSON string, and kept as it is when
// that fails.
func unquote(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	var s string
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return v
	}
	return s
}

// reParam is the web UI's re_param (modules/infotext_utils.py): one
// "Key: value" pair, the value either a JSON-style quoted string or text
// up to the next comma. Python's \w and \s are Unicode-aware; the classes
// here are their Unicode equivalents.
var reParam = regexp.MustCompile(`[\s\p{Z}]*([\p{L}\p{N}_][\p{L}\p{N}_ \-/]+):[\s\p{Z}]*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)`)

// reSize is the web UI's re_imagesize.
var reSize = regexp.MustCompile(`^(\d+)x(\d+)$`)

// Parse reads settings text as the web UI's parse_generation_parameters
// does, so it accepts the web UI's own output as well as Format's: the
// text is trimmed; its last line is the settings line when it holds at
// least three "Key: value" pairs (otherwise it belongs to the prompt);
// the lines before it, each trimmed, are the prompt up to a line starting
// "Negative prompt:", and the negative prompt from there on (both may span
// several lines). Steps, Sampler, CFG scale, Seed, Size and Model fill
// their fields (the last occurrence wins); every other pair, and a
// sampler label with no scheduler of ours, is kept in Extra in order. A
// field's value that does not parse (Steps: many) is an error naming it.
func Parse(text string) (Params, error) {
	var p Params
	lines := strings.Split(strings.TrimSpace(text), "\n")
	last := lines[len(lines)-1]
	matches := reParam.FindAllStringSubmatch(last, -1)
	if len(matches) >= 3 {
		lines = lines[:len(lines)-1]
	} else {
		matches = nil
	}

	var prompt, negative []string
	inNegative := false
	for _, line := range lines {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "Negative prompt:"); ok {
			inNegative = true
			line = strings.TrimSpace(rest)
		}
		if inNegative {
			negative = append(negative, line)
		} else {
			prompt = append(prompt, line)
		}
	}
	p.Prompt = strings.Join(prompt, "\n")
	p.NegativePrompt = strings.Join(negative, "\n")

	for _, m := range matches {
		key, value := m[1], unquote(m[2])
		if err := p.set(key, value); err != nil {
			return Params{}, err
		}
	}
	return p, nil
}

// set stores one parsed pair in its field, or appends it to Extra.
func (p *Params) set(key, value string) error {
	v := strings.TrimSpace(value)
	bad := func(want string) error {
		return fmt.Errorf("pnginfo: %s value %q is not %s", key, value, want)
	}
	switch key {
	case "Steps":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return bad("a step count")
		}
		p.Steps = n
	case "Sampler":
		name, ok := SamplerName(v)
		if !ok {
			p.Sampler = ""
			p.Extra = append(p.Extra, KV{key, value})
			return nil
		}
		p.Sampler = name
	case "CFG scale":
		g, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return bad("a number")
		}
		p.Guidance = g
	case "Seed":
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return bad("a seed (an integer from 0 to 2^64-1)")
		}
		p.Seed = s
	case "Size":
		m := reSize.FindStringSubmatch(v)
		if m == nil {
			return bad("WIDTHxHEIGHT")
		}
		w, werr := strconv.Atoi(m[1])
		h, herr := strconv.Atoi(m[2])
		if werr != nil || herr != nil {
			return bad("WIDTHxHEIGHT")
		}
		p.Width, p.Height = w, h
	case "Model":
		p.Model = value
	default:
		p.Extra = append(p.Extra, KV{key, value})
	}
	return nil
}
