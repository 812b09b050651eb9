package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/llmesh/llmesh/accel"
)

func main() {
	probeOnly := flag.Bool("probe", false, "print the CUDA devices found as JSON and exit")
	flag.Parse()
	p := probe(driverLib)
	if *probeOnly {
		out, _ := json.Marshal(p)
		fmt.Println(string(out))
		return
	}
	if p.Err != "" {
		fmt.Fprintf(os.Stderr, "[WARN] cuda plugin: no CUDA device: %s\n", p.Err)
	}
	accel.Serve(newBackend(p))
}
