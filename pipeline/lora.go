package pipeline

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/lora"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/nn"
)

// LoRA names a LoRA file to fuse into the text encoder(s) and the UNet,
// in the kohya/A1111 or diffusers/PEFT key format (package lora), as
// diffusers' load_lora_weights followed by fuse_lora(lora_scale=Scale).
type LoRA struct {
	// Folder holds the file (a local folder, a Hub repository, the
	// browser's cached files); nil means Name is a path on the local disk.
	Folder hub.Folder
	// Name is the file's name inside Folder, or its path when Folder is
	// nil.
	Name string
	// Scale multiplies every module's alpha/rank, in the text encoders and
	// the UNet alike (diffusers' cross_attention_kwargs={"scale": Scale});
	// 1 applies the LoRA as trained and 0 leaves the model unchanged.
	Scale float64
	// IgnoreUnmatched skips the file's modules that match no weight of the
	// model (for example a LoRA that also targets layers this model lacks)
	// instead of failing with their names.
	IgnoreUnmatched bool
}

// String is "NAME:SCALE", the form of the CLI's --lora flag.
func (l LoRA) String() string {
	if l.Folder != nil {
		return fmt.Sprintf("%s/%s:%g", l.Folder, l.Name, l.Scale)
	}
	return fmt.Sprintf("%s:%g", l.Name, l.Scale)
}

// ParseLoRA reads the CLI's --lora value FILE[:SCALE]: a local path and an
// optional scale (default 1). A colon followed by something that is not a
// number is part of the path.
func ParseLoRA(spec string) (LoRA, error) {
	l := LoRA{Name: spec, Scale: 1}
	if i := strings.LastIndexByte(spec, ':'); i >= 0 {
		if v, err := strconv.ParseFloat(spec[i+1:], 64); err == nil {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return LoRA{}, fmt.Errorf("--lora %q: the scale must be a finite number", spec)
			}
			l.Name, l.Scale = spec[:i], v
		}
	}
	if l.Name == "" {
		return LoRA{}, fmt.Errorf("--lora %q: no file named (want FILE or FILE:SCALE)", spec)
	}
	return l, nil
}

// loraState is the pipeline's applied LoRA stack.
type loraState struct {
	specs  []LoRA
	layers []lora.Layer
}

// openLoRAs reads every file of specs and checks that each module targets
// one of components.
func openLoRAs(specs []LoRA, components ...string) (loraState, error) {
	st := loraState{specs: append([]LoRA(nil), specs...)}
	for _, s := range specs {
		if math.IsNaN(s.Scale) || math.IsInf(s.Scale, 0) {
			return loraState{}, fmt.Errorf("lora %s: the scale must be a finite number", s)
		}
		var f *lora.File
		var err error
		if s.Folder != nil {
			f, err = lora.Open(s.Folder, s.Name)
		} else {
			f, err = lora.OpenPath(s.Name)
		}
		if err != nil {
			return loraState{}, err
		}
		st.layers = append(st.layers, lora.Layer{File: f, Scale: s.Scale, IgnoreUnmatched: s.IgnoreUnmatched})
	}
	if err := lora.Foreign(st.layers, components...); err != nil {
		return loraState{}, err
	}
	return st, nil
}

// loraComponents are the components of p's kind that a LoRA can change.
func (p *Pipeline) loraComponents() []string {
	if p.Kind == StableDiffusionXL {
		return []string{lora.UNet, lora.TextEncoder, lora.TextEncoder2}
	}
	return []string{lora.UNet, lora.TextEncoder}
}

// loraBase is a component's weights and config (hub.Component).
type loraBase interface {
	lora.Base
	DecodeConfig(v any) error
}

// withLoRAs returns the weights of component c ("unet", "text_encoder",
// "text_encoder_2") with the pipeline's LoRAs fused in, or c itself when
// no LoRA is applied. Model loaders take the result in place of c.
func (p *Pipeline) withLoRAs(component string, c loraBase) (unet.Component, error) {
	if len(p.lora.layers) == 0 {
		return c, nil
	}
	s, err := lora.NewSource(c, component, p.lora.layers)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// LoRAs returns the LoRA files applied, in order.
func (p *Pipeline) LoRAs() []LoRA { return append([]LoRA(nil), p.lora.specs...) }

// SetLoRAs replaces the applied LoRAs with loras (none: the base weights)
// and binds the text encoder(s) and the UNet again. Every file is read
// and matched against the models before anything is released, so a bad
// file leaves the pipeline with its earlier weights. When binding itself
// fails (out of memory), the new set stays recorded and the models that
// could not be bound are bound again, with it, by the next Generate.
func (p *Pipeline) SetLoRAs(loras []LoRA) error {
	if p.unetComp == nil {
		return fmt.Errorf("%s: LoRA files apply to the UNet pipelines (SD 1.x/2.x, SD-XL, LCM), not to %s", p.Dir, p.Kind)
	}
	st, err := openLoRAs(loras, p.loraComponents()...)
	if err != nil {
		return err
	}
	bases := map[string]loraBase{}
	if p.unetComp != nil {
		bases[lora.UNet] = p.unetComp
	}
	if p.teComp != nil {
		bases[lora.TextEncoder] = p.teComp
	}
	if p.te2Comp != nil {
		bases[lora.TextEncoder2] = p.te2Comp
	}
	for name, c := range bases {
		if len(st.layers) > 0 {
			if _, err := lora.NewSource(c, name, st.layers); err != nil {
				return err
			}
		}
	}
	p.lora = st
	if p.TextEncoder != nil {
		p.TextEncoder.Release(p.b)
		p.TextEncoder = nil
		if err := p.loadTextEncoder(); err != nil {
			return err
		}
	}
	if p.TextEncoder2 != nil {
		p.TextEncoder2.Release(p.b)
		p.TextEncoder2 = nil
		if err := p.loadTextEncoder2(); err != nil {
			return err
		}
	}
	return p.reloadUNet()
}

// loadUNetWeights binds the UNet from its component folder with the
// pipeline's LoRAs fused in, as 8-bit weights when the pipeline was loaded
// with UNet8Bit (quantised after the fusion).
func (p *Pipeline) loadUNetWeights() (*unet.Model, error) {
	src, err := p.withLoRAs(lora.UNet, p.unetComp)
	if err != nil {
		return nil, err
	}
	if p.unet8 {
		if _, ok := p.b.(backend.Quantizer); !ok {
			return nil, fmt.Errorf("8-bit UNet weights: the %s backend cannot hold them", p.b.Name())
		}
		return unet.Load(p.b, quantizedComponent{nn.Quantized8(src, nn.LinearOrConvWeight), src})
	}
	return unet.Load(p.b, src)
}

// quantizedComponent is a UNet component whose Linear and convolution
// weights are bound as 8-bit (nn.Quantized8); its config is the
// component's own.
type quantizedComponent struct {
	nn.Source
	cfg unet.Component
}

func (q quantizedComponent) DecodeConfig(v any) error { return q.cfg.DecodeConfig(v) }
