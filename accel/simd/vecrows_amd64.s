//go:build amd64 && !purego

#include "textflag.h"

// func dotRowsAVX512(x, a, out unsafe.Pointer, blocks, rows, lda, add int)
// out[j] = Σ_c x[c]·a[j·lda + c] (+ out[j] when add != 0) for j < rows,
// c < 16·blocks.
TEXT ·dotRowsAVX512(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ a+8(FP), DX
	MOVQ out+16(FP), DI
	MOVQ blocks+24(FP), CX
	MOVQ rows+32(FP), R8
	MOVQ lda+40(FP), R9
	SHLQ $2, R9
	MOVQ add+48(FP), R13

dotrow:
	TESTQ R8, R8
	JZ   dotdone
	VXORPS Z0, Z0, Z0
	VXORPS Z2, Z2, Z2
	MOVQ SI, R10
	MOVQ DX, R11
	MOVQ CX, R12

dotpair:
	CMPQ R12, $2
	JLT  dotone
	VMOVUPS (R10), Z1
	VFMADD231PS (R11), Z1, Z0
	VMOVUPS 64(R10), Z3
	VFMADD231PS 64(R11), Z3, Z2
	ADDQ $128, R10
	ADDQ $128, R11
	SUBQ $2, R12
	JMP  dotpair

dotone:
	TESTQ R12, R12
	JZ   dotsum
	VMOVUPS (R10), Z1
	VFMADD231PS (R11), Z1, Z0

dotsum:
	VADDPS Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	TESTQ R13, R13
	JZ   dotstore
	VADDSS (DI), X0, X0

dotstore:
	VMOVSS X0, (DI)
	ADDQ $4, DI
	ADDQ R9, DX
	DECQ R8
	JMP  dotrow

dotdone:
	VZEROUPPER
	RET

// func axpyRowsAVX512(alpha, a, y unsafe.Pointer, blocks, rows, lda int)
// y[c] += Σ_j alpha[j]·a[j·lda + c] for j < rows, c < 16·blocks.
TEXT ·axpyRowsAVX512(SB), NOSPLIT, $0-48
	MOVQ alpha+0(FP), SI
	MOVQ a+8(FP), DX
	MOVQ y+16(FP), DI
	MOVQ blocks+24(FP), CX
	MOVQ rows+32(FP), R8
	MOVQ lda+40(FP), R9
	SHLQ $2, R9

	// Four column blocks at a time: four independent chains.
axquad:
	CMPQ CX, $4
	JLT  axone
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	MOVQ SI, R10
	MOVQ DX, R11
	MOVQ R8, R12

axquadrow:
	TESTQ R12, R12
	JZ   axquadstore
	VBROADCASTSS (R10), Z4
	VFMADD231PS (R11), Z4, Z0
	VFMADD231PS 64(R11), Z4, Z1
	VFMADD231PS 128(R11), Z4, Z2
	VFMADD231PS 192(R11), Z4, Z3
	ADDQ $4, R10
	ADDQ R9, R11
	DECQ R12
	JMP  axquadrow

axquadstore:
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ $256, DI
	ADDQ $256, DX
	SUBQ $4, CX
	JMP  axquad

axone:
	TESTQ CX, CX
	JZ   axdone
	VMOVUPS (DI), Z0
	MOVQ SI, R10
	MOVQ DX, R11
	MOVQ R8, R12

axonerow:
	TESTQ R12, R12
	JZ   axonestore
	VBROADCASTSS (R10), Z4
	VFMADD231PS (R11), Z4, Z0
	ADDQ $4, R10
	ADDQ R9, R11
	DECQ R12
	JMP  axonerow

axonestore:
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	ADDQ $64, DX
	DECQ CX
	JMP  axone

axdone:
	VZEROUPPER
	RET

// func dotColsAVX512(x, a, out unsafe.Pointer, blocks, rows, lda, add int)
// out[j] = Σ_c x[c]·a[c·lda + j] (+ out[j] when add != 0) for
// j < 16·blocks, c < rows: broadcast multiply-adds down the columns, no
// horizontal sums. Four rows at a time into four accumulators (four
// independent chains), summed at the end of each column block.
TEXT ·dotColsAVX512(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ a+8(FP), DX
	MOVQ out+16(FP), DI
	MOVQ blocks+24(FP), CX
	MOVQ rows+32(FP), R8
	MOVQ lda+40(FP), R9
	SHLQ $2, R9
	MOVQ add+48(FP), R13
	LEAQ (R9)(R9*2), R14 // 3·lda bytes

dcblock:
	TESTQ CX, CX
	JZ   dcdone
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	MOVQ SI, R10
	MOVQ DX, R11
	MOVQ R8, R12

dcquad:
	CMPQ R12, $4
	JLT  dcone
	VBROADCASTSS (R10), Z4
	VBROADCASTSS 4(R10), Z5
	VBROADCASTSS 8(R10), Z6
	VBROADCASTSS 12(R10), Z7
	VFMADD231PS (R11), Z4, Z0
	VFMADD231PS (R11)(R9*1), Z5, Z1
	VFMADD231PS (R11)(R9*2), Z6, Z2
	VFMADD231PS (R11)(R14*1), Z7, Z3
	ADDQ $16, R10
	LEAQ (R11)(R9*4), R11
	SUBQ $4, R12
	JMP  dcquad

dcone:
	TESTQ R12, R12
	JZ   dcsum
	VBROADCASTSS (R10), Z4
	VFMADD231PS (R11), Z4, Z0
	ADDQ $4, R10
	ADDQ R9, R11
	DECQ R12
	JMP  dcone

dcsum:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	TESTQ R13, R13
	JZ   dcstore
	VADDPS (DI), Z0, Z0

dcstore:
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	ADDQ $64, DX
	DECQ CX
	JMP  dcblock

dcdone:
	VZEROUPPER
	RET

// func prefetchLines(p unsafe.Pointer, lines int)
// Hints that the lines cache lines from p will be read soon.
TEXT ·prefetchLines(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), SI
	MOVQ lines+8(FP), CX

pfloop:
	TESTQ CX, CX
	JZ   pfdone
	PREFETCHT0 (SI)
	ADDQ $64, SI
	DECQ CX
	JMP  pfloop

pfdone:
	RET
