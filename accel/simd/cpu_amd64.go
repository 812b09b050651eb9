//go:build amd64 && !purego

package simd

import (
	"os"

	"golang.org/x/sys/cpu"
)

func cpuFeatures() Features {
	x := cpu.X86
	f := Features{
		AVX2: x.HasAVX2, FMA: x.HasFMA,
		AVX512F: x.HasAVX512F, AVX512VNNI: x.HasAVX512F && x.HasAVX512VNNI,
		AVX512BF16: x.HasAVX512F && x.HasAVX512BF16,
		AMXTile:    x.HasAMXTile, AMXInt8: x.HasAMXInt8, AMXBF16: x.HasAMXBF16,
		Assembly:   true,
		AMXKernels: os.Getenv(AMXOptIn) == "1",
	}
	if f.AMXTile {
		if err := requestAMX(); err != nil {
			f.AMXDenied = err.Error()
		} else {
			f.AMXPermitted = true
		}
	}
	return f
}
