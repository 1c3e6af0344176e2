package sched

import (
	"math"
	"testing"
)

// npArangeRef is np.arange(start, stop, step) for float arguments as NumPy
// 1.24 builds it (ctors.c PyArray_ArangeObj, _calc_length and the DOUBLE
// fill of arraytypes.c.src): length ceil((stop − start)/step), a[0] =
// start, a[1] = start + step, and a[i] = start + i·(a[1] − a[0]) for
// i ≥ 2. The difference a[1] − a[0] is not always step itself, which
// decides the rounding of values that are meant to end in .5.
func npArangeRef(start, stop, step float64) []float64 {
	n := int(math.Ceil((stop - start) / step))
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		switch i {
		case 0:
			out = append(out, start)
		case 1:
			out = append(out, start+step)
		default:
			out = append(out, start+float64(i)*(out[1]-out[0]))
		}
	}
	return out
}

// trailingRef is the trailing spacing of DDIM/Euler/EulerAncestral
// set_timesteps: np.arange(T, 0, −T/N).round() − 1 (round half to even),
// descending.
func trailingRef(T, N int) []float64 {
	a := npArangeRef(float64(T), 0, -float64(T)/float64(N))
	for i, v := range a {
		a[i] = math.RoundToEven(v) - 1
	}
	return a
}

// TestTrailingSpacingNumpyArange checks the trailing timesteps of every
// scheduler against np.arange's construction for step counts where the
// naive T − k·T/N lands on a different side of a .5 than NumPy's
// start + k·((T − T/N) − T): N = 48 gives 937.4999999999999 at k = 3
// (rounded to 937, timestep 936) where T − 3·T/N is exactly 937.5
// (rounded to 938). N = 96 errs the other way at k = 18 (812.5000000000007,
// timestep 812).
func TestTrailingSpacingNumpyArange(t *testing.T) {
	cfg := sd15Config(t)
	// Published spot values derived above, independent of the reference
	// transcription.
	if got := trailingRef(1000, 48)[3]; got != 936 {
		t.Fatalf("reference transcription: N=48 k=3 gives %v, want 936", got)
	}
	if got := trailingRef(1000, 96)[18]; got != 812 {
		t.Fatalf("reference transcription: N=96 k=18 gives %v, want 812", got)
	}
	for _, n := range []int{2, 3, 4, 7, 10, 25, 48, 96, 112, 240} {
		want := trailingRef(1000, n)
		opt := Options{TimestepSpacing: "trailing"}
		for _, name := range []Name{DDIM, Euler, EulerAncestral} {
			s := timestepsFor(t, name, cfg, opt, n)
			sameF64(t, string(name)+" trailing", s.Timesteps(), want, 0)
		}
		// PNDM lists _timesteps ascending and repeats the second-to-last
		// ascending entry (the PLMS warm-up).
		asc := reversedFloats(want)
		var plms []float64
		plms = append(plms, asc[:len(asc)-1]...)
		if len(asc) >= 2 {
			plms = append(plms, asc[len(asc)-2])
		}
		plms = append(plms, asc[len(asc)-1])
		sameF64(t, "pndm trailing", timestepsFor(t, PNDM, cfg, opt, n).Timesteps(), reversedFloats(plms), 0)
		// DPM-Solver: np.arange(last_timestep, 0, −T/N).round() − 1 with
		// last_timestep = T when lambda_min_clipped is −inf.
		sameF64(t, "dpm trailing", timestepsFor(t, DPMSolver, cfg, opt, n).Timesteps(), want, 0)
	}
}
