package macs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

// This file counts a UNet2DConditionModel's MACs and parameters by hand,
// from the config's numbers and diffusers' layer-by-layer construction
// (unet_2d_condition.py __init__, resnet.py ResnetBlock2D,
// transformer_2d.py, attention.py BasicTransformerBlock), without the
// model code: an independent reference for the meter's counts.

// unetJSON is the part of unet/config.json the hand count needs.
type unetJSON struct {
	BlockOut     []int    `json:"block_out_channels"`
	Down         []string `json:"down_block_types"`
	Up           []string `json:"up_block_types"`
	Layers       int      `json:"layers_per_block"`
	InChannels   int      `json:"in_channels"`
	OutChannels  int      `json:"out_channels"`
	CrossDim     int      `json:"cross_attention_dim"`
	TLayersRaw   any      `json:"transformer_layers_per_block"`
	AddInDim     *int     `json:"projection_class_embeddings_input_dim"`
	AddEmbedType *string  `json:"addition_embed_type"`
}

// tlayers returns transformer_layers_per_block per down block (1 when the
// key is absent).
func (u unetJSON) tlayers() []int {
	out := make([]int, len(u.BlockOut))
	for i := range out {
		out[i] = 1
	}
	switch v := u.TLayersRaw.(type) {
	case float64:
		for i := range out {
			out[i] = int(v)
		}
	case []any:
		for i, x := range v {
			out[i] = int(x.(float64))
		}
	}
	return out
}

// handCount is a per-sample count (one batch row) at a latent of side h.
type handCount struct {
	Conv    int64 // every convolution
	Temb    int64 // time embedding, add_embedding, every resnet's time_emb_proj
	Proj    int64 // Transformer2D proj_in and proj_out
	Attn1   int64 // self-attention to_q, to_k, to_v, to_out
	Attn2Q  int64 // cross-attention to_q and to_out
	Attn2KV int64 // cross-attention to_k and to_v on the text tokens
	FF      int64 // GEGLU projection and output
	SDPA1   int64 // self-attention q·kᵀ and p·v
	SDPA2   int64 // cross-attention q·kᵀ and p·v
	Params  int64
	// Cross-attention: every block's attn2 parameters, norm2 parameters,
	// and Σ tokens·channels over blocks (the size of one cache of every
	// cross-attention output, per row).
	Attn2Params, Norm2Params, CrossTokensC int64
	Blocks                                 int
}

// Linear is every matrix product with a weight: what calflops counts as
// F.linear (1×1 proj convolutions of SD 1.x included).
func (c handCount) Linear() int64 {
	return c.Temb + c.Proj + c.Attn1 + c.Attn2Q + c.Attn2KV + c.FF
}

func loadUNetJSON(t *testing.T, dir string) unetJSON {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "unet", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var u unetJSON
	if err := json.Unmarshal(data, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// count follows UNet2DConditionModel.__init__ and forward for a latent
// h×h and text tokens.
func (u unetJSON) count(h, tokens int) handCount {
	var c handCount
	c0 := int64(u.BlockOut[0])
	T := 4 * c0 // time_embed_dim
	n := len(u.BlockOut)
	tl := u.tlayers()
	conv := func(cin, cout, k, side int64) {
		c.Conv += cin * cout * k * k * side * side
		c.Params += cin*cout*k*k + cout
	}
	lin := func(dst *int64, rows, in, out int64, bias bool) {
		*dst += rows * in * out
		c.Params += in * out
		if bias {
			c.Params += out
		}
	}
	norm := func(ch int64) { c.Params += 2 * ch }
	resnet := func(cin, cout, side int64) {
		norm(cin)
		conv(cin, cout, 3, side)
		lin(&c.Temb, 1, T, cout, true)
		norm(cout)
		conv(cout, cout, 3, side)
		if cin != cout {
			conv(cin, cout, 1, side)
		}
	}
	cross := int64(u.CrossDim)
	L := int64(tokens)
	transformer := func(ch, side int64, layers int) {
		N := side * side
		norm(ch)
		lin(&c.Proj, N, ch, ch, true)
		for range layers {
			c.Blocks++
			norm(ch)
			norm(ch)
			c.Norm2Params += 2 * ch
			norm(ch)
			lin(&c.Attn1, N, ch, ch, false)
			lin(&c.Attn1, N, ch, ch, false)
			lin(&c.Attn1, N, ch, ch, false)
			lin(&c.Attn1, N, ch, ch, true)
			p1 := c.Params
			lin(&c.Attn2Q, N, ch, ch, false)
			lin(&c.Attn2KV, L, cross, ch, false)
			lin(&c.Attn2KV, L, cross, ch, false)
			lin(&c.Attn2Q, N, ch, ch, true)
			c.Attn2Params += c.Params - p1
			lin(&c.FF, N, ch, 8*ch, true) // GEGLU: proj to 2·(4·ch)
			lin(&c.FF, N, 4*ch, ch, true)
			c.SDPA1 += 2 * N * N * ch
			c.SDPA2 += 2 * N * L * ch
			c.CrossTokensC += N * ch
		}
		lin(&c.Proj, N, ch, ch, true)
	}
	side := int64(h)
	conv(int64(u.InChannels), c0, 3, side)
	lin(&c.Temb, 1, c0, T, true)
	lin(&c.Temb, 1, T, T, true)
	if u.AddEmbedType != nil && *u.AddEmbedType == "text_time" {
		lin(&c.Temb, 1, int64(*u.AddInDim), T, true)
		lin(&c.Temb, 1, T, T, true)
	}
	// Down blocks.
	in := c0
	for i, typ := range u.Down {
		out := int64(u.BlockOut[i])
		for range u.Layers {
			resnet(in, out, side)
			in = out
			if typ == "CrossAttnDownBlock2D" {
				transformer(out, side, tl[i])
			}
		}
		if i < n-1 {
			side = (side + 1) / 2
			conv(out, out, 3, side) // Downsample2D, stride 2, padding 1
		}
	}
	// Mid block: resnet, transformer, resnet.
	top := int64(u.BlockOut[n-1])
	resnet(top, top, side)
	transformer(top, side, tl[n-1])
	resnet(top, top, side)
	// Up blocks: reversed channels; resnet j takes the previous output
	// (j = 0) or this block's output, plus a skip of the block below's
	// width for the last layer and this block's width otherwise.
	prev := top
	for i, typ := range u.Up {
		out := int64(u.BlockOut[n-1-i])
		below := int64(u.BlockOut[max(n-2-i, 0)])
		for j := 0; j <= u.Layers; j++ {
			skip := out
			if j == u.Layers {
				skip = below
			}
			rin := out
			if j == 0 {
				rin = prev
			}
			resnet(rin+skip, out, side)
			if typ == "CrossAttnUpBlock2D" {
				transformer(out, side, tl[n-1-i])
			}
		}
		prev = out
		if i < n-1 {
			side *= 2
			conv(out, out, 3, side) // Upsample2D: nearest ×2, then conv
		}
	}
	norm(c0)
	conv(c0, int64(u.OutChannels), 3, side)
	return c
}

func TestHandCountMatchesPublishedParams(t *testing.T) {
	// The hand count itself against published parameter counts: SD 1.5's
	// UNet has 859,520,964 weights and SDXL's 2,567,463,684 (diffusers'
	// model cards; the T-GATE table rounds the first to 859.520M).
	for _, c := range []struct {
		dir  string
		want int64
	}{
		{"runwayml/stable-diffusion-v1-5", 859520964},
		{"stabilityai/stable-diffusion-xl-base-1.0", 2567463684},
	} {
		u := loadUNetJSON(t, golden.Dir(t, "assets", "configs", c.dir))
		if got := u.count(64, 77).Params; got != c.want {
			t.Errorf("%s: hand count %d parameters, want %d", c.dir, got, c.want)
		}
	}
}
