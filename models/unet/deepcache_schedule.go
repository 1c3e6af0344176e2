package unet

import "fmt"

// DeepCacheSchedule drives a DeepCache through one denoising loop the way
// DeepCacheSDHelper's UNet wrapper does (horseee/DeepCache,
// DeepCache/extension/deepcache.py, skip_mode "uniform"), composed with
// T-GATE as TgateSDXLDeepCacheLoader does (HaozheLiu-ST/T-GATE,
// tgate/SDXL_DeepCache.py):
//
//   - cur_timestep is the index of the evaluation's timestep in the
//     scheduler's list (list.index: a repeated timestep maps to its first
//     occurrence); start_timestep is cur_timestep of the first evaluation
//     after the helper was enabled;
//   - an evaluation refreshes when (cur − start) % interval == 0;
//   - with T-GATE, before the evaluations at i − num_warmup_steps ==
//     gate_step − 1 and == gate_step the loader disables and re-enables
//     the helper: the cache is dropped and start_timestep reset, so both
//     are refreshes and the schedule restarts at gate_step;
//   - a stored feature is never replayed into another batch size (the
//     loader's rule made general): a batch change resets like the gate.
type DeepCacheSchedule struct {
	// Cache is the feature cache the evaluations use.
	Cache *DeepCache

	interval  int
	timesteps []float64
	warmup    int
	start     int // start_timestep; −1 before the first evaluation
}

// NewDeepCacheSchedule returns the schedule of a loop over timesteps with
// warmup scheduler warm-up evaluations (len(timesteps) − steps·order), for
// cache_interval interval (≥ 1) and cache_branch_id branch.
func NewDeepCacheSchedule(interval, branch int, timesteps []float64, warmup int) (*DeepCacheSchedule, error) {
	if interval < 1 {
		return nil, fmt.Errorf("deepcache: interval %d must be at least 1", interval)
	}
	c, err := NewDeepCache(branch)
	if err != nil {
		return nil, err
	}
	return &DeepCacheSchedule{Cache: c, interval: interval, timesteps: timesteps, warmup: warmup, start: -1}, nil
}

// timestepIndex is the helper's cur_timestep for evaluation i.
func (s *DeepCacheSchedule) timestepIndex(i int) int {
	for j, v := range s.timesteps {
		if v == s.timesteps[i] {
			return j
		}
	}
	return i
}

// Next sets Cache.Refresh for evaluation i, whose UNet batch is batch,
// with gateStep the T-GATE gate step in force (0 for none or not yet
// known), and returns Cache.
func (s *DeepCacheSchedule) Next(i, batch, gateStep int) *DeepCache {
	cur := s.timestepIndex(i)
	step := i - s.warmup
	forced := gateStep > 0 && (step == gateStep-1 || step == gateStep)
	if s.start < 0 || forced || (s.Cache.Stored() && s.Cache.StoredBatch() != batch) {
		s.start = cur
		s.Cache.Release()
	}
	s.Cache.Refresh = (cur-s.start)%s.interval == 0 || !s.Cache.Stored()
	return s.Cache
}
