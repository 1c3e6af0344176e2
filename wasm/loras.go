//go:build js && wasm

package main

import (
	"fmt"
	"path"
	"slices"

	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/wasm/jsapi"
)

// appliedLoRA is one LoRA of the loaded model's set, as generate named it.
type appliedLoRA struct {
	url   string
	scale float64
}

// applyLoRAs makes the loaded model's LoRA set the one generate asks for:
// each file is fetched into the store (or read from a picked file's blob:
// URL) and the text encoder(s) and UNet are bound again with the set fused
// in. An unchanged set costs nothing; an empty one goes back to the base
// weights. On an error the model keeps its earlier weights.
func (e *engine) applyLoRAs(want []jsapi.LoRA, emit func(map[string]any)) error {
	var set []appliedLoRA
	for i, l := range want {
		if l.URL == "" {
			return fmt.Errorf("loras[%d]: url is missing", i)
		}
		a := appliedLoRA{url: l.URL, scale: 1}
		if l.Scale != nil {
			a.scale = *l.Scale
		}
		set = append(set, a)
	}
	if !e.lorasStale && slices.Equal(set, e.loras) {
		return nil
	}
	specs := make([]pipeline.LoRA, len(set))
	for i, a := range set {
		emit(map[string]any{"type": "status", "message": "loading LoRA " + path.Base(a.url)})
		f, name, err := e.openFile(a.url, e.hub, path.Base(a.url))
		if err != nil {
			return fmt.Errorf("loras[%d] %s: %w", i, a.url, err)
		}
		specs[i] = pipeline.LoRA{Folder: f, Name: name, Scale: a.scale}
	}
	if err := e.p.SetLoRAs(specs); err != nil {
		// The weights may be bound with neither set: the next call
		// applies its set whatever it is.
		e.lorasStale = true
		return err
	}
	e.loras, e.lorasStale = set, false
	return nil
}
