package main

import (
	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/transformer"
)

func main() {
	accel.Serve(engine.New("cpu", transformer.PortableKernels()))
}
