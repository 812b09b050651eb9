//go:build !amd64 || purego

package simd

func cpuFeatures() Features { return Features{} }
