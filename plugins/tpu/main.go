package main

import (
	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/stub"
)

func main() {
	accel.Serve(stub.New("tpu", "the TPU backend is a stub by design"))
}
