package tensor_test

import (
	"fmt"

	"github.com/llmesh/llmesh/bus/tensor"
)

func Example() {
	payload, err := tensor.Encode([]tensor.Tensor{
		tensor.FromFloat32("grad", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		tensor.FromUint32("tokens", []int{4}, []uint32{50256, 1, 2, 3}),
	}, map[string]string{"step": "7", "rank": "0"})
	if err != nil {
		panic(err)
	}
	set, err := tensor.Decode(payload, tensor.Limits{}) // set aliases payload
	if err != nil {
		panic(err)
	}
	g, _ := set.Get("grad")
	vals, _ := tensor.Float32s(g)
	fmt.Println(g.Name, g.DType, g.Shape, vals, "step", set.Meta["step"])
	// Output: grad float32 [2 3] [1 2 3 4 5 6] step 7
}
