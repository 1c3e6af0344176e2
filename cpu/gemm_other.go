//go:build !amd64 || purego

package cpu

// haveKernel is false where there is no assembly micro-kernel: MatMul and
// Conv2D use the portable float64 gemmTile.
const haveKernel = false

// microKernel is the portable equivalent of the amd64 kernel (never called
// when haveKernel is false; kept so the blocked driver compiles and can be
// tested everywhere).
func microKernel(a, b []float32, kc int, c []float64, ldc int, set bool) {
	var s [gemmMR * gemmNR]float32
	for k := 0; k < kc; k++ {
		ak := a[k*gemmMR : k*gemmMR+gemmMR]
		bk := b[k*gemmNR : k*gemmNR+gemmNR]
		for r, av := range ak {
			row := s[r*gemmNR : r*gemmNR+gemmNR]
			for j, bv := range bk {
				row[j] += av * bv
			}
		}
	}
	storeTile(&s, c, ldc, set)
}

// microKernelStrided is microKernel with A read in place: row r is
// a[r·lda:].
func microKernelStrided(a []float32, lda int, b []float32, kc int, c []float64, ldc int, set bool) {
	var s [gemmMR * gemmNR]float32
	for k := 0; k < kc; k++ {
		bk := b[k*gemmNR : k*gemmNR+gemmNR]
		for r := 0; r < gemmMR; r++ {
			av := a[r*lda+k]
			row := s[r*gemmNR : r*gemmNR+gemmNR]
			for j, bv := range bk {
				row[j] += av * bv
			}
		}
	}
	storeTile(&s, c, ldc, set)
}

// storeTile writes a kernel's MR×NR float32 sums into c (row stride ldc)
// as float64: set replaces, else adds.
func storeTile(s *[gemmMR * gemmNR]float32, c []float64, ldc int, set bool) {
	for r := 0; r < gemmMR; r++ {
		row := c[r*ldc : r*ldc+gemmNR]
		for j := range row {
			if set {
				row[j] = float64(s[r*gemmNR+j])
			} else {
				row[j] += float64(s[r*gemmNR+j])
			}
		}
	}
}

// storeRow sets dst[j] = float32(src[j] + add), or with bias not nil
// float32(src[j] + add + float64(bias[j])), for j < len(dst).
func storeRow(dst []float32, src []float64, add float64, bias []float32) {
	storeRowGo(dst, src, add, bias)
}
