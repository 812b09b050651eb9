//go:build !amd64 || purego

package simd

// No VNNI here: GemvInt8Packed never reaches its kernels.
var (
	gemvKernels, gemvKernels1 [4]gemvFunc
	gemvPanels                = [4]int{1, 1, 1, 1}
)
