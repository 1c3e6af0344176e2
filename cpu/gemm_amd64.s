//go:build !purego

#include "textflag.h"

// func cpuidAsm(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuidAsm(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbvAsm() (eax uint32)
TEXT ·xgetbvAsm(SB), NOSPLIT, $0-4
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	RET

// STEP does the two multiply-adds of one A value (broadcast into Y2 or Y3)
// with the 16 B values in Y0, Y1.
#define STEP(off, bc, acc0, acc1) \
	VBROADCASTSS off(SI), bc \
	VFMADD231PS  Y0, bc, acc0 \
	VFMADD231PS  Y1, bc, acc1

#define KSTEP(aoff, boff) \
	VMOVUPS boff(DI), Y0 \
	VMOVUPS boff+32(DI), Y1 \
	STEP(aoff+0, Y2, Y4, Y5) \
	STEP(aoff+4, Y3, Y6, Y7) \
	STEP(aoff+8, Y2, Y8, Y9) \
	STEP(aoff+12, Y3, Y10, Y11) \
	STEP(aoff+16, Y2, Y12, Y13) \
	STEP(aoff+20, Y3, Y14, Y15)

// SET widens the 8 float32 sums of accumulator acc to float64 and stores
// them at off(DX).
#define SET(acc, xacc, off) \
	VCVTPS2PD    xacc, Y0 \
	VMOVUPD      Y0, off(DX) \
	VEXTRACTF128 $1, acc, X1 \
	VCVTPS2PD    X1, Y1 \
	VMOVUPD      Y1, off+32(DX)

// OUT adds (FLUSH) or stores (SET) all twelve accumulators to the 6×16
// float64 tile at DX, rows R8 bytes apart.
#define OUT(op) \
	op(Y4, X4, 0) \
	op(Y5, X5, 64) \
	ADDQ R8, DX \
	op(Y6, X6, 0) \
	op(Y7, X7, 64) \
	ADDQ R8, DX \
	op(Y8, X8, 0) \
	op(Y9, X9, 64) \
	ADDQ R8, DX \
	op(Y10, X10, 0) \
	op(Y11, X11, 64) \
	ADDQ R8, DX \
	op(Y12, X12, 0) \
	op(Y13, X13, 64) \
	ADDQ R8, DX \
	op(Y14, X14, 0) \
	op(Y15, X15, 64)

// FLUSH widens the 8 float32 sums of accumulator acc (X register xacc) to
// float64 and adds them to the 8 float64 at off(DX).
#define FLUSH(acc, xacc, off) \
	VCVTPS2PD    xacc, Y0 \
	VADDPD       off(DX), Y0, Y0 \
	VMOVUPD      Y0, off(DX) \
	VEXTRACTF128 $1, acc, X1 \
	VCVTPS2PD    X1, Y1 \
	VADDPD       off+32(DX), Y1, Y1 \
	VMOVUPD      Y1, off+32(DX)

// func kernel6x16(a, b *float32, kc int, c *float64, ldc int, set int)
//
// a: kc groups of 6 float32 (one packed A panel), b: kc groups of 16
// float32 (one packed B panel), kc >= 1. The 6×16 products are summed over
// k in float32 with fused multiply-adds, then widened and added to the
// float64 tile c (row stride ldc elements), or stored there when set is
// not 0.
TEXT ·kernel6x16(SB), NOSPLIT, $0-48
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ kc+16(FP), CX
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $3, R8

	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15

	MOVQ CX, BX
	SHRQ $2, BX
	JZ   tail

loop4:
	KSTEP(0, 0)
	KSTEP(24, 64)
	KSTEP(48, 128)
	KSTEP(72, 192)
	ADDQ $96, SI
	ADDQ $256, DI
	DECQ BX
	JNZ  loop4

tail:
	ANDQ $3, CX
	JZ   done

loop1:
	KSTEP(0, 0)
	ADDQ $24, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  loop1

done:
	CMPQ set+40(FP), $0
	JNE  doset
	OUT(FLUSH)
	VZEROUPPER
	RET

doset:
	OUT(SET)
	VZEROUPPER
	RET

#define STEPS(addr, bc, acc0, acc1) \
	VBROADCASTSS addr, bc \
	VFMADD231PS  Y0, bc, acc0 \
	VFMADD231PS  Y1, bc, acc1

#define KSTEPS(aoff, boff) \
	VMOVUPS boff(DI), Y0 \
	VMOVUPS boff+32(DI), Y1 \
	STEPS(aoff(SI), Y2, Y4, Y5) \
	STEPS(aoff(SI)(R9*1), Y3, Y6, Y7) \
	STEPS(aoff(SI)(R9*2), Y2, Y8, Y9) \
	STEPS(aoff(R10), Y3, Y10, Y11) \
	STEPS(aoff(R10)(R9*1), Y2, Y12, Y13) \
	STEPS(aoff(R10)(R9*2), Y3, Y14, Y15)

// func kernel6x16s(a *float32, lda int, b *float32, kc int, c *float64, ldc int, set int)
//
// kernel6x16 with A read in place: row r of the 6 is a[r·lda:], k
// contiguous.
TEXT ·kernel6x16s(SB), NOSPLIT, $0-56
	MOVQ a+0(FP), SI
	MOVQ lda+8(FP), R9
	SHLQ $2, R9
	MOVQ b+16(FP), DI
	MOVQ kc+24(FP), CX
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), R8
	SHLQ $3, R8
	LEAQ (SI)(R9*2), R10
	ADDQ R9, R10

	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15

	MOVQ CX, BX
	SHRQ $2, BX
	JZ   stail

sloop4:
	KSTEPS(0, 0)
	KSTEPS(4, 64)
	KSTEPS(8, 128)
	KSTEPS(12, 192)
	ADDQ $16, SI
	ADDQ $16, R10
	ADDQ $256, DI
	DECQ BX
	JNZ  sloop4

stail:
	ANDQ $3, CX
	JZ   sdone

sloop1:
	KSTEPS(0, 0)
	ADDQ $4, SI
	ADDQ $4, R10
	ADDQ $64, DI
	DECQ CX
	JNZ  sloop1

sdone:
	CMPQ set+48(FP), $0
	JNE  sdoset
	OUT(FLUSH)
	VZEROUPPER
	RET

sdoset:
	OUT(SET)
	VZEROUPPER
	RET

// func storeRowAsm(dst *float32, src *float64, n int, add float64)
//
// dst[j] = float32(src[j] + add) for j < n.
TEXT ·storeRowAsm(SB), NOSPLIT, $0-32
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSD add+24(FP), Y2
	MOVQ         CX, BX
	SHRQ         $3, BX
	JZ           rtail

rloop8:
	VADDPD    (SI), Y2, Y0
	VADDPD    32(SI), Y2, Y1
	VCVTPD2PSY Y0, X0
	VCVTPD2PSY Y1, X1
	VMOVUPS   X0, (DI)
	VMOVUPS   X1, 16(DI)
	ADDQ      $64, SI
	ADDQ      $32, DI
	DECQ      BX
	JNZ       rloop8

rtail:
	ANDQ $7, CX
	JZ   rdone

rloop1:
	VMOVSD   (SI), X0
	VADDSD   X2, X0, X0
	VCVTSD2SS X0, X0, X0
	VMOVSS   X0, (DI)
	ADDQ     $8, SI
	ADDQ     $4, DI
	DECQ     CX
	JNZ      rloop1

rdone:
	VZEROUPPER
	RET

// func storeRowBiasAsm(dst *float32, src *float64, bias *float32, n int)
//
// dst[j] = float32(src[j] + 0 + float64(bias[j])) for j < n.
TEXT ·storeRowBiasAsm(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ bias+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ CX, BX
	SHRQ $3, BX
	JZ   btail

bloop8:
	VCVTPS2PD (DX), Y2
	VCVTPS2PD 16(DX), Y3
	VADDPD    (SI), Y2, Y0
	VADDPD    32(SI), Y3, Y1
	VCVTPD2PSY Y0, X0
	VCVTPD2PSY Y1, X1
	VMOVUPS   X0, (DI)
	VMOVUPS   X1, 16(DI)
	ADDQ      $64, SI
	ADDQ      $32, DI
	ADDQ      $32, DX
	DECQ      BX
	JNZ       bloop8

btail:
	ANDQ $7, CX
	JZ   bdone

bloop1:
	VMOVSS    (DX), X2
	VCVTSS2SD X2, X2, X2
	VMOVSD    (SI), X0
	VADDSD    X2, X0, X0
	VCVTSD2SS X0, X0, X0
	VMOVSS    X0, (DI)
	ADDQ      $8, SI
	ADDQ      $4, DI
	ADDQ      $4, DX
	DECQ      CX
	JNZ       bloop1

bdone:
	VZEROUPPER
	RET
