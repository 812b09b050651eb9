package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/llmesh/llmesh/accel"
)

func main() {
	probeOnly := flag.Bool("probe", false, "print the CUDA devices and libraries found as JSON and exit")
	flag.Parse()
	if *probeOnly {
		out, _ := json.Marshal(probe(driverLib))
		fmt.Println(string(out))
		return
	}
	b, warn := newBackend()
	if warn != "" {
		fmt.Fprintf(os.Stderr, "[WARN] cuda plugin: %s\n", warn)
	}
	accel.Serve(b)
}
