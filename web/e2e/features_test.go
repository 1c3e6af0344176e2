package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/tensor"
)

// featureRun is one reference run of ../shared/golden/runs reproduced
// through the JavaScript API on WebGPU: the model to load (a folder of
// ../shared/golden, or a JS expression for the source with its load
// options) and the generate options (without the latents and images, which
// come from the run's tensors).
type featureRun struct {
	name, folder, opts string
	// load, when set, is the JS arguments of engine.load instead of the
	// folder's.
	load string
	// latents passes the run's init.latents as the initial latents.
	latents bool
	// image and mask pass input.image_uint8 / input.mask_uint8 as the
	// init image and the inpainting mask.
	image, mask bool
}

// featureRuns are the shared runs of img2img, inpainting, LoRA, DeepCache,
// SD-XL (with T-GATE and T-GATE + DeepCache) and PixArt (with T-GATE).
var featureRuns = []featureRun{
	{name: "img2img_ddim_s06", folder: "sd15_tiny_pipeline", image: true,
		opts: `{prompt: "a photo of an astronaut riding a horse on mars", negativePrompt: "", steps: 10, guidance: 7.5, seed: 7, scheduler: "ddim", strength: 0.6}`},
	{name: "inpaint_ddim", folder: "sd15_inpaint_tiny_pipeline", image: true, mask: true,
		opts: `{prompt: "a photo of an astronaut riding a horse on mars", negativePrompt: "", steps: 10, guidance: 7.5, seed: 21, scheduler: "ddim", strength: 1.0, width: 32, height: 32}`},
	{name: "lora_ddim_scale1", folder: "sd15_tiny_pipeline", latents: true,
		opts: `{prompt: "a photo of an astronaut riding a horse on mars", negativePrompt: "", steps: 10, guidance: 7.5, scheduler: "ddim", width: 32, height: 32,
		  loras: [{url: location.origin + "/golden/lora_tiny/resolve/main/sd15_tiny_lora_kohya_r4.safetensors", scale: 1}]}`},
	{name: "ddim_baseline", folder: "single-file", latents: true,
		load: `location.origin + "/golden/single_file/resolve/main/sd15_tiny_pipeline.safetensors", {config: "golden/sd15_tiny_pipeline"}`,
		opts: `{prompt: "a photo of an astronaut riding a horse on mars", negativePrompt: "", steps: 10, guidance: 7.5, scheduler: "ddim", width: 32, height: 32}`},
	{name: "deepcache_ddim_i3_b0", folder: "sd15_tiny_pipeline", latents: true,
		opts: `{prompt: "a photo of an astronaut riding a horse on mars", negativePrompt: "", steps: 10, guidance: 7.5, scheduler: "ddim", width: 32, height: 32,
		  deepcache: {interval: 3, branch: 0}}`},
	{name: "sdxl_euler_baseline", folder: "sdxl_tiny_pipeline", latents: true,
		opts: `{prompt: "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k", steps: 10, guidance: 5, width: 32, height: 32}`},
	{name: "sdxl_euler_tgate_v2", folder: "sdxl_tiny_pipeline", latents: true,
		opts: `{prompt: "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k", steps: 10, guidance: 5, width: 32, height: 32,
		  tgate: {mode: "v2", gateStep: 4, spInterval: 2, fiInterval: 1, warmUp: 1}}`},
	{name: "sdxl_tgate_deepcache_a", folder: "sdxl_tiny_pipeline", latents: true,
		opts: `{prompt: "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k", steps: 10, guidance: 5, width: 32, height: 32,
		  tgate: {mode: "v2", gateStep: 5, spInterval: 1, fiInterval: 1, warmUp: 0}, deepcache: {interval: 3, branch: 0}}`},
	{name: "pixart_dpm_baseline", folder: "pixart_tiny_pipeline", latents: true,
		opts: `{prompt: "A small cactus with a happy face in the Sahara desert.", negativePrompt: "", steps: 10, guidance: 4.5, width: 32, height: 32,
		  resolutionBinning: false, maxSequenceLength: 120}`},
	{name: "pixart_dpm_tgate_v2", folder: "pixart_tiny_pipeline", latents: true,
		opts: `{prompt: "A small cactus with a happy face in the Sahara desert.", negativePrompt: "", steps: 10, guidance: 4.5, width: 32, height: 32,
		  resolutionBinning: false, maxSequenceLength: 120, tgate: {mode: "v2", gateStep: 6, spInterval: 3, fiInterval: 1, warmUp: 1}}`},
}

// imageDataJS writes U8 pixels [H, W, C] (C = 3 RGB or 1 L when shape has
// two dimensions) as a JS ImageData expression (RGBA, alpha 255; a grey
// mask repeats its value in R, G and B).
func imageDataJS(shape tensor.Shape, px []byte) string {
	h, w := int(shape[0]), int(shape[1])
	c := 1
	if len(shape) == 3 {
		c = int(shape[2])
	}
	var b strings.Builder
	b.WriteString("new ImageData(new Uint8ClampedArray([")
	for i := 0; i < h*w; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		if c == 1 {
			fmt.Fprintf(&b, "%d,%d,%d,255", px[i], px[i], px[i])
		} else {
			fmt.Fprintf(&b, "%d,%d,%d,255", px[i*c], px[i*c+1], px[i*c+2])
		}
	}
	fmt.Fprintf(&b, "]), %d, %d)", w, h)
	return b.String()
}

// TestFeatureRuns reproduces the shared reference runs of the editing
// tools (and text-to-image from the single-file checkpoint), DeepCache,
// SD-XL and PixArt on WebGPU through engine.load and
// engine.generate, within 1e-3 (relative to the final latents' largest
// magnitude) of diffusers' final latents.
func TestFeatureRuns(t *testing.T) {
	runs := golden.Dir(t, "golden", "runs")
	s := open(t, "/?model=golden/sd15_tiny_pipeline", 20*time.Minute)
	s.waitState(2*time.Minute, "ready", "error")
	loaded := ""
	for _, r := range featureRuns {
		t.Run(r.name, func(t *testing.T) {
			if r.folder != loaded {
				args := `"golden/` + r.folder + `", {}`
				if r.load != "" {
					args = r.load
				}
				s.eval(`((src, o) => window.tgateApp.engine.load(src, {...o, hub: location.origin, decoder: "none"}))(`+args+`)`, nil)
				loaded = r.folder
			}
			file := filepath.Join(runs, r.name+".safetensors")
			ts := golden.Tensors(t, file)
			extra := []string{`decoder: "none"`, `returnLatents: true`}
			if r.latents {
				extra = append(extra, "latents: new Float32Array("+floats(ts["init.latents"].Data)+")")
			}
			u8 := golden.Bytes(t, file)
			if r.image {
				img := u8["input.image_uint8"]
				extra = append(extra, "initImage: "+imageDataJS(img.Shape, img.Data))
			}
			if r.mask {
				m := u8["input.mask_uint8"]
				extra = append(extra, "mask: "+imageDataJS(m.Shape, m.Data))
			}
			got := s.generate(strings.TrimSuffix(r.opts, "}") + ", " + strings.Join(extra, ", ") + "}")
			want := ts["final.latents"]
			if len(got.Latents) != len(want.Data) {
				t.Fatalf("got %d latent values, want %d", len(got.Latents), len(want.Data))
			}
			if d := maxRelDiff(got.Latents, want.Data); !(d <= 1e-3) {
				t.Errorf("final latents differ from the reference run's by %.3g relative (max)", d)
			} else {
				t.Logf("final latents within %.2g of the reference run's", d)
			}
		})
	}
}
