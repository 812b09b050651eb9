//go:build !unix

package tokbench

// peakRSS is unknown (0) where getrusage is missing.
func peakRSS() int64 { return 0 }
