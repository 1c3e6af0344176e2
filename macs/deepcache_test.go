package macs

import (
	"math"
	"testing"

	"github.com/tgate-web/tgate/gate"
)

// TestDeepCacheMACsSD15 counts SD 1.5 (25 DPM++ evaluations, guidance)
// with DeepCache interval 3, branch 0 and checks the calflops-convention
// total against a hand count: the 9 refreshes (evaluations 0, 3, …, 24)
// cost a plain evaluation each; a partial evaluation runs, at 64×64
// latents on 2 rows, conv_in, up_blocks[3].resnets[2] (640 → 320 with a
// 1×1 shortcut), up_blocks[3].attentions[2] and conv_out, plus the time
// embedding and the resnet's time projection once (both rows share the
// timestep).
func TestDeepCacheMACsSD15(t *testing.T) {
	m := load(t, sd15)
	plain := count(t, m, spec(gate.Off, 10))
	s := spec(gate.Off, 10)
	s.DeepCache = DeepCache{Interval: 3, Branch: 0}
	dc := count(t, m, s)
	if dc.DeepCacheRefreshes != 9 || dc.DeepCachePartials != 16 {
		t.Fatalf("%d refreshes, %d partial evaluations; want 9 and 16", dc.DeepCacheRefreshes, dc.DeepCachePartials)
	}
	const (
		hw, c, ctxLen, ctxDim, temb = 64 * 64, 320, 77, 768, 1280
	)
	row := int64(hw*9*4*c) + // conv_in
		int64(hw*9*2*c*c+hw*9*c*c+hw*2*c*c) + // resnet conv1 (640 in), conv2, 1×1 shortcut
		int64(2*hw*c*c) + // proj_in, proj_out
		int64(4*hw*c*c) + // attn1 q, k, v, out
		int64(2*hw*c*c+2*ctxLen*ctxDim*c) + // attn2 q, out; k, v on the text
		int64(hw*c*8*c+hw*4*c*c) + // GEGLU 320 → 2·1280, 1280 → 320
		int64(hw*9*c*4) // conv_out
	once := int64(c*temb+temb*temb) + int64(temb*c) // time embedding, time_emb_proj
	partial := 2*row + once
	full := plain.CalflopsMACs() / 25
	if plain.CalflopsMACs()%25 != 0 {
		t.Fatalf("plain count %d is not 25 equal evaluations", plain.CalflopsMACs())
	}
	want := 9*full + 16*partial
	t.Logf("plain %.3fT, DeepCache %.3fT (partial evaluation %.3fG against %.3fG)", float64(plain.CalflopsMACs())/1e12,
		float64(dc.CalflopsMACs())/1e12, float64(partial)/1e9, float64(full)/1e9)
	if got := dc.CalflopsMACs(); got != want {
		t.Errorf("DeepCache count %d, hand count %d (difference %d)", got, want, got-want)
	}
}

// TestAdaptiveGuidanceMACs checks that guidance ending after k
// evaluations costs k guided evaluations and 25 − k unguided ones.
func TestAdaptiveGuidanceMACs(t *testing.T) {
	m := load(t, sd15)
	guided := count(t, m, spec(gate.Off, 10)).CalflopsMACs() / 25
	s := spec(gate.Off, 10)
	s.Guidance = false
	single := count(t, m, s).CalflopsMACs() / 25
	for _, k := range []int{1, 7, 24} {
		s := spec(gate.Off, 10)
		s.AdaptiveGuidanceStep = k
		got := count(t, m, s).CalflopsMACs()
		if want := int64(k)*guided + int64(25-k)*single; got != want {
			t.Errorf("guidance off after %d: %d MACs, want %d", k, got, want)
		}
	}
	s = spec(gate.V1, 10)
	s.AdaptiveGuidanceStep = 5
	if _, err := Count(m, s); err == nil {
		t.Errorf("adaptive guidance with T-GATE accepted")
	}
}

// TestDeepCachePaperRows reproduces the T-GATE README's DeepCache rows
// (SD-XL, 25 DPM++ steps, guidance; 57.888T and 43.868T). The README's
// figures date from the first DeepCache integration (T-GATE's DeepCache/
// folder, April 2024): DeepCache's pipeline with cache_interval 3 and
// cache_layer_id = cache_block_id = 0, which recomputes
// down_blocks[0].resnets[0] and the last two resnets of up_blocks[2], the
// helper's branch 1; the plain row matches it exactly. The T-GATE row
// matches 13 guided evaluations whose last (evaluation 12, the old loop's
// interval_seq[gate_idx = 4]) caches cross-attention: gate step 13 here,
// with sp_interval = fi_interval = 1 and no warm-up as the loader sets.
// The loader of today (tgate/SDXL_DeepCache.py with main.py: branch 0,
// gate step 10) is logged alongside (docs/deepcache.md).
func TestDeepCachePaperRows(t *testing.T) {
	m := load(t, sdxl)
	run := func(dc DeepCache, g gate.Config) float64 {
		s := DefaultSpec()
		s.Gate, s.DeepCache = g, dc
		return float64(count(t, m, s).CalflopsMACs()) / 1e12
	}
	off := gate.Config{Mode: gate.Off, GateStep: 10}
	loader := func(step int) gate.Config {
		return gate.Config{Mode: gate.V2, GateStep: step, SPInterval: 1, FIInterval: 1}
	}
	for _, c := range []struct {
		name  string
		got   float64
		paper float64
	}{
		{"DeepCache (SD-XL)", run(DeepCache{3, 1}, off), 57.888},
		{"DeepCache w/ TGATE", run(DeepCache{3, 1}, loader(13)), 43.868},
	} {
		rel := (c.got - c.paper) / c.paper
		t.Logf("%s: %.3fT, README %.3fT (%+.3f%%)", c.name, c.got, c.paper, 100*rel)
		if math.Abs(rel) > 1e-4 {
			t.Errorf("%s: %.3fT is %.3f%% from the README's %.3fT", c.name, c.got, 100*rel, c.paper)
		}
	}
	t.Logf("today's loader and main.py (branch 0, gate step 10): DeepCache %.3fT, with T-GATE %.3fT",
		run(DeepCache{3, 0}, off), run(DeepCache{3, 0}, loader(10)))
}
