package cpu

import "sync"

// The blocked GEMM used by MatMul and Conv2D where an assembly micro-kernel
// is available (haveKernel). A is read in place in panels of gemmMR rows
// when its rows are K-contiguous (packed otherwise); B (given as N rows of
// K, i.e. Bᵀ) is packed into panels of gemmNR columns; both are split along
// K into blocks of at most gemmKC. The micro-kernel multiplies one A panel
// by one B panel over one K block, summing the products of each output in
// float32 fused multiply-adds, and stores or adds the block's sum to a
// float64 accumulator; the K blocks are therefore summed in float64, as are
// the bias terms. Compared with the all-float64 gemmTile, each output's
// rounding error grows with gemmKC rather than K: at most about gemmKC
// float32 roundings of Σ|a·b|, typically a few (gemm_test.go checks
// 4e-6·Σ|a·b|).
const (
	gemmMR = 6   // rows of A per micro-kernel call
	gemmNR = 16  // columns of B per micro-kernel call
	gemmKC = 256 // K block: the float32 partial sums cover at most this many products
	gemmMC = 48  // rows of a task's block (a multiple of gemmMR)
	gemmNC = 256 // columns of a task's block (a multiple of gemmNR)
)

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// packPanels packs the n×K matrix whose element (i, k) is src[i·rs+k·cs]
// into dst for the micro-kernel, with panels of R rows (R = gemmMR or
// gemmNR) and rows from n up to the next multiple of R set to zero. The
// K block starting at k0, of length kl, starts at dst[k0·roundUp(n, R)];
// within it panel p starts at p·R·kl and holds element (p·R+r, k0+k) at
// k·R+r. dst needs roundUp(n, R)·K elements.
func packPanels(dst, src []float32, n, K, rs, cs, R int) {
	npad := roundUp(n, R)
	panels := npad / R
	kBlocks := (K + gemmKC - 1) / gemmKC
	parallelFor(kBlocks*panels, R*min(K, gemmKC), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			kb, p := t/panels, t%panels
			k0 := kb * gemmKC
			kl := min(gemmKC, K-k0)
			pan := dst[k0*npad+p*R*kl:][:R*kl]
			i0 := p * R
			rows := min(R, n-i0)
			if rs == 1 {
				// Rows are contiguous for a fixed k: copy runs of R.
				for k := 0; k < kl; k++ {
					d := pan[k*R : k*R+R]
					s := src[i0+(k0+k)*cs:][:rows]
					copy(d, s)
					clear(d[rows:])
				}
				continue
			}
			if cs == 1 && rows == R {
				// R contiguous rows of K: read them side by side and write
				// the panel in order.
				for k := 0; k+4 <= kl; k += 4 {
					d := pan[k*R : k*R+4*R]
					s := src[i0*rs+k0+k:]
					for r := 0; r < R; r++ {
						v := s[r*rs : r*rs+4]
						d[r], d[R+r], d[2*R+r], d[3*R+r] = v[0], v[1], v[2], v[3]
					}
				}
				for k := kl &^ 3; k < kl; k++ {
					d := pan[k*R : k*R+R]
					s := src[i0*rs+k0+k:]
					for r := range d {
						d[r] = s[r*rs]
					}
				}
				continue
			}
			for r := 0; r < rows; r++ {
				s := src[(i0+r)*rs+k0*cs:]
				if cs == 1 {
					s = s[:kl]
					for k, v := range s {
						pan[k*R+r] = v
					}
				} else {
					for k := 0; k < kl; k++ {
						pan[k*R+r] = s[k*cs]
					}
				}
			}
			for r := rows; r < R; r++ {
				for k := 0; k < kl; k++ {
					pan[k*R+r] = 0
				}
			}
		}
	})
}

// aOperand is the A side of a blocked GEMM with M rows: either packed by
// packPanels (packed, mpad rows), or read in place (rows, row stride lda,
// k contiguous) in full panels of gemmMR rows, with the rows of a last
// partial panel copied into tail (gemmMR rows of lda = K, zero-padded).
type aOperand struct {
	packed []float32
	mpad   int

	rows []float32
	lda  int
	full int // panels read in place
	tail []float32
}

// newAOperand returns the A operand for the M×K matrix with element (i, k)
// at src[i·rs+k·cs]: read in place when k is contiguous, packed otherwise.
func newAOperand(src []float32, M, K, rs, cs int) aOperand {
	if cs != 1 || K == 0 {
		mpad := roundUp(M, gemmMR)
		ap := make([]float32, mpad*K)
		packPanels(ap, src, M, K, rs, cs, gemmMR)
		return aOperand{packed: ap, mpad: mpad}
	}
	o := aOperand{rows: src, lda: rs, full: M / gemmMR}
	if r := M % gemmMR; r != 0 {
		o.tail = make([]float32, gemmMR*K)
		for i := 0; i < r; i++ {
			copy(o.tail[i*K:(i+1)*K], src[(o.full*gemmMR+i)*rs:][:K])
		}
	}
	return o
}

// kernel adds A panel ip times the packed B panel bpan over the K block
// [k0, k0+kl) to the 6×16 float64 tile c (row stride ldc); the first K
// block (k0 = 0) stores instead of adding.
func (o *aOperand) kernel(ip, k0, kl int, bpan []float32, c []float64, ldc int) {
	set := k0 == 0
	switch {
	case o.packed != nil:
		microKernel(o.packed[k0*o.mpad+ip*gemmMR*kl:], bpan, kl, c, ldc, set)
	case ip < o.full:
		microKernelStrided(o.rows[ip*gemmMR*o.lda+k0:], o.lda, bpan, kl, c, ldc, set)
	default:
		microKernelStrided(o.tail[k0:], len(o.tail)/gemmMR, bpan, kl, c, ldc, set)
	}
}

// gemmPacked sets acc (row stride ldacc) to the products of A row panels
// [ip0, ip1) with B column panels [jp0, jp1), over all K: acc[i][j] =
// Σ_k A(ip0·gemmMR+i, k)·B(jp0·gemmNR+j, k). bp is packed by packPanels
// with npad rows. The B panel of each K block stays in L1 while it meets
// every A panel, and the A block in L2 across the B panels. With K = 0 acc
// is cleared.
func gemmPacked(a *aOperand, bp []float32, npad int, K, ip0, ip1, jp0, jp1 int, acc []float64, ldacc int) {
	if K == 0 {
		clear(acc)
	}
	for k0 := 0; k0 < K; k0 += gemmKC {
		kl := min(gemmKC, K-k0)
		bb := bp[k0*npad:]
		if a.packed == nil && jp1-jp0 <= 8 {
			// Few B panels (they fit in L2): take each in-place A panel
			// once, from wherever it is, through all of them.
			for ip := ip0; ip < ip1; ip++ {
				c := acc[(ip-ip0)*gemmMR*ldacc:]
				for jp := jp0; jp < jp1; jp++ {
					a.kernel(ip, k0, kl, bb[jp*gemmNR*kl:], c[(jp-jp0)*gemmNR:], ldacc)
				}
			}
			continue
		}
		for jp := jp0; jp < jp1; jp++ {
			bpan := bb[jp*gemmNR*kl:]
			c := acc[(jp-jp0)*gemmNR:]
			for ip := ip0; ip < ip1; ip++ {
				a.kernel(ip, k0, kl, bpan, c[(ip-ip0)*gemmMR*ldacc:], ldacc)
			}
		}
	}
}

// accPool recycles the float64 accumulator blocks of gemm tasks.
var accPool = sync.Pool{New: func() any {
	s := make([]float64, gemmMC*gemmNC)
	return &s
}}

// storeBlock writes c[i][j] = float32(acc[i-i0][j-j0] + rowBias[i] +
// colBias[j]) for i in [i0, i1), j in [j0, j1) (a nil bias adds nothing).
func storeBlock(c []float32, ldc int, acc []float64, ldacc, i0, i1, j0, j1 int, rowBias, colBias []float32) {
	if colBias != nil {
		colBias = colBias[j0:j1]
	}
	for i := i0; i < i1; i++ {
		rb := 0.0
		if rowBias != nil {
			rb = float64(rowBias[i])
		}
		storeRow(c[i*ldc+j0:i*ldc+j1], acc[(i-i0)*ldacc:][:j1-j0], rb, colBias)
	}
}

// storeRowGo is the portable storeRow.
func storeRowGo(dst []float32, src []float64, add float64, bias []float32) {
	src = src[:len(dst)]
	if bias == nil {
		for j, v := range src {
			dst[j] = float32(v + add)
		}
		return
	}
	bias = bias[:len(dst)]
	for j, v := range src {
		dst[j] = float32(v + add + float64(bias[j]))
	}
}

// storeBlockT is storeBlock for a transposed result: c[j][i] =
// float32(acc[i-i0][j-j0] + bias[i]) for i in [i0, i1), j in [j0, j1).
func storeBlockT(c []float32, ldc int, acc []float64, ldacc, i0, i1, j0, j1 int, bias []float32) {
	for i := i0; i < i1; i++ {
		a := acc[(i-i0)*ldacc:][:j1-j0]
		b := 0.0
		if bias != nil {
			b = float64(bias[i])
		}
		for j, v := range a {
			c[(j0+j)*ldc+i] = float32(v + b)
		}
	}
}

// matmulBlocked computes, for each of nBatch batches, c = A·Bᵀ (+ colBias)
// with A(i, k) = a[aOff(bi) + i·ars + k·acs] (M×K) and B(j, k) =
// b[bOff(bi) + j·brs + k·bcs] (N×K); c holds M×N per batch. b batches are
// picked by bIndex. The operand read in place is A, or B when it has many
// more rows than A and is K-contiguous (a Linear layer's weight against a
// short sequence): then the GEMM computes cᵀ = B·Aᵀ, packing only the
// smaller A, and stores the result transposed.
func matmulBlocked(c, a, b []float32, nBatch, nbBatch int, bIndex []int, M, N, K, ars, acs, brs, bcs int, colBias []float32) {
	swap := N >= 2*M && bcs == 1 && K > 0
	// The GEMM multiplies X (rows xr) by packed Y (rows yr).
	xr, yr, xData, yData, nx, ny := M, N, a, b, nBatch, nbBatch
	xrs, xcs, yrs, ycs := ars, acs, brs, bcs
	xIdx := func(bi int) int { return bi }
	yIdx := func(bi int) int { return bIndex[bi] }
	if swap {
		xr, yr, xData, yData, nx, ny = N, M, b, a, nbBatch, nBatch
		xrs, xcs, yrs, ycs = brs, bcs, ars, acs
		xIdx, yIdx = yIdx, xIdx
	}
	xpad, ypad := roundUp(xr, gemmMR), roundUp(yr, gemmNR)
	xs := make([]aOperand, nx)
	for bi := range xs {
		xs[bi] = newAOperand(xData[bi*xr*K:], xr, K, xrs, xcs)
	}
	yp := make([]float32, ny*ypad*K)
	for bi := 0; bi < ny; bi++ {
		packPanels(yp[bi*ypad*K:], yData[bi*yr*K:], yr, K, yrs, ycs, gemmNR)
	}
	mBlocks, nBlocks := (xpad+gemmMC-1)/gemmMC, (ypad+gemmNC-1)/gemmNC
	perBatch := mBlocks * nBlocks
	parallelFor(nBatch*perBatch, gemmMC*gemmNC*K, func(lo, hi int) {
		accp := accPool.Get().(*[]float64)
		acc := *accp
		for task := lo; task < hi; task++ {
			bi, t := task/perBatch, task%perBatch
			i0, j0 := (t/nBlocks)*gemmMC, (t%nBlocks)*gemmNC
			i1, j1 := min(i0+gemmMC, xpad), min(j0+gemmNC, ypad)
			gemmPacked(&xs[xIdx(bi)], yp[yIdx(bi)*ypad*K:], ypad, K,
				i0/gemmMR, i1/gemmMR, j0/gemmNR, j1/gemmNR, acc, gemmNC)
			if swap {
				storeBlockT(c[bi*M*N:], N, acc, gemmNC, i0, min(i1, xr), j0, min(j1, yr), colBias)
			} else {
				storeBlock(c[bi*M*N:], N, acc, gemmNC, i0, min(i1, xr), j0, min(j1, yr), nil, colBias)
			}
		}
		accPool.Put(accp)
	})
}
