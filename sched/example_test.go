package sched_test

import (
	"fmt"

	"github.com/tgate-web/tgate/rng"
	"github.com/tgate-web/tgate/sched"
)

// A text-to-image loop on the host: latents from the seeded generator,
// scaled by init_noise_sigma, then one Step per denoiser evaluation. The
// same generator keeps feeding the scheduler's per-step noise.
func Example() {
	cfg, err := sched.ParseConfig([]byte(`{"_class_name": "PNDMScheduler", "beta_start": 0.00085,
		"beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1, "set_alpha_to_one": false}`))
	if err != nil {
		panic(err)
	}
	name, _ := sched.ParseName("euler-a")
	gen := rng.NewTorch(42)
	s, err := sched.New(name, cfg, sched.Options{Noise: gen})
	if err != nil {
		panic(err)
	}
	if err := s.SetTimesteps(4); err != nil {
		panic(err)
	}
	x := gen.Randn(1 * 4 * 8 * 8)
	for i := range x {
		x[i] *= s.InitNoiseSigma()
	}
	for i, t := range s.Timesteps() {
		in := s.ScaleModelInput(x, i)
		eps := make([]float32, len(in)) // the denoiser's output at timestep t would go here
		_ = t
		r, err := s.Step(eps, x, i)
		if err != nil {
			panic(err)
		}
		x = r.Prev
	}
	fmt.Println(s.Timesteps())
	// Output: [999 666 333 0]
}
