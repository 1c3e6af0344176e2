package pipeline

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// VAETiling configures the AutoencoderKL decode tile by tile with
// overlapping, blended tiles (diffusers v0.30.3 AutoencoderKL.tiled_decode,
// enabled by enable_vae_tiling). It bounds the decoder's activations by
// the tile's size instead of the image's, at the price of seams that the
// blending hides (the mid-block attention and the GroupNorms see one tile
// only, so the result differs slightly from the untiled decode). SD-XL
// at 1024×1024 is where this matters: its untiled decoder holds 1 GiB
// tensors.
type VAETiling struct {
	// Enabled decodes latents larger than one tile by tiles.
	Enabled bool
	// MaxActivationBytes, when positive, restricts tiling to images whose
	// untiled decode would hold a tensor larger than this many bytes
	// (VAEDecodeActivationBytes); 0 tiles whenever the latents exceed a
	// tile.
	MaxActivationBytes int64
	// TileSize is tile_sample_min_size, the tile's side in pixels (0: the
	// VAE config's sample_size, diffusers' choice). It must be a multiple
	// of the VAE scale factor.
	TileSize int
	// Overlap is tile_overlap_factor, the fraction of a tile shared with
	// its neighbour (0: 0.25, diffusers' value).
	Overlap float64
}

// tileGeometry is tiled_decode's: tile_latent_min_size, the latent stride
// between tiles (overlap_size), the blended band (blend_extent) and the
// pixels each tile contributes (row_limit).
type tileGeometry struct {
	latent, stride, blend, keep int
}

// geometry resolves the tiling's defaults for the loaded VAE.
func (p *Pipeline) tileGeometry() (tileGeometry, error) {
	t := p.VAETiling
	f := p.VAEScaleFactor()
	sample := t.TileSize
	if sample == 0 {
		sample = p.VAEConfig.SampleSize
	}
	overlap := t.Overlap
	if overlap == 0 {
		overlap = 0.25
	}
	if sample < f || sample%f != 0 {
		return tileGeometry{}, fmt.Errorf("pipeline: VAE tile size %d must be a positive multiple of the VAE scale factor %d", sample, f)
	}
	if overlap < 0 || overlap >= 1 {
		return tileGeometry{}, fmt.Errorf("pipeline: VAE tile overlap %g must be in [0, 1)", overlap)
	}
	g := tileGeometry{latent: sample / f}
	g.stride = int(float64(g.latent) * (1 - overlap))
	g.blend = int(float64(sample) * overlap)
	g.keep = sample - g.blend
	if g.stride < 1 {
		return tileGeometry{}, fmt.Errorf("pipeline: VAE tiles of %d pixels with overlap %g do not advance", sample, overlap)
	}
	return g, nil
}

// VAEDecodeActivationBytes estimates the largest float32 tensor of an
// untiled AutoencoderKL decode of a height×width image: the feature maps
// at each level of the decoder (a level holds its own block_out_channels
// and, after upsampling, the coarser level's) and, with the mid-block
// attention, its [h·w, h·w] score matrix at the latent resolution (as an
// attention that materialises the scores holds it).
func (p *Pipeline) VAEDecodeActivationBytes(height, width int) int64 {
	ch := p.VAEConfig.BlockOutChannels
	n := len(ch)
	var largest int64
	for k := 0; k < n; k++ {
		c := ch[k]
		if k+1 < n && ch[k+1] > c {
			c = ch[k+1]
		}
		pixels := int64(height>>k) * int64(width>>k)
		largest = max(largest, int64(c)*pixels*4)
	}
	if p.VAEConfig.MidBlockAddAttention {
		tokens := int64(height>>(n-1)) * int64(width>>(n-1))
		largest = max(largest, tokens*tokens*4)
	}
	return largest
}

// useTiling reports whether latents of shape [B, C, h, w] are decoded by
// tiles.
func (p *Pipeline) useTiling(shape tensor.Shape, g tileGeometry) bool {
	t := p.VAETiling
	if !t.Enabled || (shape[2] <= g.latent && shape[3] <= g.latent) {
		return false
	}
	if t.MaxActivationBytes > 0 {
		f := p.VAEScaleFactor()
		return p.VAEDecodeActivationBytes(shape[2]*f, shape[3]*f) > t.MaxActivationBytes
	}
	return true
}

// decodeVAE runs the AutoencoderKL decoder on z (already divided by
// scaling_factor), by tiles when p.VAETiling asks for it.
func (p *Pipeline) decodeVAE(z backend.Tensor) (backend.Tensor, error) {
	if !p.VAETiling.Enabled {
		return p.VAE.Decode(p.b, z)
	}
	g, err := p.tileGeometry()
	if err != nil {
		return nil, err
	}
	if !p.useTiling(z.Shape(), g) {
		return p.VAE.Decode(p.b, z)
	}
	img, err := p.tiledDecode(z, g)
	if err != nil {
		return nil, err
	}
	return p.b.Upload(img), nil
}

// tiledDecode is AutoencoderKL.tiled_decode: tiles of g.latent latents
// every g.stride latents, each through post_quant_conv and the decoder;
// then, in row-major order and in place, each tile's first g.blend rows
// are blended with the tile above (blend_v) and its first g.blend columns
// with the tile to its left (blend_h), each already blended, and the
// tiles' top-left g.keep×g.keep pixels are joined.
func (p *Pipeline) tiledDecode(z backend.Tensor, g tileGeometry) (*tensor.Host, error) {
	b := p.b
	sh := z.Shape()
	h, w := sh[2], sh[3]
	var rows [][]*tensor.Host
	for i := 0; i < h; i += g.stride {
		var row []*tensor.Host
		for j := 0; j < w; j += g.stride {
			band := b.Slice(z, 2, i, min(i+g.latent, h))
			tile := b.Slice(band, 3, j, min(j+g.latent, w))
			b.Free(band)
			dec, err := p.VAE.Decode(b, tile)
			b.Free(tile)
			if err != nil {
				return nil, fmt.Errorf("vae tile (%d, %d): %w", i, j, err)
			}
			hd, err := b.ReadBack(dec)
			b.Free(dec)
			if err != nil {
				return nil, err
			}
			row = append(row, hd)
		}
		rows = append(rows, row)
	}
	for i, row := range rows {
		for j, tile := range row {
			if i > 0 {
				blendV(rows[i-1][j], tile, g.blend)
			}
			if j > 0 {
				blendH(row[j-1], tile, g.blend)
			}
		}
	}
	return joinTiles(rows, g.keep), nil
}

// blendV is AutoencoderKL.blend_v: for y < e = min(a's height, b's
// height, extent), b[.., y, :] = a[.., H_a − e + y, :]·(1 − y/e) +
// b[.., y, :]·(y/e), in float32 with the weights rounded to float32 (as a
// float32 tensor times a Python float). Tiles are [B, C, H, W].
func blendV(a, b *tensor.Host, extent int) {
	n, c, ha, wa := a.Shape[0], a.Shape[1], a.Shape[2], a.Shape[3]
	hb, wb := b.Shape[2], b.Shape[3]
	e := min(ha, hb, extent)
	for y := 0; y < e; y++ {
		wa0, wb0 := float32(1-float64(y)/float64(e)), float32(float64(y)/float64(e))
		for k := 0; k < n*c; k++ {
			ra := a.Data[(k*ha+ha-e+y)*wa:]
			rb := b.Data[(k*hb+y)*wb:]
			for x := 0; x < min(wa, wb); x++ {
				rb[x] = float32(ra[x]*wa0) + float32(rb[x]*wb0)
			}
		}
	}
}

// blendH is AutoencoderKL.blend_h: blendV along the width.
func blendH(a, b *tensor.Host, extent int) {
	n, c, ha, wa := a.Shape[0], a.Shape[1], a.Shape[2], a.Shape[3]
	hb, wb := b.Shape[2], b.Shape[3]
	e := min(wa, wb, extent)
	for x := 0; x < e; x++ {
		wa0, wb0 := float32(1-float64(x)/float64(e)), float32(float64(x)/float64(e))
		for k := 0; k < n*c; k++ {
			for y := 0; y < min(ha, hb); y++ {
				i := (k*hb+y)*wb + x
				b.Data[i] = float32(a.Data[(k*ha+y)*wa+wa-e+x]*wa0) + float32(b.Data[i]*wb0)
			}
		}
	}
}

// joinTiles crops every tile to its top-left keep×keep pixels and joins
// them: torch.cat along the width within a row, then along the height.
func joinTiles(rows [][]*tensor.Host, keep int) *tensor.Host {
	first := rows[0][0]
	n, c := first.Shape[0], first.Shape[1]
	var height, width int
	for _, row := range rows {
		height += min(row[0].Shape[2], keep)
	}
	for _, tile := range rows[0] {
		width += min(tile.Shape[3], keep)
	}
	out := tensor.New(n, c, height, width)
	y0 := 0
	for _, row := range rows {
		x0 := 0
		for _, tile := range row {
			th, tw := tile.Shape[2], tile.Shape[3]
			ch, cw := min(th, keep), min(tw, keep)
			for k := 0; k < n*c; k++ {
				for y := 0; y < ch; y++ {
					copy(out.Data[(k*height+y0+y)*width+x0:], tile.Data[(k*th+y)*tw:(k*th+y)*tw+cw])
				}
			}
			x0 += cw
		}
		y0 += min(row[0].Shape[2], keep)
	}
	return out
}
