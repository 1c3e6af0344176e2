// Package rng reproduces, bit for bit, the random streams that the
// reference Python stack draws its initial noise from: PyTorch's CPU
// generator (torch.Generator().manual_seed(s), torch.randn, torch.rand) and
// NumPy's legacy RandomState (np.random.RandomState(s).standard_normal).
//
// Both are built on the 32-bit Mersenne Twister MT19937 (Matsumoto and
// Nishimura 1998), seeded the way both libraries seed it (init_genrand).
// The normal-sampling algorithms on top are those of
// aten/src/ATen/native/cpu/DistributionTemplates.h and
// aten/src/ATen/core/DistributionsHelper.h (PyTorch 1.13) and numpy's
// legacy_gauss (numpy/random/src/legacy/legacy-distributions.c).
package rng

const (
	mtN         = 624
	mtM         = 397
	mtMatrixA   = 0x9908b0df
	mtUpperMask = 0x80000000
	mtLowerMask = 0x7fffffff
)

// MT19937 is the 32-bit Mersenne Twister. The zero value is not seeded; use
// NewMT19937 or Seed.
type MT19937 struct {
	state [mtN]uint32
	pos   int
}

// NewMT19937 returns a generator seeded with seed by init_genrand.
func NewMT19937(seed uint32) *MT19937 {
	m := &MT19937{}
	m.Seed(seed)
	return m
}

// Seed resets the state with the reference initialisation
// s[0] = seed, s[i] = 1812433253·(s[i−1] ⊕ (s[i−1] ≫ 30)) + i (mod 2³²).
func (m *MT19937) Seed(seed uint32) {
	m.state[0] = seed
	for i := 1; i < mtN; i++ {
		p := m.state[i-1]
		m.state[i] = 1812433253*(p^(p>>30)) + uint32(i)
	}
	m.pos = mtN
}

// twist regenerates the whole state block.
func (m *MT19937) twist() {
	s := &m.state
	for i := 0; i < mtN; i++ {
		y := (s[i] & mtUpperMask) | (s[(i+1)%mtN] & mtLowerMask)
		v := s[(i+mtM)%mtN] ^ (y >> 1)
		if y&1 != 0 {
			v ^= mtMatrixA
		}
		s[i] = v
	}
	m.pos = 0
}

// Uint32 returns the next tempered 32-bit output.
func (m *MT19937) Uint32() uint32 {
	if m.pos >= mtN {
		m.twist()
	}
	y := m.state[m.pos]
	m.pos++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}
