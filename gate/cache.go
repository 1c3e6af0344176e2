package gate

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// Gate runs T-GATE in a denoising loop: it holds the per-step plan and the
// attention cache, and implements nn.AttentionHook. Call Begin(i) before
// the denoiser evaluation of step i, pass the Gate as the denoiser's
// attention hook, and Release when the loop ends.
//
// A cached output is the attention module's output after to_out, before
// the transformer block's residual add (tgate_utils.py::tgate_processor).
// From the gate on, every stored tensor has batch 1.
type Gate struct {
	b     backend.Backend
	cfg   Config
	loop  Loop
	plans []StepPlan

	step  int
	plan  StepPlan
	cache map[string]backend.Tensor
	kinds map[string]nn.AttnKind
	stats Stats
	err   error
	auto  *autoState // nil unless cfg.Auto is enabled
}

var _ nn.AttentionHook = (*Gate)(nil)

// Stats counts what the attention modules did.
type Stats struct {
	CrossComputed, CrossReused int
	SelfComputed, SelfReused   int
	// Stored is the number of tensors written to the cache.
	Stored int
	// GateStep is the gate step in force at the end (the auto gate's
	// choice when it is enabled; 0 when it never closed or T-GATE is off).
	GateStep int
}

// New returns a Gate for loop under cfg; it stores its cache on b.
func New(b backend.Backend, cfg Config, loop Loop) (*Gate, error) {
	var auto *autoState
	if cfg.Mode != Off && cfg.Auto.Enabled() {
		// Until the auto gate decides, the plan is the ceiling's.
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		auto = newAutoState(cfg.Auto)
		cfg.GateStep = cfg.Auto.ceiling(loop)
	}
	plans, err := Plans(cfg, loop)
	if err != nil {
		return nil, err
	}
	return &Gate{b: b, cfg: cfg, loop: loop, plans: plans, step: -1, auto: auto,
		cache: map[string]backend.Tensor{}, kinds: map[string]nn.AttnKind{}}, nil
}

// Config returns the gate's parameters.
func (g *Gate) Config() Config { return g.cfg }

// Plan returns the plan of denoiser evaluation i (0-based, counting every
// UNet call of the loop).
func (g *Gate) Plan(i int) StepPlan {
	if i < 0 || i >= len(g.plans) {
		return StepPlan{CFG: g.loop.CFG, CurStep: i - g.loop.WarmupSteps()}
	}
	return g.plans[i]
}

// Begin makes evaluation i's plan current and returns it.
func (g *Gate) Begin(i int) StepPlan {
	g.autoBegin(i)
	g.step = i
	g.plan = g.Plan(i)
	return g.plan
}

// Attention implements nn.AttentionHook: it computes, caches or reuses the
// module's output according to the current plan.
func (g *Gate) Attention(key string, kind nn.AttnKind, compute func() backend.Tensor) (backend.Tensor, bool) {
	act := g.plan.Self
	if kind == nn.CrossAttn {
		act = g.plan.Cross
	}
	g.kinds[key] = kind
	if act == Reuse {
		if c, ok := g.cache[key]; ok {
			g.count(kind, false)
			return c, false
		}
	}
	out := compute()
	g.count(kind, true)
	g.autoObserve(key, kind, out)
	switch act {
	case Cache:
		g.store(key, out)
		return out, false
	case CacheMean:
		sh := out.Shape()
		if sh.Rank() == 0 || sh[0]%2 != 0 {
			g.fail(fmt.Errorf("T-GATE: step %d: %s output %v has no guidance halves to average", g.step, key, sh))
			return out, true
		}
		halves := backend.Chunk(g.b, out, 0, 2)
		sum := g.b.Binary(backend.Add, halves[0], halves[1])
		nn.Free(g.b, halves[0], halves[1])
		mean := g.b.Affine(sum, 0.5, 0)
		g.b.Free(sum)
		g.store(key, mean)
		return out, true
	}
	return out, true
}

// store replaces key's cached tensor by t.
func (g *Gate) store(key string, t backend.Tensor) {
	if old, ok := g.cache[key]; ok && old != t {
		g.b.Free(old)
	}
	g.cache[key] = t
	g.stats.Stored++
}

func (g *Gate) count(kind nn.AttnKind, computed bool) {
	switch {
	case kind == nn.CrossAttn && computed:
		g.stats.CrossComputed++
	case kind == nn.CrossAttn:
		g.stats.CrossReused++
	case computed:
		g.stats.SelfComputed++
	default:
		g.stats.SelfReused++
	}
}

func (g *Gate) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

// Err returns the first inconsistency the gate met (a guidance-mean cache
// on an odd batch), or nil.
func (g *Gate) Err() error { return g.err }

// Stats returns the counters since New.
func (g *Gate) Stats() Stats {
	s := g.stats
	s.GateStep = g.GateStep()
	return s
}

// CrossCached reports whether every cross-attention module seen so far has
// a stored output (and at least one was seen): from then on, with the plan
// reusing cross-attention, the text embeddings and every cross-attention
// key/value projection can be released.
func (g *Gate) CrossCached() bool {
	seen := false
	for k, kind := range g.kinds {
		if kind != nn.CrossAttn {
			continue
		}
		seen = true
		if _, ok := g.cache[k]; !ok {
			return false
		}
	}
	return seen
}

// Cached returns the stored output of the module key, or nil.
func (g *Gate) Cached(key string) backend.Tensor { return g.cache[key] }

// CachedKeys returns the number of stored tensors of each kind.
func (g *Gate) CachedKeys() (cross, self int) {
	for k := range g.cache {
		if g.kinds[k] == nn.CrossAttn {
			cross++
		} else {
			self++
		}
	}
	return cross, self
}

// CacheBytes returns the bytes of float32 activations the cache holds.
func (g *Gate) CacheBytes() int64 {
	var n int64
	for _, t := range g.cache {
		n += int64(4 * t.Shape().Numel())
	}
	return n
}

// Release frees every cached tensor.
func (g *Gate) Release() {
	for k, t := range g.cache {
		g.b.Free(t)
		delete(g.cache, k)
	}
}
