//go:build !purego

package cpu

// kernel6x16 is the AVX2/FMA micro-kernel of gemm_amd64.s: c[r][j] +=
// float64(Σ_k a[k·6+r]·b[k·16+j]) for r < 6, j < 16, the sum over k in
// float32 fused multiply-adds. c's rows are ldc float64 apart. When set
// is not 0 the sums are stored in c instead (c's old values are ignored).
//
//go:noescape
func kernel6x16(a, b *float32, kc int, c *float64, ldc int, set int)

func cpuidAsm(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
func xgetbvAsm() (eax uint32)

// haveKernel reports whether the CPU and OS support AVX2 and FMA, which
// kernel6x16 needs.
var haveKernel = func() bool {
	maxID, _, _, _ := cpuidAsm(0, 0)
	if maxID < 7 {
		return false
	}
	_, _, ecx1, _ := cpuidAsm(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false
	}
	if xgetbvAsm()&6 != 6 { // the OS saves XMM and YMM state
		return false
	}
	_, ebx7, _, _ := cpuidAsm(7, 0)
	return ebx7&(1<<5) != 0 // AVX2
}()

// microKernel runs kernel6x16 on the first elements of the slices.
func microKernel(a, b []float32, kc int, c []float64, ldc int, set bool) {
	_ = a[kc*gemmMR-1]
	_ = b[kc*gemmNR-1]
	_ = c[(gemmMR-1)*ldc+gemmNR-1]
	kernel6x16(&a[0], &b[0], kc, &c[0], ldc, b2i(set))
}

// kernel6x16s is kernel6x16 reading A in place: row r is a[r·lda:].
//
//go:noescape
func kernel6x16s(a *float32, lda int, b *float32, kc int, c *float64, ldc int, set int)

// microKernelStrided runs kernel6x16s on the first elements of the slices.
func microKernelStrided(a []float32, lda int, b []float32, kc int, c []float64, ldc int, set bool) {
	_ = a[(gemmMR-1)*lda+kc-1]
	_ = b[kc*gemmNR-1]
	_ = c[(gemmMR-1)*ldc+gemmNR-1]
	kernel6x16s(&a[0], lda, &b[0], kc, &c[0], ldc, b2i(set))
}

//go:noescape
func storeRowAsm(dst *float32, src *float64, n int, add float64)

//go:noescape
func storeRowBiasAsm(dst *float32, src *float64, bias *float32, n int)

// storeRow sets dst[j] = float32(src[j] + add), or with bias not nil
// float32(src[j] + add + float64(bias[j])), for j < len(dst).
func storeRow(dst []float32, src []float64, add float64, bias []float32) {
	n := len(dst)
	if n == 0 {
		return
	}
	_ = src[n-1]
	if bias == nil {
		storeRowAsm(&dst[0], &src[0], n, add)
		return
	}
	if add != 0 || !haveKernel {
		storeRowGo(dst, src, add, bias)
		return
	}
	_ = bias[n-1]
	storeRowBiasAsm(&dst[0], &src[0], &bias[0], n)
}
