package stub_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/stub"
)

func Example() {
	b := stub.New("tpu", "the TPU backend is a stub by design")
	info, _ := b.Info(context.Background())
	fmt.Println(info.Name, info.Device, info.Stub)
	_, err := b.LoadModel(context.Background(), accel.LoadRequest{ModelID: "m"})
	fmt.Println(err)
	fmt.Println(errors.Is(err, accel.ErrNotImplemented))
	// Output:
	// tpu none true
	// tpu backend: LoadModel not implemented: the TPU backend is a stub by design: accel: not implemented
	// true
}
