//go:build js && wasm

package webgpu

import (
	"context"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/sched"
	"github.com/tgate-web/tgate/tensor"
)

// TestPipelineLoRA runs runs/lora_ddim_scale1 in the browser: the tiny
// SD 1.5 pipeline with the kohya-format LoRA (read over HTTP from
// golden/lora_tiny) fused at load, on WebGPU and on the CPU, and compares
// the final latents with each other and with diffusers', and the images
// with each other.
func TestPipelineLoRA(t *testing.T) {
	run, err := safetensors.ParseBytes(fetchShared(t, "golden/runs/lora_ddim_scale1.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) *tensor.Host {
		h, err := run.ReadFloat32(name)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	init, final := read("init.latents"), read("final.latents")
	req := pipeline.Request{
		Prompt: "a photo of an astronaut riding a horse on mars", Steps: 10, Guidance: 7.5,
		Width: 32, Height: 32, Latents: init, Decoder: pipeline.DecodeVAE, Scheduler: sched.DDIM,
	}
	opt := pipeline.LoadOptions{LoRAs: []pipeline.LoRA{{
		Folder: sharedFolder("golden/lora_tiny"), Name: "sd15_tiny_lora_kohya_r4.safetensors", Scale: 1,
	}}}
	gpu, ref := onBoth(t, func(b backend.Backend) []*tensor.Host {
		p, err := pipeline.LoadFolder(b, sharedFolder("golden/sd15_tiny_pipeline"), opt)
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
		defer p.Close()
		res, err := p.Generate(context.Background(), req)
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
		return []*tensor.Host{res.Latents, res.Image}
	})
	compare(t, "LoRA final latents (webgpu vs cpu)", gpu[0], ref[0], modelTol)
	compare(t, "LoRA final latents (webgpu vs diffusers)", gpu[0], final, modelTol)
	compare(t, "LoRA image (webgpu vs cpu)", gpu[1], ref[1], modelTol)
}
