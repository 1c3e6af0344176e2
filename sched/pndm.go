package sched

import "fmt"

// pndm is PNDMScheduler (scheduling_pndm.py; Liu et al. 2022,
// "Pseudo Numerical Methods for Diffusion Models on Manifolds"), with the
// pseudo Runge-Kutta warm-up (skip_prk_steps=false) or the PLMS warm-up
// that Stable Diffusion uses (skip_prk_steps=true). SD_SEMANTICS §8.4.
type pndm[V any] struct {
	base
	ops Ops[V]

	prkCount int // number of leading evaluations that are PRK steps
	counter  int
	ets      []V // kept model outputs (the last four)
	cur      V   // cur_sample
	haveCur  bool
	acc      V // cur_model_output (PRK accumulation)
	haveAcc  bool
}

// SetTimesteps builds the evaluation list: the ascending spacing list _ts,
// then with skip_prk_steps plms = concat(_ts[:-1], _ts[-2:-1], _ts[-1:])
// reversed (one timestep evaluated twice, N+1 evaluations), or the PRK
// list followed by _ts[:-3] reversed.
func (p *pndm[V]) SetTimesteps(n int) error {
	if err := p.checkN(n); err != nil {
		return err
	}
	desc, err := spacedTimesteps(p.p.TimestepSpacing, p.p.NumTrainTimesteps, n, p.p.StepsOffset, true)
	if err != nil {
		return err
	}
	ts := reversedFloats(desc) // ascending _timesteps
	var list []float64
	prk := 0
	if p.p.SkipPRKSteps {
		var asc []float64
		asc = append(asc, ts[:len(ts)-1]...)
		if len(ts) >= 2 {
			asc = append(asc, ts[len(ts)-2])
		}
		asc = append(asc, ts[len(ts)-1])
		list = reversedFloats(asc)
	} else {
		const order = 4
		if len(ts) < order {
			return fmt.Errorf("sched: PNDMScheduler with skip_prk_steps=false needs at least %d steps, got %d", order, n)
		}
		half := float64(p.p.NumTrainTimesteps / n / 2)
		var pk []float64
		for _, t := range ts[len(ts)-order:] {
			pk = append(pk, t, t+half)
		}
		// prk_timesteps[:-1].repeat(2)[1:-1], reversed
		var rep []float64
		for _, t := range pk[:len(pk)-1] {
			rep = append(rep, t, t)
		}
		rep = rep[1 : len(rep)-1]
		list = reversedFloats(rep)
		prk = len(list)
		list = append(list, reversedFloats(ts[:len(ts)-3])...)
	}
	if err := checkIntTimesteps(p.name, list, p.p.NumTrainTimesteps); err != nil {
		return err
	}
	p.Release()
	p.n, p.timesteps, p.prkCount = n, list, prk
	p.counter = 0
	p.resetSteps()
	return nil
}

// Release drops the kept model outputs and samples.
func (p *pndm[V]) Release() {
	for _, e := range p.ets {
		p.ops.Free(e)
	}
	p.ets = nil
	if p.haveCur {
		p.ops.Free(p.cur)
		p.haveCur = false
	}
	if p.haveAcc {
		p.ops.Free(p.acc)
		p.haveAcc = false
	}
}

func (p *pndm[V]) NoiseCoeffs(i int) (float32, float32) { return p.ddpmNoiseCoeffs(p.timestepInt(i)) }

func (p *pndm[V]) ScaleModelInput(sample V, i int) V { return p.ops.Keep(sample) }

func (p *pndm[V]) AddNoise(x, noise V, i int) V {
	a, b := p.NoiseCoeffs(i)
	return p.ops.LinComb([]float32{a, b}, x, noise)
}

// prevCoeffs returns (cs, ce) with _get_prev_sample(x, t, prev, e) =
// cs·x + ce·e for an ε-prediction e:
// x_prev = √(ᾱ_prev/ᾱ_t)·x − (ᾱ_prev − ᾱ_t)·e / (ᾱ_t·√(1−ᾱ_prev) + √(ᾱ_t(1−ᾱ_t)ᾱ_prev)).
// For v_prediction e is first replaced by √ᾱ_t·e + √(1−ᾱ_t)·x, which
// folds into the returned (cs, ce) as the coefficient of x and of the
// combined model output.
func (p *pndm[V]) prevCoeffs(t, prevT int) (cs, ce float32) {
	at := p.s.alphasCumprod[t]
	ap := p.alphaAt(prevT, p.finalAlpha())
	bt, bp := 1-at, 1-ap
	sc := sqrt32(ap / at)
	denom := at*sqrt32(bp) + sqrt32(at*bt*ap)
	k := (ap - at) / denom
	if p.p.PredictionType == "v_prediction" {
		return sc - k*sqrt32(bt), -k * sqrt32(at)
	}
	return sc, -k
}

// Step runs step_prk for the first PRK evaluations and step_plms after.
func (p *pndm[V]) Step(out, x V, i int) (Result[V], error) {
	var r Result[V]
	if err := p.beginStep(i, p.ops.Len(out), p.ops.Len(x)); err != nil {
		return r, err
	}
	var prev V
	var err error
	if p.counter < p.prkCount && !p.p.SkipPRKSteps {
		prev = p.stepPRK(out, x)
	} else {
		prev, err = p.stepPLMS(out, x, i)
		if err != nil {
			return r, err
		}
	}
	p.counter++
	return Result[V]{Prev: prev}, nil
}

// stepPRK is step_prk: four sub-steps per timestep restart from the saved
// sample and accumulate the RK4 weights 1/6, 1/3, 1/3, 1/6 of the model
// outputs; the first output of each group is also kept for PLMS.
func (p *pndm[V]) stepPRK(out, x V) V {
	T, n := p.p.NumTrainTimesteps, p.n
	diff := T / n / 2
	if p.counter%2 != 0 {
		diff = 0
	}
	prevT := int(p.timesteps[p.counter]) - diff
	t := int(p.timesteps[p.counter/4*4])
	e := out
	var tmp V
	haveTmp := false
	switch p.counter % 4 {
	case 0:
		p.setAcc(p.ops.LinComb([]float32{float32(1.0 / 6)}, out))
		p.ets = append(p.ets, p.ops.Keep(out))
		p.setCur(p.ops.Keep(x))
	case 1, 2:
		p.setAcc(p.ops.LinComb([]float32{1, float32(1.0 / 3)}, p.acc, out))
	case 3:
		tmp = p.ops.LinComb([]float32{1, float32(1.0 / 6)}, p.acc, out)
		haveTmp = true
		e = tmp
		p.ops.Free(p.acc)
		p.haveAcc = false
	}
	base := x
	if p.haveCur {
		base = p.cur
	}
	cs, ce := p.prevCoeffs(t, prevT)
	prev := p.ops.LinComb([]float32{cs, ce}, base, e)
	if haveTmp {
		p.ops.Free(tmp)
	}
	return prev
}

func (p *pndm[V]) setAcc(v V) {
	if p.haveAcc {
		p.ops.Free(p.acc)
	}
	p.acc, p.haveAcc = v, true
}

func (p *pndm[V]) setCur(v V) {
	if p.haveCur {
		p.ops.Free(p.cur)
	}
	p.cur, p.haveCur = v, true
}

// stepPLMS is step_plms: the linear multistep combination of the kept
// model outputs (Adams-Bashforth weights of order 1 to 4), with the
// warm-up that steps twice from the first timestep.
func (p *pndm[V]) stepPLMS(out, x V, i int) (V, error) {
	var zero V
	if !p.p.SkipPRKSteps && len(p.ets) < 3 {
		return zero, fmt.Errorf("sched: PNDMScheduler: PLMS step before the PRK warm-up finished")
	}
	r := p.p.NumTrainTimesteps / p.n
	t := int(p.timesteps[i])
	prevT := t - r
	if p.counter != 1 {
		if len(p.ets) > 3 {
			for _, e := range p.ets[:len(p.ets)-3] {
				p.ops.Free(e)
			}
			p.ets = append([]V(nil), p.ets[len(p.ets)-3:]...)
		}
		p.ets = append(p.ets, p.ops.Keep(out))
	} else {
		prevT = t
		t = t + r
	}
	sample := x
	// weights of (out, ets[-1], ets[-2], ...) in the combined output.
	var terms []term[V]
	switch {
	case len(p.ets) == 1 && p.counter == 0:
		terms = []term[V]{tm(1, out)}
		p.setCur(p.ops.Keep(x))
	case len(p.ets) == 1 && p.counter == 1:
		terms = []term[V]{tm(0.5, out), tm(0.5, p.ets[0])}
		if !p.haveCur {
			return zero, fmt.Errorf("sched: PNDMScheduler: PLMS state lost its sample")
		}
		sample = p.cur
	case len(p.ets) == 2:
		e := p.ets
		terms = []term[V]{tm(1.5, e[1]), tm(-0.5, e[0])}
	case len(p.ets) == 3:
		e := p.ets
		terms = []term[V]{tm(float32(23.0/12), e[2]), tm(float32(-16.0/12), e[1]), tm(float32(5.0/12), e[0])}
	default:
		e := p.ets
		terms = []term[V]{tm(float32(55.0/24), e[3]), tm(float32(-59.0/24), e[2]), tm(float32(37.0/24), e[1]), tm(float32(-9.0/24), e[0])}
	}
	cs, ce := p.prevCoeffs(t, prevT)
	all := []term[V]{tm(cs, sample)}
	for _, tt := range terms {
		all = append(all, tm(ce*tt.c, tt.v))
	}
	prev := lin(p.ops, all...)
	if len(p.ets) == 1 && p.counter == 1 && p.haveCur {
		// cur_sample = None after the repeated step.
		p.ops.Free(p.cur)
		p.haveCur = false
	}
	return prev, nil
}
