package transformer

import (
	"runtime"

	"github.com/llmesh/llmesh/accel/simd"
)

// defaultPool is the process-wide worker pool the model and decoder split
// their work across: accel/simd's, for GOMAXPROCS threads (the caller and
// GOMAXPROCS-1 helpers), shared with the kernels of the same width.
func defaultPool() *simd.Pool { return simd.SharedPool(runtime.GOMAXPROCS(0)) }
