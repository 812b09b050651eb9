package simd_test

import (
	"fmt"

	"github.com/llmesh/llmesh/accel/simd"
)

func Example() {
	k, err := simd.New() // the best level this machine runs
	if err != nil {
		panic(err)
	}
	// C (2×2) = A (2×3) · B (3×2), row-major.
	a := []float32{1, 2, 3, 4, 5, 6}
	b := []float32{1, 0, 0, 1, 1, 1}
	c := make([]float32, 4)
	k.Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2)
	fmt.Println(c)

	// The same product in bf16 with float32 accumulation.
	ah, bh := make([]uint16, 6), make([]uint16, 6)
	simd.ToBF16(ah, a)
	simd.ToBF16(bh, b)
	k.GemmBF16(false, false, 2, 2, 3, 1, ah, 3, bh, 2, 0, c, 2)
	fmt.Println(c)

	// INT8: activations with one scale per row, weights stored out×in
	// (transB) with one scale per output channel.
	x := []int8{10, -20, 30, 40, 50, -60}
	w := []int8{1, 2, 3, -1, -2, -3}
	k.GemmInt8(true, 2, 2, 3, x, 3, []float32{0.5, 0.25}, w, 3, []float32{1, 2}, c, 2)
	fmt.Println(c)
	// Output:
	// [4 5 10 11]
	// [4 5 10 11]
	// [30 -60 -10 20]
}
