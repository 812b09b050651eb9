#include "textflag.h"

// Constants of expShiftAVX512 (float32 bit patterns): log2(e), the two
// parts of ln2 for Cody–Waite reduction, the Cephes expf polynomial, 1,
// and the input clamp [-110, 88.7].
DATA expc<>+0(SB)/4, $0x3fb8aa3b
DATA expc<>+4(SB)/4, $0x3f318000
DATA expc<>+8(SB)/4, $0xb95e8083
DATA expc<>+12(SB)/4, $0x39506967
DATA expc<>+16(SB)/4, $0x3ab743ce
DATA expc<>+20(SB)/4, $0x3c088908
DATA expc<>+24(SB)/4, $0x3d2aa9c1
DATA expc<>+28(SB)/4, $0x3e2aaaaa
DATA expc<>+32(SB)/4, $0x3f000000
DATA expc<>+36(SB)/4, $0x3f800000
DATA expc<>+40(SB)/4, $0xc2dc0000
DATA expc<>+44(SB)/4, $0x42b16666
GLOBL expc<>(SB), RODATA|NOPTR, $48

// func expShiftAVX512(dst, src *float32, n int, m float32)
// dst[i] = exp(src[i] - m) for n a multiple of 16: x = n·ln2 + r with n
// rounded to nearest, the degree-6 polynomial in r, then VSCALEFPS by 2^n
// (which takes the clamped low end to 0).
TEXT ·expShiftAVX512(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS m+24(FP), Z31
	VBROADCASTSS expc<>+0(SB), Z30
	VBROADCASTSS expc<>+4(SB), Z29
	VBROADCASTSS expc<>+8(SB), Z28
	VBROADCASTSS expc<>+12(SB), Z27
	VBROADCASTSS expc<>+16(SB), Z26
	VBROADCASTSS expc<>+20(SB), Z25
	VBROADCASTSS expc<>+24(SB), Z24
	VBROADCASTSS expc<>+28(SB), Z23
	VBROADCASTSS expc<>+32(SB), Z22
	VBROADCASTSS expc<>+36(SB), Z21
	VBROADCASTSS expc<>+40(SB), Z20
	VBROADCASTSS expc<>+44(SB), Z19

loop:
	CMPQ CX, $16
	JL   done
	VMOVUPS (SI), Z0
	VSUBPS  Z31, Z0, Z0
	VMAXPS  Z20, Z0, Z0
	VMINPS  Z19, Z0, Z0
	VMULPS  Z30, Z0, Z1
	VRNDSCALEPS $0, Z1, Z1
	VFNMADD231PS Z29, Z1, Z0
	VFNMADD231PS Z28, Z1, Z0
	VMOVAPS Z27, Z2
	VFMADD213PS Z26, Z0, Z2
	VFMADD213PS Z25, Z0, Z2
	VFMADD213PS Z24, Z0, Z2
	VFMADD213PS Z23, Z0, Z2
	VFMADD213PS Z22, Z0, Z2
	VMULPS  Z0, Z0, Z3
	VFMADD213PS Z0, Z3, Z2
	VADDPS  Z21, Z2, Z2
	VSCALEFPS Z1, Z2, Z2
	VMOVUPS Z2, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     loop

done:
	VZEROUPPER
	RET
