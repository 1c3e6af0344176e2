package unet

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/tensor"
)

func mustParse(t *testing.T, js string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return c
}

func TestConfigDefaults(t *testing.T) {
	c := mustParse(t, `{}`)
	if !reflect.DeepEqual(*c, DefaultConfig()) {
		t.Errorf("empty config: got %+v, want the defaults", *c)
	}
	if c.MidBlockType == nil || *c.MidBlockType != UNetMidBlock2DCrossAttn {
		t.Errorf("absent mid_block_type should default to %s", UNetMidBlock2DCrossAttn)
	}
	if c := mustParse(t, `{"mid_block_type": null}`); c.MidBlockType != nil {
		t.Errorf("explicit null mid_block_type read as %q", *c.MidBlockType)
	}
	// Null in a non-pointer field keeps the default (SDXL writes
	// "upcast_attention": null).
	if c := mustParse(t, `{"upcast_attention": null, "norm_eps": 1e-6}`); c.UpcastAttention || c.NormEps != 1e-6 {
		t.Errorf("upcast_attention %v norm_eps %v", c.UpcastAttention, c.NormEps)
	}
}

func TestIntOrList(t *testing.T) {
	cases := []struct {
		js   string
		want IntOrList
		err  bool
	}{
		{`8`, Int(8), false},
		{`8.0`, Int(8), false},
		{`[5, 10, 20, 20]`, List(5, 10, 20, 20), false},
		{`null`, IntOrList{}, false},
		{`8.5`, IntOrList{}, true},
		{`[[1, 2], [3]]`, IntOrList{}, true},
		{`"8"`, IntOrList{}, true},
	}
	for _, c := range cases {
		var v IntOrList
		err := json.Unmarshal([]byte(c.js), &v)
		if (err != nil) != c.err {
			t.Errorf("%s: error %v, want error %v", c.js, err, c.err)
			continue
		}
		if !c.err && !reflect.DeepEqual(v, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.js, v, c.want)
		}
	}
}

// TestPlanSD15 checks the resolved SD1.5 architecture against the table
// of up-block resnet input widths in spec §3.5.
func TestPlanSD15(t *testing.T) {
	p, err := mustParse(t, `{"cross_attention_dim": 768}`).plan()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{2560, 2560, 2560}, {2560, 2560, 1920}, {1920, 1280, 960}, {960, 640, 640}}
	for i, u := range p.Up {
		got := make([]int, u.Layers)
		for j := range got {
			got[j] = u.resnetIn(j)
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("up block %d resnet inputs %v, want %v", i, got, want[i])
		}
	}
	if p.TimeEmbedDim != 1280 || p.TimeInDim != 320 || p.Mid == nil || p.Mid.Heads != 8 {
		t.Errorf("time dims %d/%d, mid %+v", p.TimeInDim, p.TimeEmbedDim, p.Mid)
	}
}

// TestPlanHeads: attention_head_dim is the number of heads per block; the
// mid block uses the last entry and the up blocks the reversed list.
func TestPlanHeads(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(golden.Dir(t, "golden", "unet_sd21_tiny"), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.plan()
	var down, up []int
	for _, b := range p.Down {
		down = append(down, b.Heads)
	}
	for _, b := range p.Up {
		up = append(up, b.Heads)
	}
	if !reflect.DeepEqual(down, []int{2, 2, 4}) || !reflect.DeepEqual(up, []int{4, 2, 2}) || p.Mid.Heads != 4 {
		t.Errorf("heads down %v up %v mid %d; want [2 2 4], [4 2 2], 4", down, up, p.Mid.Heads)
	}
	// num_attention_heads overrides attention_head_dim.
	p2, err := mustParse(t, `{"attention_head_dim": 8, "num_attention_heads": [1, 2, 4, 8]}`).plan()
	if err != nil {
		t.Fatal(err)
	}
	if p2.Down[1].Heads != 2 || p2.Mid.Heads != 8 || p2.Up[0].Heads != 8 {
		t.Errorf("num_attention_heads not used: %+v", p2.Down[1])
	}
}

// TestParamCounts builds the published architectures from their configs
// (shapes only) and compares the parameter counts with the well-known
// totals of the real checkpoints.
func TestParamCounts(t *testing.T) {
	cases := []struct {
		name string
		js   string
		want int
	}{
		{"SD1.5", `{"cross_attention_dim": 768}`, 859520964},
		{"SD2.1", `{"cross_attention_dim": 1024, "attention_head_dim": [5, 10, 20, 20], "use_linear_projection": true}`, 865910724},
		{"SDXL base", `{"cross_attention_dim": 2048, "attention_head_dim": [5, 10, 20], "use_linear_projection": true,
			"block_out_channels": [320, 640, 1280], "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
			"up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "transformer_layers_per_block": [1, 2, 10],
			"addition_embed_type": "text_time", "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816}`, 2567463684},
	}
	for _, c := range cases {
		m, err := NewDeclared(meter.New(), mustParse(t, c.js), tensor.F16)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		n := 0
		for _, p := range m.Params() {
			n += p.Shape.Numel()
		}
		if n != c.want {
			t.Errorf("%s: %d parameters, want %d", c.name, n, c.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ js, want string }{
		{`{"down_block_types": ["CrossAttnDownBlock2D", "AttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]}`, `down_block_types[1] is "AttnDownBlock2D"`},
		{`{"up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D"]}`, `up_block_types[3]`},
		{`{"mid_block_type": "UNetMidBlock2DSimpleCrossAttn"}`, `mid_block_type "UNetMidBlock2DSimpleCrossAttn"`},
		{`{"block_out_channels": [320, 640]}`, `block_out_channels`},
		{`{"up_block_types": ["UpBlock2D"]}`, `up_block_types`},
		{`{"attention_head_dim": [8, 8]}`, `attention_head_dim has 2 entries`},
		{`{"layers_per_block": [2, 2, 2]}`, `layers_per_block has 3 entries`},
		{`{"transformer_layers_per_block": [[1], [2], [3], [4]]}`, `transformer_layers_per_block`},
		{`{"addition_embed_type": "text"}`, `addition_embed_type "text"`},
		{`{"addition_embed_type": "text_time"}`, `addition_time_embed_dim`},
		{`{"class_embed_type": "timestep"}`, `class_embed_type`},
		{`{"num_class_embeds": 10}`, `num_class_embeds`},
		{`{"class_embeddings_concat": true}`, `class_embeddings_concat`},
		{`{"only_cross_attention": true}`, `only_cross_attention`},
		{`{"only_cross_attention": [false, true, false, false]}`, `only_cross_attention`},
		{`{"resnet_time_scale_shift": "scale_shift"}`, `resnet_time_scale_shift "scale_shift"`},
		{`{"time_embedding_type": "fourier"}`, `time_embedding_type "fourier"`},
		{`{"encoder_hid_dim": 1024}`, `encoder_hid_dim`},
		{`{"dual_cross_attention": true}`, `dual_cross_attention`},
		{`{"act_fn": "gelu"}`, `act_fn "gelu"`},
		{`{"norm_num_groups": 24}`, `not divisible by norm_num_groups 24`},
		{`{"norm_num_groups": null}`, `norm_num_groups`},
		{`{"attention_type": "gated"}`, `attention_type "gated"`},
		{`{"_class_name": "UNet2DModel"}`, `_class_name is "UNet2DModel"`},
		{`{"downsample_padding": 0}`, `downsample_padding`},
		{`{"time_embedding_act_fn": "silu"}`, `time_embedding_act_fn`},
		{`{"reverse_transformer_layers_per_block": [[1, 1, 1]]}`, `reverse_transformer_layers_per_block`},
		{`{"in_channels": 0}`, `in_channels`},
		{`{"attention_head_dim": 640}`, `heads for 320 channels`},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.js))
		if err == nil {
			t.Errorf("%s: accepted", c.js)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.js, err, c.want)
		}
	}
}
