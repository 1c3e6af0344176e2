// Package lora reads LoRA files as people download them — the kohya /
// A1111 format (lora_unet_…, lora_te_…, .lora_down / .lora_up / .alpha)
// and the diffusers / PEFT formats (unet.…, text_encoder.…, .lora_A /
// .lora_B, .lora.down / .lora.up) — maps their modules onto the diffusers
// weight names the models bind, and fuses them into those weights at load:
// W' = W + Σ scale·(alpha/rank)·up @ down, as diffusers' fuse_lora does
// (diffusers v0.30.3 loaders/lora_pipeline.py, load_lora_weights and
// fuse_lora; the kohya name conversion is
// loaders/lora_conversion_utils.py, _convert_non_diffusers_lora_to_diffusers).
package lora

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// Format is the key layout a LoRA file was written in.
type Format int

const (
	// Kohya is the kohya sd-scripts / A1111 layout:
	// lora_unet_<path with _>.lora_down.weight, .lora_up.weight, .alpha.
	Kohya Format = iota + 1
	// PEFT is the layout diffusers writes with the PEFT backend:
	// unet.<path>.lora_A.weight / .lora_B.weight (optionally under
	// base_model.model.).
	PEFT
	// Diffusers is diffusers' layout before PEFT:
	// unet.<path>.lora.down.weight / .lora.up.weight, the text encoder's
	// .lora_linear_layer.down.weight, and the attention-processor form
	// <attn>.processor.to_q_lora.down.weight.
	Diffusers
)

func (f Format) String() string {
	switch f {
	case Kohya:
		return "kohya/A1111"
	case PEFT:
		return "diffusers/PEFT"
	case Diffusers:
		return "diffusers (pre-PEFT)"
	}
	return "unknown"
}

// Component names a module's model, as the diffusers folder names it.
const (
	UNet         = "unet"
	TextEncoder  = "text_encoder"
	TextEncoder2 = "text_encoder_2"
)

// Module is one low-rank update: the weight of the module Path in
// Component changes by (Alpha/Rank)·Up @ Down.
type Module struct {
	// Component is the model the module belongs to (UNet, TextEncoder,
	// TextEncoder2).
	Component string
	// Key is the module's name in the file, without the tensor suffix
	// (lora_unet_down_blocks_0_…_to_q, unet.down_blocks.0.….to_q).
	Key string
	// Path is the module path inside the component: dotted for the
	// diffusers formats; for Kohya it has every '.' replaced by '_' and is
	// resolved against the model's key list.
	Path string
	// Underscored is true when Path is in kohya's '_' form.
	Underscored bool
	// Down is lora_down / lora_A: [rank, in] or [rank, in, kh, kw].
	Down *tensor.Host
	// Up is lora_up / lora_B: [out, rank] or [out, rank, 1, 1].
	Up *tensor.Host
	// Alpha is the stored alpha; without one it equals Rank (scaling 1),
	// as diffusers assumes.
	Alpha float64
	// HasAlpha reports whether the file stored an alpha.
	HasAlpha bool
}

// Rank is the LoRA rank r (Down's first dimension).
func (m *Module) Rank() int { return m.Down.Shape[0] }

// Scaling is alpha / rank, the factor peft's LoraLayer applies.
func (m *Module) Scaling() float64 { return m.Alpha / float64(m.Rank()) }

// File is a parsed LoRA file.
type File struct {
	// Name names the file in messages.
	Name string
	// Format is the key layout detected.
	Format Format
	// Metadata is the safetensors header metadata (ss_network_dim, …).
	Metadata map[string]string
	// Modules are the updates, sorted by Key.
	Modules []*Module
}

// Open reads the LoRA file name of folder f (a local folder, a Hub
// repository, the browser's cached files).
func Open(f hub.Folder, name string) (*File, error) {
	c, err := hub.OpenFileIn(f, name)
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	defer c.Close()
	return fromCheckpoint(strings.TrimSuffix(f.String(), "/")+"/"+name, c.Checkpoint())
}

// OpenPath reads the LoRA file at path on the local disk.
func OpenPath(path string) (*File, error) {
	return Open(hub.Dir(filepath.Dir(path)), filepath.Base(path))
}

// ParseBytes reads a LoRA file held in memory; name is for messages.
func ParseBytes(name string, data []byte) (*File, error) {
	sf, err := safetensors.ParseBytes(data)
	if err != nil {
		return nil, fmt.Errorf("lora: %s: %w", name, err)
	}
	return fromCheckpoint(name, safetensors.Single(sf))
}

func fromCheckpoint(name string, ck *safetensors.Checkpoint) (*File, error) {
	var md map[string]string
	if fs := ck.Files(); len(fs) == 1 {
		md = fs[0].Metadata()
	}
	return parse(name, md, ck.Names(), ck.ReadFloat32)
}

// tensorRole is what one tensor of a module is.
type tensorRole int

const (
	roleDown tensorRole = iota
	roleUp
	roleAlpha
)

// parsedKey is one tensor name taken apart.
type parsedKey struct {
	format      Format
	component   string
	path        string
	underscored bool
	role        tensorRole
}

// parse groups the tensors of a LoRA file into modules and checks each
// module's shapes.
func parse(name string, md map[string]string, names []string, read func(string) (*tensor.Host, error)) (*File, error) {
	f := &File{Name: name, Metadata: md}
	byKey := map[string]*Module{}
	var unknown, unsupported []string
	formats := map[Format]bool{}
	sort.Strings(names)
	for _, n := range names {
		pk, ok, why := parseKey(n)
		if why != "" {
			unsupported = append(unsupported, fmt.Sprintf("%s (%s)", n, why))
			continue
		}
		if !ok {
			unknown = append(unknown, n)
			continue
		}
		if pk.format != 0 { // an alpha alone does not tell the diffusers formats apart
			formats[pk.format] = true
		}
		key := moduleKey(n)
		m := byKey[key]
		if m == nil {
			m = &Module{Component: pk.component, Key: key, Path: pk.path, Underscored: pk.underscored}
			byKey[key] = m
			f.Modules = append(f.Modules, m)
		}
		h, err := read(n)
		if err != nil {
			return nil, fmt.Errorf("lora: %s: %w", name, err)
		}
		switch pk.role {
		case roleDown:
			m.Down = h
		case roleUp:
			m.Up = h
		case roleAlpha:
			if len(h.Data) != 1 {
				return nil, fmt.Errorf("lora: %s: %q holds %d values with shape %v; an alpha is one number", name, n, len(h.Data), h.Shape)
			}
			m.Alpha, m.HasAlpha = float64(h.Data[0]), true
		}
	}
	if len(unsupported) > 0 {
		return nil, fmt.Errorf("lora: %s: %d tensors of a kind this loader does not support: %s", name, len(unsupported), listSome(unsupported))
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("lora: %s: %d tensors are not LoRA weights of a known format (kohya lora_unet_/lora_te_ with .lora_down/.lora_up/.alpha, or unet./text_encoder. with .lora_A/.lora_B or .lora.down/.lora.up): %s", name, len(unknown), listSome(unknown))
	}
	if len(f.Modules) == 0 {
		return nil, fmt.Errorf("lora: %s holds no LoRA weights", name)
	}
	if len(formats) > 1 {
		var fs []string
		for fm := range formats {
			fs = append(fs, fm.String())
		}
		sort.Strings(fs)
		return nil, fmt.Errorf("lora: %s mixes key formats (%s); a file is expected to use one", name, strings.Join(fs, ", "))
	}
	for fm := range formats {
		f.Format = fm
	}
	for _, m := range f.Modules {
		if err := m.check(); err != nil {
			return nil, fmt.Errorf("lora: %s (%s format): %w", name, f.Format, err)
		}
	}
	return f, nil
}

// check verifies that the module has both matrices and that their shapes
// agree, and fills a missing alpha with the rank.
func (m *Module) check() error {
	switch {
	case m.Down == nil && m.Up == nil:
		return fmt.Errorf("module %q has an alpha but neither its down nor its up weight", m.Key)
	case m.Down == nil:
		return fmt.Errorf("module %q has an up weight %v but no down weight", m.Key, m.Up.Shape)
	case m.Up == nil:
		return fmt.Errorf("module %q has a down weight %v but no up weight", m.Key, m.Down.Shape)
	}
	d, u := m.Down.Shape, m.Up.Shape
	if (len(d) != 2 && len(d) != 4) || d[0] == 0 {
		return fmt.Errorf("module %q: down weight has shape %v; want [rank, in] or [rank, in, kh, kw]", m.Key, d)
	}
	if len(u) != 2 && !(len(u) == 4 && u[2] == 1 && u[3] == 1) {
		return fmt.Errorf("module %q: up weight has shape %v; want [out, rank] or [out, rank, 1, 1]", m.Key, u)
	}
	if u[1] != d[0] {
		return fmt.Errorf("module %q: rank mismatch: down weight %v has rank %d but up weight %v has %d", m.Key, d, d[0], u, u[1])
	}
	if !m.HasAlpha {
		m.Alpha = float64(d[0])
	}
	return nil
}

// moduleKey strips the tensor suffix from a key.
func moduleKey(n string) string {
	for _, s := range suffixes {
		if strings.HasSuffix(n, s.suffix) {
			return strings.TrimSuffix(n, s.suffix)
		}
	}
	return n
}

// suffixes are the tensor suffixes of every supported format, longest
// first within a format.
var suffixes = []struct {
	suffix string
	format Format
	role   tensorRole
}{
	{".lora_down.weight", Kohya, roleDown},
	{".lora_up.weight", Kohya, roleUp},
	{".lora_A.weight", PEFT, roleDown},
	{".lora_B.weight", PEFT, roleUp},
	{".lora_linear_layer.down.weight", Diffusers, roleDown},
	{".lora_linear_layer.up.weight", Diffusers, roleUp},
	{".lora.down.weight", Diffusers, roleDown},
	{".lora.up.weight", Diffusers, roleUp},
	{"_lora.down.weight", Diffusers, roleDown},
	{"_lora.up.weight", Diffusers, roleUp},
	{".alpha", 0, roleAlpha},
}

// unsupportedMarks are parts of tensor names of LoRA variants that are not
// a plain low-rank pair (LyCORIS LoHa/LoKr, DoRA, full diffs, Tucker mids).
var unsupportedMarks = map[string]string{
	".hada_":                "LyCORIS LoHa",
	".lokr_":                "LyCORIS LoKr",
	".dora_scale":           "DoRA magnitude",
	".lora_mid.":            "LoCon Tucker decomposition",
	".diff":                 "full weight difference",
	".diff_b":               "full bias difference",
	".bias":                 "LoRA bias",
	"lora_magnitude_vector": "DoRA magnitude",
}

// kohyaPrefixes map kohya's name prefixes to components.
var kohyaPrefixes = []struct{ prefix, component string }{
	{"lora_unet_", UNet},
	{"lora_te1_", TextEncoder},
	{"lora_te2_", TextEncoder2},
	{"lora_te_", TextEncoder},
}

// diffusersPrefixes map diffusers' component prefixes to components.
var diffusersPrefixes = []struct{ prefix, component string }{
	{"unet.", UNet},
	{"text_encoder.", TextEncoder},
	{"text_encoder_2.", TextEncoder2},
}

// parseKey takes a tensor name apart. ok is false for a name of no known
// format; why is set for a name of a known but unsupported LoRA variant.
func parseKey(n string) (pk parsedKey, ok bool, why string) {
	if strings.HasPrefix(n, "lora_") || strings.Contains(n, ".lora") {
		for mark, what := range unsupportedMarks {
			if strings.Contains(n, mark) {
				return pk, false, what
			}
		}
	}
	stem, role, format, found := "", tensorRole(0), Format(0), false
	for _, s := range suffixes {
		if strings.HasSuffix(n, s.suffix) {
			stem, role, format, found = strings.TrimSuffix(n, s.suffix), s.role, s.format, true
			break
		}
	}
	if !found {
		return pk, false, ""
	}
	for _, p := range kohyaPrefixes {
		if strings.HasPrefix(stem, p.prefix) && !strings.Contains(stem, ".") {
			if format != 0 && format != Kohya {
				return pk, false, ""
			}
			return parsedKey{format: Kohya, component: p.component, path: strings.TrimPrefix(stem, p.prefix), underscored: true, role: role}, true, ""
		}
	}
	if format == Kohya {
		return pk, false, ""
	}
	stem = strings.TrimPrefix(stem, "base_model.model.")
	component := ""
	for _, p := range diffusersPrefixes {
		if strings.HasPrefix(stem, p.prefix) {
			component, stem = p.component, strings.TrimPrefix(stem, p.prefix)
			break
		}
	}
	if strings.HasSuffix(n, "_lora.down.weight") || strings.HasSuffix(n, "_lora.up.weight") {
		// The attention-processor form: <attn>.processor.to_q_lora.
		attn, proj, ok := strings.Cut(stem, ".processor.")
		if !ok {
			return pk, false, ""
		}
		if proj == "to_out" {
			proj = "to_out.0"
		}
		stem = attn + "." + proj
	}
	if component == "" {
		// A PEFT file of one model saved without its component prefix:
		// CLIP's modules live under text_model.
		component = UNet
		if strings.HasPrefix(stem, "text_model.") {
			component = TextEncoder
		}
	}
	return parsedKey{format: format, component: component, path: stem, role: role}, true, ""
}

// listSome joins up to 8 names, saying how many more there are.
func listSome(names []string) string {
	const most = 8
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
}
