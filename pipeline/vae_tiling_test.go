package pipeline

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/models/vae"
	"github.com/tgate-web/tgate/tensor"
)

// TestVAEDecodeActivationBytes checks the estimate against sizes worked
// out by hand: the tiny SD-XL VAE (16, 32) at 32×32, and SD-XL's VAE
// (128, 256, 512, 512) at 1024×1024, whose full-resolution level holds
// 256 channels after the last upsampler (1 GiB) and whose mid-block
// attention has 128² tokens (1 GiB of scores).
func TestVAEDecodeActivationBytes(t *testing.T) {
	tiny := &Pipeline{VAEConfig: &vae.Config{BlockOutChannels: []int{16, 32}, MidBlockAddAttention: true}}
	if got, want := tiny.VAEDecodeActivationBytes(32, 32), int64(256*256*4); got != want {
		t.Errorf("tiny VAE at 32×32: %d bytes, want %d (the 16×16-token attention)", got, want)
	}
	tiny.VAEConfig.MidBlockAddAttention = false
	if got, want := tiny.VAEDecodeActivationBytes(32, 32), int64(32*32*32*4); got != want {
		t.Errorf("tiny VAE at 32×32 without attention: %d bytes, want %d", got, want)
	}
	xl := &Pipeline{VAEConfig: &vae.Config{BlockOutChannels: []int{128, 256, 512, 512}}}
	if got, want := xl.VAEDecodeActivationBytes(1024, 1024), int64(256*1024*1024*4); got != want {
		t.Errorf("SD-XL VAE at 1024×1024: %d bytes, want %d", got, want)
	}
}

// TestTiledDecode decodes the SD-XL baseline run's final latents with
// 16-pixel tiles (8 latents, stride 6, a 4-pixel blend, 12 pixels kept
// per tile: 3×3 tiles) and checks the result against the tiles decoded
// alone and blended by tiled_decode's formulas written out here, and
// reports its distance to the untiled decode of the golden.
func TestTiledDecode(t *testing.T) {
	p, err := Load(cpu.New(), golden.Dir(t, "golden", "sdxl_tiny_pipeline"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b := p.b
	gold := golden.Tensors(t, filepath.Join(golden.Dir(t, "golden", "runs"), "sdxl_euler_baseline.safetensors"))
	z := b.Upload(gold["final.vae_decode_input"])
	defer b.Free(z)
	decode := func() *tensor.Host {
		out, err := p.decodeVAE(z)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Free(out)
		return golden.ReadBack(t, b, out)
	}

	// A latent that fits one tile (the default tile is the config's
	// sample_size, 32 pixels) is decoded untiled, bit for bit.
	p.VAETiling = VAETiling{Enabled: true}
	untiled := decode()
	golden.AssertClose(t, "one tile vs final.vae_decoded", untiled, gold["final.vae_decoded"], 1e-5)
	// So is an image under the activation limit.
	p.VAETiling = VAETiling{Enabled: true, TileSize: 16, MaxActivationBytes: p.VAEDecodeActivationBytes(32, 32)}
	if abs, _ := golden.Diff(decode(), untiled); abs != 0 {
		t.Errorf("an image within MaxActivationBytes was tiled (differs by %g)", abs)
	}

	p.VAETiling = VAETiling{Enabled: true, TileSize: 16}
	tiled := decode()
	if !tiled.Shape.Equal(tensor.Shape{1, 3, 32, 32}) {
		t.Fatalf("tiled decode has shape %v, want [1 3 32 32]", tiled.Shape)
	}
	tile := func(i, j int) *tensor.Host {
		band := b.Slice(z, 2, i, min(i+8, 16))
		lat := b.Slice(band, 3, j, min(j+8, 16))
		out, err := p.VAE.Decode(b, lat)
		b.Free(band)
		b.Free(lat)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Free(out)
		return golden.ReadBack(t, b, out)
	}
	at := func(h *tensor.Host, c, y, x int) float64 {
		return float64(h.Data[(c*h.Shape[2]+y)*h.Shape[3]+x])
	}
	t00, t01, t10 := tile(0, 0), tile(0, 6), tile(6, 0)
	var maxErr float64
	for c := 0; c < 3; c++ {
		for y := 0; y < 12; y++ {
			for x := 0; x < 12; x++ {
				// Tile (0,0) is kept as decoded.
				maxErr = math.Max(maxErr, math.Abs(at(tiled, c, y, x)-at(t00, c, y, x)))
				// Tile (0,1): its first 4 columns fade in from tile (0,0)'s
				// columns 12..15.
				want := at(t01, c, y, x)
				if x < 4 {
					want = at(t00, c, y, 12+x)*(1-float64(x)/4) + want*float64(x)/4
				}
				maxErr = math.Max(maxErr, math.Abs(at(tiled, c, y, 12+x)-want))
				// Tile (1,0): its first 4 rows fade in from tile (0,0)'s
				// rows 12..15.
				want = at(t10, c, y, x)
				if y < 4 {
					want = at(t00, c, 12+y, x)*(1-float64(y)/4) + want*float64(y)/4
				}
				maxErr = math.Max(maxErr, math.Abs(at(tiled, c, 12+y, x)-want))
			}
		}
	}
	t.Logf("tiled decode vs tiles blended independently: max abs %.3g", maxErr)
	if maxErr > 1e-6 {
		t.Errorf("tiled decode differs from the independently blended tiles by %g", maxErr)
	}
	abs, rel := golden.Diff(tiled, gold["final.vae_decoded"])
	t.Logf("tiled (16-pixel tiles) vs untiled decode final.vae_decoded: max abs %.3g, relative %.3g (the tiles' GroupNorm and attention see one tile each)", abs, rel)
	if math.IsNaN(abs) || rel > 1 {
		t.Errorf("tiled decode is far from the untiled one: relative %g", rel)
	}
}
