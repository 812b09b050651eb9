package simd

import "unsafe"

// amxFunc is a 32×32 AMX tile product (see gen_asm.go's amxTile): A as
// 32 rows of lda bytes, B as VNNI panels of 32 columns (rows of 128
// bytes, 2048 bytes a 64-byte k step), steps k steps; C (int32 or
// float32) is written whole as 32×32.
type amxFunc func(cfg, a unsafe.Pointer, lda int, b unsafe.Pointer, steps int, c unsafe.Pointer)

// amxConfig is the LDTILECFG operand: palette 1, tiles 0–7 of 16 rows
// by 64 bytes.
var amxConfig = func() (c [64]byte) {
	c[0] = 1
	for t := range 8 {
		c[16+2*t] = 64 // colsb, little-endian uint16
		c[48+t] = 16   // rows
	}
	return c
}()

// amxInt8TileGo is amxInt8Tile in Go, with TDPBSSD's meaning: the double
// that tests the AMX driver where no CPU has AMX.
func amxInt8TileGo(_, a unsafe.Pointer, lda int, b unsafe.Pointer, steps int, c unsafe.Pointer) {
	A := unsafe.Slice((*int8)(a), 31*lda+steps*64)
	B := unsafe.Slice((*int8)(b), steps*2048)
	C := unsafe.Slice((*int32)(c), 32*32)
	for i := range 32 {
		for j := range 32 {
			var s int32
			for st := range steps {
				for g := range 16 {
					for t := range 4 {
						s += int32(A[i*lda+st*64+g*4+t]) * int32(B[st*2048+g*128+j*4+t])
					}
				}
			}
			C[i*32+j] = s
		}
	}
}

// amxBF16TileGo is amxBF16Tile in Go, with TDPBF16PS's meaning.
func amxBF16TileGo(_, a unsafe.Pointer, lda int, b unsafe.Pointer, steps int, c unsafe.Pointer) {
	A := unsafe.Slice((*uint16)(a), (31*lda+steps*64)/2)
	B := unsafe.Slice((*uint16)(b), steps*1024)
	C := unsafe.Slice((*float32)(c), 32*32)
	for i := range 32 {
		for j := range 32 {
			var s float32
			for st := range steps {
				for g := range 16 {
					ai, bi := (i*lda+st*64+g*4)/2, (st*2048+g*128+j*4)/2
					s += widen(A[ai])*widen(B[bi]) + widen(A[ai+1])*widen(B[bi+1])
				}
			}
			C[i*32+j] = s
		}
	}
}

// withAMXGo runs the AMX drivers on amxInt8TileGo and amxBF16TileGo
// (tests only).
func withAMXGo() Option { return func(c *config) { c.amxGo = true } }
