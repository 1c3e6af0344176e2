package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tgate-web/tgate/fixture"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/models/clip"
	"github.com/tgate-web/tgate/models/unet"
	"github.com/tgate-web/tgate/models/vae"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/safetensors"
	"github.com/tgate-web/tgate/tensor"
)

// configFiles are the files of a diffusers model folder that the pipeline
// reads besides weights and the tokenizer's vocabulary.
var configFiles = []string{
	"model_index.json",
	"scheduler/scheduler_config.json",
	"tokenizer/tokenizer_config.json",
	"tokenizer/special_tokens_map.json",
	"text_encoder/config.json",
	"unet/config.json",
	"vae/config.json",
}

// buildModel writes a model folder at dir. It starts from the tiny SD 1.5
// fixture (which also writes the real CLIP vocabulary); with configs set,
// it replaces every config by that folder's and writes seeded random F16
// weights of the shapes those configs declare.
func buildModel(dir, configs string, seed uint64) error {
	if err := fixture.Write(dir, fixture.Options{Preset: fixture.SD15, Seed: seed, DType: tensor.F16}); err != nil {
		return err
	}
	if configs == "" {
		return nil
	}
	for _, f := range configFiles {
		data, err := os.ReadFile(filepath.Join(configs, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			return err
		}
	}
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name, "config.json")) }
	unetJSON, err := read("unet")
	if err != nil {
		return err
	}
	unetCfg, err := unet.ParseConfig(unetJSON)
	if err != nil {
		return err
	}
	clipJSON, err := read("text_encoder")
	if err != nil {
		return err
	}
	clipCfg, err := clip.ParseConfig(clipJSON)
	if err != nil {
		return err
	}
	vaeJSON, err := read("vae")
	if err != nil {
		return err
	}
	vaeCfg, err := vae.ParseConfig(vaeJSON)
	if err != nil {
		return err
	}
	comps := []struct {
		dir, file string
		declare   fixture.Declare
	}{
		{"unet", "diffusion_pytorch_model.safetensors", func(m *meter.Backend) ([]nn.Param, error) {
			u, err := unet.NewDeclared(m, unetCfg, tensor.F32)
			if err != nil {
				return nil, err
			}
			params := u.Params()
			if !unetCfg.UseLinearProj {
				// diffusers stores conv projections as 1×1 kernels.
				for i, p := range params {
					if len(p.Shape) == 2 && (strings.HasSuffix(p.Name, ".proj_in.weight") || strings.HasSuffix(p.Name, ".proj_out.weight")) {
						params[i].Shape = tensor.Shape{p.Shape[0], p.Shape[1], 1, 1}
					}
				}
			}
			return params, nil
		}},
		{"text_encoder", "model.safetensors", fixture.ScopeParams(func(s *nn.Scope) error {
			_, err := clip.New(s, clipCfg)
			return err
		})},
		{"vae", "diffusion_pytorch_model.safetensors", fixture.ScopeParams(func(s *nn.Scope) error {
			if _, err := vae.NewEncoder(s, vaeCfg); err != nil {
				return err
			}
			_, err := vae.NewDecoder(s, vaeCfg)
			return err
		})},
	}
	for i, c := range comps {
		params, err := fixture.Params(c.declare)
		if err != nil {
			return fmt.Errorf("%s: %w", c.dir, err)
		}
		weights := fixture.RandomWeights(params, seed*16+uint64(i), tensor.F16)
		if err := safetensors.WriteFile(filepath.Join(dir, c.dir, c.file), map[string]string{"format": "pt"}, weights); err != nil {
			return err
		}
	}
	return nil
}
