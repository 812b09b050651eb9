//go:build !amd64 || purego

package simd

func floatGeometry(Level) geometry { return genericGeometry }

func bf16Geometry() geometry { panic("simd: no bf16 kernel in this build") }

func int8Kernel() int8Func { panic("simd: no int8 kernel in this build") }

func dotBlocks(Level, []float32, []float32) (float32, int) { return 0, 0 }

func axpyBlocks(Level, float32, []float32, []float32) int { return 0 }

func scaleBlocks(Level, float32, []float32) int { return 0 }

func amxTiles() (i8, bf amxFunc) { return nil, nil }

func toBF16Blocks([]uint16, []float32) int { return 0 }

func fromBF16Blocks([]float32, []uint16) int { return 0 }

func interleaveBlocks([]uint32, []uint16, []uint16) int { return 0 }
