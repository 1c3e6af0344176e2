package macs

import (
	"fmt"

	"github.com/tgate-web/tgate/gate"
	"github.com/tgate-web/tgate/meter"
	"github.com/tgate-web/tgate/models/unet"
)

// DeepCache is DeepCache's setting for a count (pipeline.DeepCache):
// Interval 0 is off; a full UNet every Interval evaluations, the branch
// Branch (cache_branch_id) alone in between, with the refreshes T-GATE
// forces at gate_step − 1 and gate_step (unet.DeepCacheSchedule).
type DeepCache struct {
	Interval, Branch int
}

// Enabled reports whether DeepCache is counted.
func (d DeepCache) Enabled() bool { return d.Interval > 0 }

// validateExtras checks the DeepCache and Adaptive Guidance settings of
// spec.
func validateExtras(spec Spec) error {
	if spec.DeepCache.Interval < 0 || spec.DeepCache.Branch < 0 {
		return fmt.Errorf("macs: DeepCache interval %d and branch %d must not be negative", spec.DeepCache.Interval, spec.DeepCache.Branch)
	}
	if spec.AdaptiveGuidanceStep < 0 {
		return fmt.Errorf("macs: adaptive guidance step %d must not be negative", spec.AdaptiveGuidanceStep)
	}
	if spec.AdaptiveGuidanceStep > 0 && spec.Gate.Mode != gate.Off {
		return fmt.Errorf("macs: adaptive guidance and T-GATE both end classifier-free guidance early; count one of them")
	}
	return nil
}

// deepCacheCount drives the DeepCache of a counted loop on the meter.
type deepCacheCount struct {
	sched *unet.DeepCacheSchedule
	m     *meter.Backend
}

// newDeepCacheCount returns nil when d is off.
func newDeepCacheCount(m *meter.Backend, d DeepCache, timesteps []float64, warmup int) (*deepCacheCount, error) {
	if !d.Enabled() {
		return nil, nil
	}
	s, err := unet.NewDeepCacheSchedule(d.Interval, d.Branch, timesteps, warmup)
	if err != nil {
		return nil, err
	}
	return &deepCacheCount{sched: s, m: m}, nil
}

// next returns the UNet's DeepCache state for evaluation i (nil when off)
// and counts it in rep.
func (d *deepCacheCount) next(i, rows, gateStep int, rep *Report) *unet.DeepCache {
	if d == nil {
		return nil
	}
	c := d.sched.Next(i, rows, gateStep)
	if c.Refresh {
		rep.DeepCacheRefreshes++
	} else {
		rep.DeepCachePartials++
	}
	return c
}

// tag marks the stored feature as a cache on the meter.
func (d *deepCacheCount) tag() {
	if d == nil {
		return
	}
	if f := d.sched.Cache.Feature(); f != nil {
		d.m.Retag(f, meter.Cache)
	}
}

// release frees the stored feature.
func (d *deepCacheCount) release() {
	if d != nil {
		d.sched.Cache.Release()
	}
}

// DeepCacheRow is one run of the DeepCache comparison.
type DeepCacheRow struct {
	Name   string
	Report *Report
}

// DeepCacheRows counts spec's generation four ways: plain, with DeepCache
// d, with spec.Gate's T-GATE, and with both (the T-GATE loader's
// composition); the T-GATE rows are left out when spec.Gate.Mode is Off.
func DeepCacheRows(model *Model, spec Spec, d DeepCache) ([]DeepCacheRow, error) {
	if !d.Enabled() {
		return nil, fmt.Errorf("macs: DeepCache rows need an interval of at least 1")
	}
	type run struct {
		name string
		dc   DeepCache
		tg   bool
	}
	runs := []run{{"plain", DeepCache{}, false}, {fmt.Sprintf("DeepCache (interval %d, branch %d)", d.Interval, d.Branch), d, false}}
	if spec.Gate.Mode != gate.Off {
		runs = append(runs, run{"T-GATE " + spec.Gate.Mode.String(), DeepCache{}, true},
			run{"DeepCache + T-GATE " + spec.Gate.Mode.String(), d, true})
	}
	var rows []DeepCacheRow
	for _, r := range runs {
		s := spec
		s.DeepCache = r.dc
		if !r.tg {
			s.Gate.Mode = gate.Off
		}
		rep, err := Count(model, s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.name, err)
		}
		rows = append(rows, DeepCacheRow{Name: r.name, Report: rep})
	}
	return rows, nil
}
