//go:build !amd64 || purego

package simd

import "unsafe"

// No VNNI here: GemvInt8Packed never reaches its kernels. No AVX-512
// either: the row kernels of int8_quant.go never run.
var (
	gemvKernels, gemvKernels1 [4]gemvFunc
	gemvPanels                = [4]int{1, 1, 1, 1}
)

const hasAVX512 = false

func maxAbsAVX512(x unsafe.Pointer, blocks int, out unsafe.Pointer) { panic("simd: no AVX-512") }

func quantAVX512(dst, src unsafe.Pointer, blocks int, inv float32) { panic("simd: no AVX-512") }
