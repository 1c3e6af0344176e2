package sched

// term is one coefficient·value of a linear combination.
type term[V any] struct {
	c float32
	v V
}

func tm[V any](c float32, v V) term[V] { return term[V]{c, v} }

// lin returns Σ c·v over the terms with a non-zero coefficient (at least
// one term is always kept, so the result has the latent shape).
func lin[V any](ops Ops[V], terms ...term[V]) V {
	cs := make([]float32, 0, len(terms))
	vs := make([]V, 0, len(terms))
	for _, t := range terms {
		if t.c != 0 {
			cs = append(cs, t.c)
			vs = append(vs, t.v)
		}
	}
	if len(vs) == 0 {
		cs = append(cs, 0)
		vs = append(vs, terms[0].v)
	}
	return ops.LinComb(cs, vs...)
}
