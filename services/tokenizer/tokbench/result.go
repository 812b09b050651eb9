package tokbench

import "github.com/llmesh/llmesh/services/internal/benchfmt"

// Result is one measurement, in the shape of DESIGN.md's benchmark JSON.
type Result = benchfmt.Result
