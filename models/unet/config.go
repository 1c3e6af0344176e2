package unet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// Block type names as diffusers spells them in config.json.
const (
	CrossAttnDownBlock2D    = "CrossAttnDownBlock2D"
	DownBlock2D             = "DownBlock2D"
	CrossAttnUpBlock2D      = "CrossAttnUpBlock2D"
	UpBlock2D               = "UpBlock2D"
	UNetMidBlock2DCrossAttn = "UNetMidBlock2DCrossAttn"
)

// IntOrList is a config value diffusers accepts either as one integer
// (the same for every block) or as a list with one entry per down block.
type IntOrList struct {
	Values []int
	Scalar bool // the JSON held a single number
	Set    bool // the JSON held a value other than null
}

// Int returns a scalar IntOrList.
func Int(v int) IntOrList { return IntOrList{Values: []int{v}, Scalar: true, Set: true} }

// List returns a per-block IntOrList.
func List(v ...int) IntOrList { return IntOrList{Values: append([]int(nil), v...), Set: true} }

// UnmarshalJSON reads a number, a list of numbers or null. A list of lists
// (an asymmetric transformer_layers_per_block) is rejected.
func (v *IntOrList) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		*v = IntOrList{}
		return nil
	}
	if len(data) > 0 && data[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil {
			return err
		}
		out := IntOrList{Values: make([]int, len(raw)), Set: true}
		for i, r := range raw {
			if r = bytes.TrimSpace(r); len(r) > 0 && r[0] == '[' {
				return fmt.Errorf("a list of lists (per-layer values of an asymmetric UNet) is not supported")
			}
			n, err := parseInt(r)
			if err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
			out.Values[i] = n
		}
		*v = out
		return nil
	}
	n, err := parseInt(data)
	if err != nil {
		return err
	}
	*v = Int(n)
	return nil
}

// MarshalJSON writes the value back in the form it was read.
func (v IntOrList) MarshalJSON() ([]byte, error) {
	switch {
	case !v.Set:
		return []byte("null"), nil
	case v.Scalar:
		return json.Marshal(v.Values[0])
	}
	return json.Marshal(v.Values)
}

func parseInt(data []byte) (int, error) {
	var f float64
	if err := json.Unmarshal(data, &f); err != nil {
		return 0, fmt.Errorf("want an integer, got %s", strings.TrimSpace(string(data)))
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return 0, fmt.Errorf("want an integer, got %v", f)
	}
	return int(f), nil
}

// perBlock expands v to n entries: a scalar is repeated, a list must have
// exactly n entries.
func (v IntOrList) perBlock(field string, n int) ([]int, error) {
	if !v.Set || len(v.Values) == 0 {
		return nil, fmt.Errorf("unet config: %s is missing", field)
	}
	if v.Scalar {
		out := make([]int, n)
		for i := range out {
			out[i] = v.Values[0]
		}
		return out, nil
	}
	if len(v.Values) != n {
		return nil, fmt.Errorf("unet config: %s has %d entries %v but there are %d down blocks", field, len(v.Values), v.Values, n)
	}
	return append([]int(nil), v.Values...), nil
}

// BoolOrList is only_cross_attention: one bool or one per block.
type BoolOrList struct {
	Values []bool
}

// UnmarshalJSON reads a bool, a list of bools or null.
func (v *BoolOrList) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		v.Values = nil
		return nil
	case len(data) > 0 && data[0] == '[':
		return json.Unmarshal(data, &v.Values)
	}
	var b bool
	if err := json.Unmarshal(data, &b); err != nil {
		return err
	}
	v.Values = []bool{b}
	return nil
}

// MarshalJSON writes the bool (or list) back.
func (v BoolOrList) MarshalJSON() ([]byte, error) {
	if len(v.Values) == 1 {
		return json.Marshal(v.Values[0])
	}
	return json.Marshal(v.Values)
}

func (v BoolOrList) any() bool {
	for _, b := range v.Values {
		if b {
			return true
		}
	}
	return false
}

// Config is unet/config.json of a diffusers UNet2DConditionModel
// (unet_2d_condition.py __init__). Keys absent from the file take
// diffusers' defaults (DefaultConfig); Validate reports what this model
// does not implement.
type Config struct {
	ClassName string `json:"_class_name,omitempty"`

	SampleSize        IntOrList `json:"sample_size"`
	InChannels        int       `json:"in_channels"`
	OutChannels       int       `json:"out_channels"`
	CenterInputSample bool      `json:"center_input_sample"`
	FlipSinToCos      bool      `json:"flip_sin_to_cos"`
	FreqShift         float64   `json:"freq_shift"`

	DownBlockTypes []string  `json:"down_block_types"`
	MidBlockType   *string   `json:"mid_block_type"` // nil: no mid block
	UpBlockTypes   []string  `json:"up_block_types"`
	BlockOutChans  []int     `json:"block_out_channels"`
	LayersPerBlock IntOrList `json:"layers_per_block"`

	OnlyCrossAttention         BoolOrList `json:"only_cross_attention"`
	MidBlockOnlyCrossAttention *bool      `json:"mid_block_only_cross_attention"`
	DownsamplePadding          int        `json:"downsample_padding"`
	MidBlockScaleFactor        float64    `json:"mid_block_scale_factor"`
	Dropout                    float64    `json:"dropout"`
	ActFn                      string     `json:"act_fn"`
	NormNumGroups              *int       `json:"norm_num_groups"`
	NormEps                    float64    `json:"norm_eps"`

	CrossAttentionDim                IntOrList       `json:"cross_attention_dim"`
	TransformerLayersPerBlock        IntOrList       `json:"transformer_layers_per_block"`
	ReverseTransformerLayersPerBlock json.RawMessage `json:"reverse_transformer_layers_per_block,omitempty"`
	EncoderHidDim                    *int            `json:"encoder_hid_dim"`
	EncoderHidDimType                *string         `json:"encoder_hid_dim_type"`
	// AttentionHeadDim is, despite its name, the number of attention heads
	// per block (diffusers keeps the historical name); NumAttentionHeads
	// overrides it when set.
	AttentionHeadDim   IntOrList `json:"attention_head_dim"`
	NumAttentionHeads  IntOrList `json:"num_attention_heads"`
	DualCrossAttention bool      `json:"dual_cross_attention"`
	UseLinearProj      bool      `json:"use_linear_projection"`
	UpcastAttention    bool      `json:"upcast_attention"`
	AttentionType      string    `json:"attention_type"`
	CrossAttentionNorm *string   `json:"cross_attention_norm"`

	ClassEmbedType                    *string `json:"class_embed_type"`
	NumClassEmbeds                    *int    `json:"num_class_embeds"`
	ClassEmbeddingsConcat             bool    `json:"class_embeddings_concat"`
	AdditionEmbedType                 *string `json:"addition_embed_type"`
	AdditionTimeEmbedDim              *int    `json:"addition_time_embed_dim"`
	AdditionEmbedTypeNumHeads         int     `json:"addition_embed_type_num_heads"`
	ProjectionClassEmbeddingsInputDim *int    `json:"projection_class_embeddings_input_dim"`

	ResnetTimeScaleShift string  `json:"resnet_time_scale_shift"`
	ResnetSkipTimeAct    bool    `json:"resnet_skip_time_act"`
	ResnetOutScaleFactor float64 `json:"resnet_out_scale_factor"`

	TimeEmbeddingType  string  `json:"time_embedding_type"`
	TimeEmbeddingDim   *int    `json:"time_embedding_dim"`
	TimeEmbeddingActFn *string `json:"time_embedding_act_fn"`
	TimestepPostAct    *string `json:"timestep_post_act"`
	TimeCondProjDim    *int    `json:"time_cond_proj_dim"`

	ConvInKernel  int `json:"conv_in_kernel"`
	ConvOutKernel int `json:"conv_out_kernel"`
}

func strp(s string) *string { return &s }
func intp(i int) *int       { return &i }

// DefaultConfig returns diffusers' defaults for every key
// (UNet2DConditionModel.__init__'s signature).
func DefaultConfig() Config {
	return Config{
		InChannels:                4,
		OutChannels:               4,
		FlipSinToCos:              true,
		DownBlockTypes:            []string{CrossAttnDownBlock2D, CrossAttnDownBlock2D, CrossAttnDownBlock2D, DownBlock2D},
		MidBlockType:              strp(UNetMidBlock2DCrossAttn),
		UpBlockTypes:              []string{UpBlock2D, CrossAttnUpBlock2D, CrossAttnUpBlock2D, CrossAttnUpBlock2D},
		BlockOutChans:             []int{320, 640, 1280, 1280},
		LayersPerBlock:            Int(2),
		OnlyCrossAttention:        BoolOrList{Values: []bool{false}},
		DownsamplePadding:         1,
		MidBlockScaleFactor:       1,
		ActFn:                     "silu",
		NormNumGroups:             intp(32),
		NormEps:                   1e-5,
		CrossAttentionDim:         Int(1280),
		TransformerLayersPerBlock: Int(1),
		AttentionHeadDim:          Int(8),
		AttentionType:             "default",
		AdditionEmbedTypeNumHeads: 64,
		ResnetTimeScaleShift:      "default",
		ResnetOutScaleFactor:      1,
		TimeEmbeddingType:         "positional",
		ConvInKernel:              3,
		ConvOutKernel:             3,
	}
}

// UnmarshalJSON fills the keys present in data over DefaultConfig, so a
// key that is absent keeps diffusers' default and an explicit null (for
// example "mid_block_type": null) is kept as null.
func (c *Config) UnmarshalJSON(data []byte) error {
	type plain Config
	p := plain(DefaultConfig())
	if err := json.Unmarshal(data, &p); err != nil {
		// Name the key whose value is malformed: errors from a field's own
		// UnmarshalJSON do not carry its name.
		var raw map[string]json.RawMessage
		if json.Unmarshal(data, &raw) == nil {
			for _, k := range []string{"sample_size", "layers_per_block", "cross_attention_dim",
				"transformer_layers_per_block", "attention_head_dim", "num_attention_heads"} {
				var v IntOrList
				if r, ok := raw[k]; ok {
					if e := json.Unmarshal(r, &v); e != nil {
						return fmt.Errorf("%s: %w", k, e)
					}
				}
			}
		}
		return err
	}
	*c = Config(p)
	return nil
}

// ParseConfig decodes config.json and validates it.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("unet config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// blockPlan is one down or up block with every per-block setting resolved
// as UNet2DConditionModel.__init__ resolves it.
type blockPlan struct {
	Type        string
	In, Out     int // down: input and output channels; up: in is the skip width of the last layer
	PrevOut     int // up blocks: channels arriving from the block below
	Layers      int // resnets in the block
	Heads       int
	CrossDim    int
	TLayers     int // BasicTransformerBlocks per Transformer2DModel
	HasAttn     bool
	HasSampling bool // a downsampler (down) or upsampler (up)
}

// plan is the whole resolved architecture.
type plan struct {
	Down, Up     []blockPlan
	Mid          *blockPlan // nil without a mid block
	Groups       int
	Eps          float32
	TimeInDim    int // sinusoid width, block_out_channels[0]
	TimeEmbedDim int
	CondProjDim  int // 0 without cond_proj
	// SDXL text_time: add_time_proj width and add_embedding input width.
	AddTimeDim, AddInDim int
}

// Validate checks that the config describes a UNet this package
// implements, and returns an error naming the first key it does not.
func (c *Config) Validate() error {
	_, err := c.plan()
	return err
}

func errf(format string, a ...any) error { return fmt.Errorf("unet config: "+format, a...) }

func (c *Config) plan() (*plan, error) {
	if c.ClassName != "" && c.ClassName != "UNet2DConditionModel" {
		return nil, errf("_class_name is %q; this model implements UNet2DConditionModel", c.ClassName)
	}
	n := len(c.DownBlockTypes)
	if n == 0 {
		return nil, errf("down_block_types is empty")
	}
	if len(c.UpBlockTypes) != n {
		return nil, errf("%d down_block_types %v but %d up_block_types %v", n, c.DownBlockTypes, len(c.UpBlockTypes), c.UpBlockTypes)
	}
	if len(c.BlockOutChans) != n {
		return nil, errf("%d block_out_channels %v but %d down_block_types", len(c.BlockOutChans), c.BlockOutChans, n)
	}
	if c.InChannels <= 0 || c.OutChannels <= 0 {
		return nil, errf("in_channels %d and out_channels %d must be positive", c.InChannels, c.OutChannels)
	}
	for i, ch := range c.BlockOutChans {
		if ch <= 0 {
			return nil, errf("block_out_channels[%d] is %d", i, ch)
		}
	}
	if c.NormNumGroups == nil || *c.NormNumGroups <= 0 {
		return nil, errf("norm_num_groups must be a positive integer (null, which drops the output norm, is not supported)")
	}
	if c.NormEps <= 0 {
		return nil, errf("norm_eps is %v", c.NormEps)
	}
	if a := strings.ToLower(c.ActFn); a != "silu" && a != "swish" {
		return nil, errf("act_fn %q is not supported (only silu)", c.ActFn)
	}
	if c.TimeEmbeddingType != "positional" {
		return nil, errf("time_embedding_type %q is not supported (only positional)", c.TimeEmbeddingType)
	}
	if c.TimeEmbeddingActFn != nil {
		return nil, errf("time_embedding_act_fn %q is not supported", *c.TimeEmbeddingActFn)
	}
	if c.TimestepPostAct != nil {
		return nil, errf("timestep_post_act %q is not supported", *c.TimestepPostAct)
	}
	if c.EncoderHidDim != nil || c.EncoderHidDimType != nil {
		return nil, errf("encoder_hid_dim / encoder_hid_dim_type (a projection of the text embeddings) are not supported")
	}
	if c.ClassEmbedType != nil || c.NumClassEmbeds != nil {
		return nil, errf("class embeddings (class_embed_type / num_class_embeds) are not supported")
	}
	if c.ClassEmbeddingsConcat {
		return nil, errf("class_embeddings_concat is not supported")
	}
	if c.DualCrossAttention {
		return nil, errf("dual_cross_attention is not supported")
	}
	if c.OnlyCrossAttention.any() || (c.MidBlockOnlyCrossAttention != nil && *c.MidBlockOnlyCrossAttention) {
		return nil, errf("only_cross_attention is not supported")
	}
	if c.AttentionType != "default" {
		return nil, errf("attention_type %q is not supported (only default)", c.AttentionType)
	}
	if c.CrossAttentionNorm != nil {
		return nil, errf("cross_attention_norm %q is not supported", *c.CrossAttentionNorm)
	}
	if c.ResnetTimeScaleShift != "default" {
		return nil, errf("resnet_time_scale_shift %q is not supported (only default)", c.ResnetTimeScaleShift)
	}
	if c.ResnetSkipTimeAct {
		return nil, errf("resnet_skip_time_act is not supported")
	}
	if c.ResnetOutScaleFactor != 1 {
		return nil, errf("resnet_out_scale_factor %v is not supported (only 1)", c.ResnetOutScaleFactor)
	}
	if c.MidBlockScaleFactor <= 0 {
		return nil, errf("mid_block_scale_factor is %v", c.MidBlockScaleFactor)
	}
	if c.DownsamplePadding != 1 {
		return nil, errf("downsample_padding %d is not supported (only 1)", c.DownsamplePadding)
	}
	if c.ConvInKernel <= 0 || c.ConvInKernel%2 == 0 || c.ConvOutKernel <= 0 || c.ConvOutKernel%2 == 0 {
		return nil, errf("conv_in_kernel %d and conv_out_kernel %d must be odd", c.ConvInKernel, c.ConvOutKernel)
	}
	if r := bytes.TrimSpace(c.ReverseTransformerLayersPerBlock); len(r) > 0 && !bytes.Equal(r, []byte("null")) {
		return nil, errf("reverse_transformer_layers_per_block (an asymmetric UNet) is not supported")
	}

	p := &plan{Groups: *c.NormNumGroups, Eps: float32(c.NormEps), TimeInDim: c.BlockOutChans[0]}
	p.TimeEmbedDim = 4 * c.BlockOutChans[0]
	if c.TimeEmbeddingDim != nil {
		if *c.TimeEmbeddingDim <= 0 {
			return nil, errf("time_embedding_dim is %d", *c.TimeEmbeddingDim)
		}
		p.TimeEmbedDim = *c.TimeEmbeddingDim
	}
	if c.TimeCondProjDim != nil {
		if *c.TimeCondProjDim <= 0 {
			return nil, errf("time_cond_proj_dim is %d", *c.TimeCondProjDim)
		}
		p.CondProjDim = *c.TimeCondProjDim
	}
	if c.AdditionEmbedType != nil {
		if *c.AdditionEmbedType != "text_time" {
			return nil, errf("addition_embed_type %q is not supported (only null and SDXL's text_time)", *c.AdditionEmbedType)
		}
		if c.AdditionTimeEmbedDim == nil || *c.AdditionTimeEmbedDim <= 0 {
			return nil, errf("addition_embed_type text_time needs a positive addition_time_embed_dim")
		}
		if c.ProjectionClassEmbeddingsInputDim == nil || *c.ProjectionClassEmbeddingsInputDim <= 0 {
			return nil, errf("addition_embed_type text_time needs a positive projection_class_embeddings_input_dim")
		}
		p.AddTimeDim = *c.AdditionTimeEmbedDim
		p.AddInDim = *c.ProjectionClassEmbeddingsInputDim
	}

	layers, err := c.LayersPerBlock.perBlock("layers_per_block", n)
	if err != nil {
		return nil, err
	}
	cross, err := c.CrossAttentionDim.perBlock("cross_attention_dim", n)
	if err != nil {
		return nil, err
	}
	tlayers, err := c.TransformerLayersPerBlock.perBlock("transformer_layers_per_block", n)
	if err != nil {
		return nil, err
	}
	headsField, headsVal := "attention_head_dim", c.AttentionHeadDim
	if c.NumAttentionHeads.Set {
		headsField, headsVal = "num_attention_heads", c.NumAttentionHeads
	}
	heads, err := headsVal.perBlock(headsField, n)
	if err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		if layers[i] <= 0 {
			return nil, errf("layers_per_block[%d] is %d", i, layers[i])
		}
		if tlayers[i] <= 0 {
			return nil, errf("transformer_layers_per_block[%d] is %d", i, tlayers[i])
		}
		if cross[i] <= 0 {
			return nil, errf("cross_attention_dim[%d] is %d", i, cross[i])
		}
		if heads[i] <= 0 {
			return nil, errf("%s[%d] is %d", headsField, i, heads[i])
		}
	}

	// Down blocks: block i maps block_out_channels[i-1] → [i] and all but
	// the last downsample.
	out := c.BlockOutChans[0]
	for i, typ := range c.DownBlockTypes {
		in := out
		out = c.BlockOutChans[i]
		bp := blockPlan{Type: typ, In: in, Out: out, Layers: layers[i], Heads: heads[i],
			CrossDim: cross[i], TLayers: tlayers[i], HasSampling: i < n-1}
		switch typ {
		case CrossAttnDownBlock2D:
			bp.HasAttn = true
		case DownBlock2D:
		default:
			return nil, errf("down_block_types[%d] is %q; supported: %s, %s", i, typ, CrossAttnDownBlock2D, DownBlock2D)
		}
		if bp.HasAttn && heads[i] > out {
			return nil, errf("down block %d has %d heads for %d channels", i, heads[i], out)
		}
		p.Down = append(p.Down, bp)
	}

	if c.MidBlockType != nil {
		if *c.MidBlockType != UNetMidBlock2DCrossAttn {
			return nil, errf("mid_block_type %q is not supported (only %s or null)", *c.MidBlockType, UNetMidBlock2DCrossAttn)
		}
		ch := c.BlockOutChans[n-1]
		if heads[n-1] > ch {
			return nil, errf("mid block has %d heads for %d channels", heads[n-1], ch)
		}
		p.Mid = &blockPlan{Type: UNetMidBlock2DCrossAttn, In: ch, Out: ch, Layers: 2, Heads: heads[n-1],
			CrossDim: cross[n-1], TLayers: tlayers[n-1], HasAttn: true}
	}

	// Up blocks follow the reversed lists; block i has layers+1 resnets.
	rev := func(v []int) []int {
		r := make([]int, len(v))
		for i := range v {
			r[i] = v[len(v)-1-i]
		}
		return r
	}
	rch, rheads, rlayers, rcross, rtl := rev(c.BlockOutChans), rev(heads), rev(layers), rev(cross), rev(tlayers)
	out = rch[0]
	for i, typ := range c.UpBlockTypes {
		prev := out
		out = rch[i]
		in := rch[min(i+1, n-1)]
		bp := blockPlan{Type: typ, In: in, Out: out, PrevOut: prev, Layers: rlayers[i] + 1, Heads: rheads[i],
			CrossDim: rcross[i], TLayers: rtl[i], HasSampling: i < n-1}
		switch typ {
		case CrossAttnUpBlock2D:
			bp.HasAttn = true
		case UpBlock2D:
		default:
			return nil, errf("up_block_types[%d] is %q; supported: %s, %s", i, typ, CrossAttnUpBlock2D, UpBlock2D)
		}
		if bp.HasAttn && rheads[i] > out {
			return nil, errf("up block %d has %d heads for %d channels", i, rheads[i], out)
		}
		p.Up = append(p.Up, bp)
	}

	// Every GroupNorm's channel count must split into the groups.
	check := func(what string, ch int) error {
		if ch%p.Groups != 0 {
			return errf("%s has %d channels, not divisible by norm_num_groups %d", what, ch, p.Groups)
		}
		return nil
	}
	for i, d := range p.Down {
		for j := 0; j < d.Layers; j++ {
			in := d.Out
			if j == 0 {
				in = d.In
			}
			if err := check(fmt.Sprintf("down_blocks.%d.resnets.%d", i, j), in); err != nil {
				return nil, err
			}
		}
		if err := check(fmt.Sprintf("down_blocks.%d", i), d.Out); err != nil {
			return nil, err
		}
	}
	for i, u := range p.Up {
		for j := 0; j < u.Layers; j++ {
			if err := check(fmt.Sprintf("up_blocks.%d.resnets.%d", i, j), u.resnetIn(j)); err != nil {
				return nil, err
			}
		}
		if err := check(fmt.Sprintf("up_blocks.%d", i), u.Out); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// resnetIn is the input width of up-block resnet j: the running width
// (prev_output_channel for j = 0, out afterwards) plus the popped skip's
// width (in_channels for the last layer, out otherwise), as in
// CrossAttnUpBlock2D.__init__.
func (u blockPlan) resnetIn(j int) int {
	run := u.Out
	if j == 0 {
		run = u.PrevOut
	}
	skip := u.Out
	if j == u.Layers-1 {
		skip = u.In
	}
	return run + skip
}

// NumUpsamplers returns how many up blocks upsample: the latent height and
// width must be multiples of 2^NumUpsamplers for plain ×2 upsampling,
// otherwise every upsampler resizes to its skip tensor's size.
func (c *Config) NumUpsamplers() int { return len(c.BlockOutChans) - 1 }
