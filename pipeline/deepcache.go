package pipeline

import (
	"fmt"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/models/unet"
)

// DeepCache configures DeepCache (arXiv 2312.00858) on the UNet
// pipelines, as horseee/DeepCache's DeepCacheSDHelper runs it
// (DeepCache/extension/deepcache.py, skip_mode "uniform"), composed with
// T-GATE as the T-GATE repository's DeepCache loader does (see
// unet.DeepCacheSchedule).
type DeepCache struct {
	// Interval is cache_interval N: a step whose timestep index minus the
	// first step's is a multiple of N runs the whole UNet and refreshes
	// the cache; the others recompute only the branch. 0 turns DeepCache
	// off; 1 refreshes every step (the plain pipeline).
	Interval int
	// Branch is cache_branch_id: block Branch/3, layer Branch%3 (see
	// unet.DeepCache). 0 is the shallowest branch.
	Branch int
}

// Enabled reports whether DeepCache runs.
func (d DeepCache) Enabled() bool { return d.Interval > 0 }

// Validate reports a setting DeepCache cannot use.
func (d DeepCache) Validate() error {
	if d.Interval < 0 {
		return fmt.Errorf("DeepCache interval %d must not be negative (0 turns DeepCache off)", d.Interval)
	}
	if d.Branch < 0 {
		return fmt.Errorf("DeepCache branch %d must not be negative", d.Branch)
	}
	return nil
}

// DeepCacheStats counts a run's DeepCache evaluations.
type DeepCacheStats struct {
	// Refreshes ran the whole UNet; Partials only the cached branch.
	Refreshes, Partials int
}

// deepCacheRun is one loop's DeepCache: its schedule, the T-GATE gate
// whose step forces refreshes (asked at every evaluation, so an auto
// gate's decision counts as soon as it is made) and the counts.
type deepCacheRun struct {
	sched *unet.DeepCacheSchedule
	gate  *gate.Gate
	stats DeepCacheStats
}

// newDeepCacheRun returns nil when cfg is off.
func newDeepCacheRun(cfg DeepCache, timesteps []float64, g *gate.Gate, warmup int) (*deepCacheRun, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, nil
	}
	s, err := unet.NewDeepCacheSchedule(cfg.Interval, cfg.Branch, timesteps, warmup)
	if err != nil {
		return nil, err
	}
	return &deepCacheRun{sched: s, gate: g}, nil
}

// opts returns the UNet's DeepCache state for evaluation i with the given
// batch (nil when DeepCache is off) and counts the evaluation.
func (r *deepCacheRun) opts(i, batch int) *unet.DeepCache {
	if r == nil {
		return nil
	}
	c := r.sched.Next(i, batch, r.gate.GateStep())
	if c.Refresh {
		r.stats.Refreshes++
	} else {
		r.stats.Partials++
	}
	return c
}

// partial reports whether the last evaluation was a partial step.
func (r *deepCacheRun) partial() bool { return r != nil && !r.sched.Cache.Refresh }

// cacheBytes is the size of the stored feature.
func (r *deepCacheRun) cacheBytes() int64 {
	if r == nil {
		return 0
	}
	return r.sched.Cache.Bytes()
}

// release frees the stored feature.
func (r *deepCacheRun) release() {
	if r != nil {
		r.sched.Cache.Release()
	}
}

// counts returns the refresh and partial counts (zero when off).
func (r *deepCacheRun) counts() DeepCacheStats {
	if r == nil {
		return DeepCacheStats{}
	}
	return r.stats
}
