package cpu

import (
	"github.com/tgate-web/tgate/backend"
)

// MatMul computes a·b (+ bias) over the last two dimensions, broadcasting
// b's batch dimensions (aligned at the right, each equal to a's or 1) over
// a's. Where the assembly micro-kernel is available (amd64 with AVX2 and
// FMA) it runs the blocked GEMM of gemm.go: float32 fused multiply-adds
// over K blocks of gemmKC, the blocks and the bias summed in float64.
// Elsewhere both operands are packed so that every dot product reads two
// K-contiguous rows and the dot products accumulate in float64.
func (b *Backend) MatMul(x, y, bias backend.Tensor, opt backend.MatMulOpts) backend.Tensor {
	a, w, bs := get("MatMul", x), get("MatMul", y), getOpt("MatMul", bias)
	g, err := backend.MatMulShape(a.shape, w.shape, shapeOf(bs), opt)
	if err != nil {
		panic("cpu: " + err.Error())
	}
	aBatch, bBatch, M, N, K := g.Batch, g.BBatch, g.M, g.N, g.K
	off := len(aBatch) - len(bBatch)
	out := b.alloc(g.Out)
	nBatch := aBatch.Numel()
	if nBatch == 0 || M == 0 || N == 0 {
		return out
	}

	ad, wd := a.data(), w.data()
	nb := bBatch.Numel()
	// bIndex maps an a batch index to the b batch it multiplies.
	bIndex := make([]int, nBatch)
	for i := range bIndex {
		rem, bi, stride := i, 0, 1
		for d := len(aBatch) - 1; d >= off; d-- {
			idx := rem % aBatch[d]
			rem /= aBatch[d]
			bd := bBatch[d-off]
			if bd != 1 {
				bi += idx * stride
			}
			stride *= bd
		}
		bIndex[i] = bi
	}
	var colBias []float32
	if bs != nil {
		colBias = bs.data()
	}
	od := out.data()
	if haveKernel {
		ars, acs := K, 1
		if opt.TransA {
			ars, acs = 1, M
		}
		brs, bcs := K, 1
		if !opt.TransB {
			brs, bcs = 1, N
		}
		matmulBlocked(od, ad, wd, nBatch, nb, bIndex, M, N, K, ars, acs, brs, bcs, colBias)
		return out
	}
	// Pack a as [batch][M][K] and b as [bBatch][N][K].
	if opt.TransA {
		ad = transposeBatches(ad, nBatch, K, M)
	}
	if !opt.TransB {
		wd = transposeBatches(wd, nb, K, N)
	}
	mTiles, nTiles, nbCols := tiling(M, N, K)
	perBatch := mTiles * nTiles
	parallelFor(nBatch*perBatch, tileRows*nbCols*max(K, 1), func(lo, hi int) {
		for task := lo; task < hi; task++ {
			bi, t := task/perBatch, task%perBatch
			i0 := (t / nTiles) * tileRows
			j0 := (t % nTiles) * nbCols
			gemmTile(od[bi*M*N:], N,
				ad[bi*M*K:], K,
				wd[bIndex[bi]*N*K:], K, K,
				i0, min(i0+tileRows, M), j0, min(j0+nbCols, N), nil, colBias)
		}
	})
	return out
}

// transposeBatches returns n matrices [rows][cols] stored one after another
// in src, each transposed to [cols][rows].
func transposeBatches(src []float32, n, rows, cols int) []float32 {
	dst := make([]float32, n*rows*cols)
	parallelFor(n*rows, cols, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			bi, i := r/rows, r%rows
			s := src[r*cols : (r+1)*cols]
			d := dst[bi*rows*cols:]
			for j, v := range s {
				d[j*rows+i] = v
			}
		}
	})
	return dst
}

// tileRows is the number of output rows one gemm task computes.
const tileRows = 8

// tiling splits an M×N output into tiles of tileRows rows and nb columns,
// choosing nb so the nb packed rows of length K (the part of b a tile
// reads for every row) stay within about 64 KiB of cache.
func tiling(M, N, K int) (mTiles, nTiles, nb int) {
	nb = (64 << 10) / (4 * max(K, 1))
	nb = max(4, min(nb, 256)) &^ 3
	nb = min(nb, N)
	return (M + tileRows - 1) / tileRows, (N + nb - 1) / nb, nb
}

// gemmTile computes c[i][j] = Σ_k a[i][k]·bt[j][k] (+ rowBias[i]) (+
// colBias[j]) for i in [i0, i1) and j in [j0, j1), with row strides ldc,
// lda and ldb. Products and sums are float64; two rows and four columns
// are computed together so each loaded value feeds several products.
func gemmTile(c []float32, ldc int, a []float32, lda int, bt []float32, ldb int, K, i0, i1, j0, j1 int, rowBias, colBias []float32) {
	rb := func(i int) float64 {
		if rowBias == nil {
			return 0
		}
		return float64(rowBias[i])
	}
	cb := func(j int) float64 {
		if colBias == nil {
			return 0
		}
		return float64(colBias[j])
	}
	i := i0
	for ; i+2 <= i1; i += 2 {
		a0 := a[i*lda : i*lda+K]
		a1 := a[(i+1)*lda : (i+1)*lda+K]
		c0 := c[i*ldc : i*ldc+j1]
		c1 := c[(i+1)*ldc : (i+1)*ldc+j1]
		r0, r1 := rb(i), rb(i+1)
		j := j0
		for ; j+4 <= j1; j += 4 {
			s := dot2x4(a0, a1, bt[j*ldb:j*ldb+K], bt[(j+1)*ldb:(j+1)*ldb+K], bt[(j+2)*ldb:(j+2)*ldb+K], bt[(j+3)*ldb:(j+3)*ldb+K])
			for q := 0; q < 4; q++ {
				bq := cb(j + q)
				c0[j+q] = float32(s[q] + r0 + bq)
				c1[j+q] = float32(s[4+q] + r1 + bq)
			}
		}
		for ; j < j1; j++ {
			bj := bt[j*ldb : j*ldb+K]
			c0[j] = float32(dot(a0, bj) + r0 + cb(j))
			c1[j] = float32(dot(a1, bj) + r1 + cb(j))
		}
	}
	for ; i < i1; i++ {
		ai := a[i*lda : i*lda+K]
		ci := c[i*ldc : i*ldc+j1]
		ri := rb(i)
		for j := j0; j < j1; j++ {
			ci[j] = float32(dot(ai, bt[j*ldb:j*ldb+K]) + ri + cb(j))
		}
	}
}

// dot returns Σ a[k]·b[k] accumulated in float64, four partial sums at a
// time.
func dot(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	k := 0
	for ; k+4 <= len(a); k += 4 {
		s0 += float64(a[k]) * float64(b[k])
		s1 += float64(a[k+1]) * float64(b[k+1])
		s2 += float64(a[k+2]) * float64(b[k+2])
		s3 += float64(a[k+3]) * float64(b[k+3])
	}
	for ; k < len(a); k++ {
		s0 += float64(a[k]) * float64(b[k])
	}
	return (s0 + s1) + (s2 + s3)
}

// dot2x4 returns the eight dot products of rows a0, a1 with rows b0..b3,
// as [a0·b0, a0·b1, a0·b2, a0·b3, a1·b0, ..., a1·b3], in float64.
func dot2x4(a0, a1, b0, b1, b2, b3 []float32) [8]float64 {
	n := len(a0)
	a1, b0, b1, b2, b3 = a1[:n], b0[:n], b1[:n], b2[:n], b3[:n]
	var s00, s01, s02, s03, s10, s11, s12, s13 float64
	for k := 0; k < n; k++ {
		x0, x1 := float64(a0[k]), float64(a1[k])
		y := float64(b0[k])
		s00 += x0 * y
		s10 += x1 * y
		y = float64(b1[k])
		s01 += x0 * y
		s11 += x1 * y
		y = float64(b2[k])
		s02 += x0 * y
		s12 += x1 * y
		y = float64(b3[k])
		s03 += x0 * y
		s13 += x1 * y
	}
	return [8]float64{s00, s01, s02, s03, s10, s11, s12, s13}
}
