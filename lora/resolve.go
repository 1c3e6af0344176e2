package lora

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tgate-web/tgate/tensor"
)

// Layer is one LoRA file applied with a scale: diffusers'
// cross_attention_kwargs={"scale": Scale} (or set_adapters' adapter
// weight), which multiplies every module's alpha/rank in both the text
// encoder and the UNet.
type Layer struct {
	File  *File
	Scale float64
	// IgnoreUnmatched skips the file's modules that match no weight of the
	// model instead of failing.
	IgnoreUnmatched bool
}

// Term is one module's contribution to a weight: Coef·Up @ Down with
// Coef = scale·alpha/rank.
type Term struct {
	Module *Module
	Coef   float64
}

// Plan is what a stack of LoRA layers does to one component: for every
// weight key it changes, the terms to add.
type Plan struct {
	Component string
	// Terms maps a weight key (down_blocks.0.….to_q.weight) to the terms
	// fused into it, in layer order.
	Terms map[string][]Term
}

// Keys returns the changed weight keys, sorted.
func (p *Plan) Keys() []string {
	ks := make([]string, 0, len(p.Terms))
	for k := range p.Terms {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Lookuper gives a stored tensor's shape by key (nn.Source's Lookup).
type Lookuper interface {
	Lookup(name string) (dt tensor.DType, shape tensor.Shape, ok bool)
}

// Resolve maps the modules of layers that belong to component onto the
// model's weight keys (keys: every tensor name of the component's
// checkpoint; look: their shapes) and checks each update's shape against
// the weight it changes.
//
// diffusers/PEFT module paths are the model's own module paths. kohya
// paths replaced every '.' by '_', which cannot be undone by string
// replacement (to_out_0 is to_out.0, but down_blocks_0 is down_blocks.0
// and transformer_blocks is one word); so the candidates are built from
// the model's keys: each key "<path>.weight" is indexed under <path> with
// '.' replaced by '_', and a kohya module resolves when exactly one key
// has its name. A UNet's keys are indexed under their original (sgm)
// names as well: input_blocks_4_1_… is down_blocks.1.attentions.0.….
//
// A module that matches no weight is an error naming it, unless its layer
// has IgnoreUnmatched.
func Resolve(component string, keys []string, look Lookuper, layers []Layer) (*Plan, error) {
	plan := &Plan{Component: component, Terms: map[string][]Term{}}
	var flat map[string][]string // kohya name → weight keys
	for _, l := range layers {
		var unmatched []string
		for _, m := range l.File.Modules {
			if m.Component != component {
				continue
			}
			var key string
			if m.Underscored {
				if flat == nil {
					flat = underscoredIndex(keys, component == UNet)
				}
				switch c := flat[m.Path]; len(c) {
				case 0:
				case 1:
					key = c[0]
				default:
					return nil, fmt.Errorf("lora: %s: module %q could be any of %s", l.File.Name, m.Key, strings.Join(c, ", "))
				}
			} else if _, _, ok := look.Lookup(m.Path + ".weight"); ok {
				key = m.Path + ".weight"
			}
			if key == "" {
				unmatched = append(unmatched, m.Key)
				continue
			}
			_, shape, _ := look.Lookup(key)
			if err := fits(m, shape); err != nil {
				return nil, fmt.Errorf("lora: %s: module %q (%s weight %q): %w", l.File.Name, m.Key, component, key, err)
			}
			plan.Terms[key] = append(plan.Terms[key], Term{Module: m, Coef: l.Scale * m.Scaling()})
		}
		if len(unmatched) > 0 && !l.IgnoreUnmatched {
			return nil, fmt.Errorf("lora: %s (%s format): %d modules match no weight of the %s: %s (is the LoRA made for another base model? ignore them with the ignore-unmatched option)",
				l.File.Name, l.File.Format, len(unmatched), component, listSome(unmatched))
		}
	}
	return plan, nil
}

// Foreign returns the keys of modules of layers that belong to none of
// components (a text_encoder_2 module for an SD 1.x pipeline), skipping
// layers with IgnoreUnmatched.
func Foreign(layers []Layer, components ...string) error {
	for _, l := range layers {
		if l.IgnoreUnmatched {
			continue
		}
		var out []string
		for _, m := range l.File.Modules {
			found := false
			for _, c := range components {
				found = found || m.Component == c
			}
			if !found {
				out = append(out, m.Key)
			}
		}
		if len(out) > 0 {
			return fmt.Errorf("lora: %s: %d modules target a model this pipeline does not have (it has %s): %s",
				l.File.Name, len(out), strings.Join(components, ", "), listSome(out))
		}
	}
	return nil
}

// underscoredIndex indexes every "<path>.weight" key under <path> with '.'
// replaced by '_'; for a UNet also under its original (sgm) name, the
// names of kohya's SD-XL LoRAs (sgm.go).
func underscoredIndex(keys []string, unet bool) map[string][]string {
	idx := map[string][]string{}
	layout, sgm := sgmLayout{}, false
	if unet {
		layout, sgm = sgmLayoutOf(keys)
	}
	for _, k := range keys {
		path, ok := strings.CutSuffix(k, ".weight")
		if !ok {
			continue
		}
		u := strings.ReplaceAll(path, ".", "_")
		idx[u] = append(idx[u], k)
		if !sgm {
			continue
		}
		if o := layout.sgmPath(path); o != "" {
			if ou := strings.ReplaceAll(o, ".", "_"); ou != u {
				idx[ou] = append(idx[ou], k)
			}
		}
	}
	return idx
}

// fits checks that Up @ Down has the weight's shape: out = Up's rows and
// in·kh·kw = Down's columns, for a linear [out, in], a convolution
// [out, in, kh, kw] (kohya's LoCon: a kh×kw down with a 1×1 up) or a 1×1
// convolution bound as a linear.
func fits(m *Module, w tensor.Shape) error {
	if len(w) != 2 && len(w) != 4 {
		return fmt.Errorf("the weight has shape %v; a LoRA changes linear [out, in] and convolution [out, in, kh, kw] weights", w)
	}
	out, inner := m.Up.Shape[0], m.Down.Shape.Numel()/m.Rank()
	if w[0] != out || w.Numel() != out*inner {
		return fmt.Errorf("the update up %v @ down %v does not fit the weight's shape %v", m.Up.Shape, m.Down.Shape, w)
	}
	if len(m.Down.Shape) == 4 && len(w) == 4 && !m.Down.Shape[1:].Equal(w[1:]) {
		return fmt.Errorf("the down weight %v does not match the convolution kernel %v", m.Down.Shape, w)
	}
	return nil
}
