package unet

import (
	"strings"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/internal/golden"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// cacheHook computes every attention and keeps each cross-attention
// output; with reuse set it returns the kept output instead of computing.
type cacheHook struct {
	reuse bool
	keys  []string
	kinds []nn.AttnKind
	cache map[string]backend.Tensor
}

func (h *cacheHook) Attention(key string, kind nn.AttnKind, compute func() backend.Tensor) (backend.Tensor, bool) {
	h.keys = append(h.keys, key)
	h.kinds = append(h.kinds, kind)
	if kind != nn.CrossAttn {
		return compute(), true
	}
	if h.reuse {
		return h.cache[key], false
	}
	out := compute()
	h.cache[key] = out
	return out, false
}

func sliceRow(h *tensor.Host, i int) *tensor.Host {
	n := h.Shape.Numel() / h.Shape[0]
	sh := append(tensor.Shape{1}, h.Shape[1:]...)
	return tensor.FromData(h.Data[i*n:(i+1)*n], sh...)
}

// TestHookReuseAndRelease plays T-GATE's part: cache every
// cross-attention output of a batch-1 pass, then run a batch-2 pass with
// no text embeddings whose cross-attentions all come from that cache (the
// residual add broadcasts batch 1 over batch 2), before and after the
// cross-attention weights are released.
func TestHookReuseAndRelease(t *testing.T) {
	b := cpu.New()
	dir := golden.Dir(t, "golden", "unet_sd21_tiny")
	c, err := hub.OpenComponent(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := Load(b, c)
	if err != nil {
		t.Fatal(err)
	}
	io := golden.Tensors(t, golden.Dir(t, "golden", "unet_sd21_tiny", "io.safetensors"))
	x0 := b.Upload(io["lat10x18_resize.in.sample"])
	ctx := b.Upload(io["lat10x18_resize.in.encoder_hidden_states"])
	ts := []float64{751}

	// Pass 1: compute everything, keep the cross-attention outputs.
	rec := &cacheHook{cache: map[string]backend.Tensor{}}
	out1, err := m.Forward(b, x0, ts, ctx, ForwardOpts{Hook: rec})
	if err != nil {
		t.Fatal(err)
	}
	want := golden.ReadBack(t, b, out1)
	b.Free(out1)
	golden.AssertClose(t, "pass through the hook", want, io["lat10x18_resize.out.sample"], tol)

	// The keys the hook saw are the modules' weight prefixes, in forward
	// order, as AttentionModules lists them.
	mods := m.AttentionModules()
	if len(mods) != len(rec.keys) || len(mods) != 22 {
		t.Fatalf("hook saw %d modules, AttentionModules lists %d, want 22", len(rec.keys), len(mods))
	}
	for i, md := range mods {
		if md.Key != rec.keys[i] || md.Kind != rec.kinds[i] {
			t.Errorf("module %d: hook saw %s (%v), listed %s (%v)", i, rec.keys[i], rec.kinds[i], md.Key, md.Kind)
		}
		if _, _, ok := c.Lookup(md.Key + ".to_q.weight"); !ok {
			t.Errorf("hook key %q is not a weight prefix of the checkpoint", md.Key)
		}
	}
	if rec.keys[1] != "down_blocks.0.attentions.0.transformer_blocks.0.attn2" || mods[1].Stride != 1 || mods[8].Key != "mid_block.attentions.0.transformer_blocks.0.attn1" || mods[8].Stride != 4 {
		t.Errorf("unexpected keys/strides: %s %d, %s %d", rec.keys[1], mods[1].Stride, mods[8].Key, mods[8].Stride)
	}

	if cross := m.CrossAttentionModules(); len(cross) != 11 || cross[0] != rec.keys[1] {
		t.Errorf("CrossAttentionModules: %d keys, first %q", len(cross), cross[0])
	}

	// Pass 2: batch 2 = [x0, 0.5 − x0], ctx nil, every cross-attention
	// reused. Row 0 must reproduce pass 1.
	x1 := b.Affine(x0, -1, 0.5)
	x01 := b.Concat(0, x0, x1)
	b.Free(x1)
	reuse := &cacheHook{reuse: true, cache: rec.cache}
	run2 := func() *tensor.Host {
		out, err := m.Forward(b, x01, ts, nil, ForwardOpts{Hook: reuse})
		if err != nil {
			t.Fatal(err)
		}
		h := golden.ReadBack(t, b, out)
		b.Free(out)
		return h
	}
	got := run2()
	golden.AssertClose(t, "batch-2 row 0 with reused cross-attention", sliceRow(got, 0), want, 1e-6)
	if _, rel := golden.Diff(sliceRow(got, 1), want); rel < 1e-2 {
		t.Errorf("row 1 (a different sample) matches row 0 to %.2g", rel)
	}

	// Release attn2 and norm2 everywhere: exactly their bytes go.
	var crossBytes int64
	nBefore := len(m.Params())
	nCross := 0
	for _, p := range m.Params() {
		if isCrossParam(p.Name) {
			crossBytes += int64(4 * p.Shape.Numel()) // the CPU backend holds float32
			nCross++
		}
	}
	if nCross != 11*7 { // 11 transformer blocks × norm2 (w, b), to_q, to_k, to_v, to_out.0 (w, b)
		t.Errorf("%d cross-attention weights, want 77", nCross)
	}
	live := b.Memory().Live
	m.ReleaseCrossAttention(b)
	if freed := live - b.Memory().Live; freed != crossBytes {
		t.Errorf("ReleaseCrossAttention freed %d bytes, want %d", freed, crossBytes)
	}
	if n := len(m.Params()); n != nBefore-nCross {
		t.Errorf("Params lists %d weights after the release, want %d", n, nBefore-nCross)
	}
	for _, p := range m.Params() {
		if strings.Contains(p.Name, "attn2") {
			t.Errorf("released weight %s still listed", p.Name)
		}
	}
	got2 := run2()
	golden.AssertClose(t, "reuse after release", got2, got, 0)

	// Computing a released cross-attention is an error, not a panic, and
	// the failed pass frees what it made.
	live = b.Memory().Live
	if _, err := m.Forward(b, x0, ts, ctx, ForwardOpts{}); err == nil || !strings.Contains(err.Error(), "released") {
		t.Errorf("forward needing released weights: error %v", err)
	}
	if l := b.Memory().Live; l != live {
		t.Errorf("the failed pass left %d bytes live", l-live)
	}

	for _, v := range rec.cache {
		b.Free(v)
	}
	nn.Free(b, x0, x01, ctx)
	m.Release(b)
	if l := b.Memory().Live; l != 0 {
		t.Errorf("%d bytes live after Release and freeing every input", l)
	}
	if len(m.Params()) != 0 {
		t.Errorf("Params lists %d weights after Release", len(m.Params()))
	}
	if _, err := m.Forward(b, x0, ts, ctx, ForwardOpts{}); err == nil {
		t.Error("forward after Release succeeded")
	}
}

func TestForwardInputErrors(t *testing.T) {
	b := cpu.New()
	m := loadModel(t, b, "golden", "unet_sd21_tiny")
	x := b.Upload(tensor.New(2, 4, 8, 8))
	ctx := b.Upload(tensor.New(2, 5, 32))
	bad := map[string]func() error{
		"channels": func() error {
			y := b.Upload(tensor.New(2, 3, 8, 8))
			defer b.Free(y)
			_, err := m.Forward(b, y, []float64{1}, ctx, ForwardOpts{})
			return err
		},
		"timesteps": func() error { _, err := m.Forward(b, x, []float64{1, 2, 3}, ctx, ForwardOpts{}); return err },
		"ctx batch": func() error {
			c1 := b.Upload(tensor.New(1, 5, 32))
			defer b.Free(c1)
			_, err := m.Forward(b, x, []float64{1}, c1, ForwardOpts{})
			return err
		},
		"ctx width": func() error {
			c48 := b.Upload(tensor.New(2, 5, 48))
			defer b.Free(c48)
			_, err := m.Forward(b, x, []float64{1}, c48, ForwardOpts{})
			return err
		},
		"ctx nil": func() error { _, err := m.Forward(b, x, []float64{1}, nil, ForwardOpts{}); return err },
		"timestep_cond": func() error {
			tc := b.Upload(tensor.New(2, 16))
			defer b.Free(tc)
			_, err := m.Forward(b, x, []float64{1}, ctx, ForwardOpts{TimestepCond: tc})
			return err
		},
		"text_embeds": func() error {
			te := b.Upload(tensor.New(2, 16))
			defer b.Free(te)
			_, err := m.Forward(b, x, []float64{1}, ctx, ForwardOpts{TextEmbeds: te, TimeIDs: []float64{1}})
			return err
		},
	}
	for name, f := range bad {
		if err := f(); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
