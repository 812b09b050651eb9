//go:build amd64 && !purego

#include "textflag.h"

// Constants of geluTanhAVX512 (float32 bit patterns): -2·sqrt(2/π),
// 0.044715, log2(e), the two parts of ln2 for Cody–Waite reduction, the
// Cephes expf polynomial, 1, and the clamp [-110, 88.7] of exp's argument.
DATA geluc<>+0(SB)/4, $0xbfcc422a
DATA geluc<>+4(SB)/4, $0x3d372713
DATA geluc<>+8(SB)/4, $0x3fb8aa3b
DATA geluc<>+12(SB)/4, $0x3f318000
DATA geluc<>+16(SB)/4, $0xb95e8083
DATA geluc<>+20(SB)/4, $0x39506967
DATA geluc<>+24(SB)/4, $0x3ab743ce
DATA geluc<>+28(SB)/4, $0x3c088908
DATA geluc<>+32(SB)/4, $0x3d2aa9c1
DATA geluc<>+36(SB)/4, $0x3e2aaaaa
DATA geluc<>+40(SB)/4, $0x3f000000
DATA geluc<>+44(SB)/4, $0x3f800000
DATA geluc<>+48(SB)/4, $0xc2dc0000
DATA geluc<>+52(SB)/4, $0x42b16666
GLOBL geluc<>(SB), RODATA|NOPTR, $56

// func geluTanhAVX512(x unsafe.Pointer, blocks int)
// x[i] = x[i] / (1 + exp(-2u)), u = sqrt(2/π)·(x[i] + 0.044715·x[i]³), for
// 16·blocks elements: exp as x = n·ln2 + r with n rounded to nearest, the
// degree-6 polynomial in r, then VSCALEFPS by 2^n.
TEXT ·geluTanhAVX512(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ blocks+8(FP), CX
	VBROADCASTSS geluc<>+0(SB), Z31
	VBROADCASTSS geluc<>+4(SB), Z30
	VBROADCASTSS geluc<>+8(SB), Z29
	VBROADCASTSS geluc<>+12(SB), Z28
	VBROADCASTSS geluc<>+16(SB), Z27
	VBROADCASTSS geluc<>+20(SB), Z26
	VBROADCASTSS geluc<>+24(SB), Z25
	VBROADCASTSS geluc<>+28(SB), Z24
	VBROADCASTSS geluc<>+32(SB), Z23
	VBROADCASTSS geluc<>+36(SB), Z22
	VBROADCASTSS geluc<>+40(SB), Z21
	VBROADCASTSS geluc<>+44(SB), Z20
	VBROADCASTSS geluc<>+48(SB), Z19
	VBROADCASTSS geluc<>+52(SB), Z18

gelublock:
	TESTQ CX, CX
	JZ   geludone
	VMOVUPS (DI), Z0
	VMULPS Z0, Z0, Z1
	VMULPS Z0, Z1, Z1
	VFMADD213PS Z0, Z30, Z1 // u/sqrt(2/π) = 0.044715·x³ + x
	VMULPS Z31, Z1, Z1      // a = -2u
	VMAXPS Z19, Z1, Z1
	VMINPS Z18, Z1, Z1
	VMULPS Z29, Z1, Z3
	VRNDSCALEPS $0, Z3, Z3 // n
	VFNMADD231PS Z28, Z3, Z1
	VFNMADD231PS Z27, Z3, Z1 // r
	VMOVAPS Z26, Z2
	VFMADD213PS Z25, Z1, Z2
	VFMADD213PS Z24, Z1, Z2
	VFMADD213PS Z23, Z1, Z2
	VFMADD213PS Z22, Z1, Z2
	VFMADD213PS Z21, Z1, Z2
	VMULPS Z1, Z1, Z4
	VFMADD213PS Z1, Z4, Z2
	VADDPS Z20, Z2, Z2
	VSCALEFPS Z3, Z2, Z2 // exp(a)
	VADDPS Z20, Z2, Z2
	VDIVPS Z2, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	DECQ CX
	JMP  gelublock

geludone:
	VZEROUPPER
	RET
