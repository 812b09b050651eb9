//go:build amd64 && !purego && !linux

package simd

import (
	"errors"
	"runtime"
)

// requestAMX: only Linux is known to hand out AMX tile data (on request,
// through arch_prctl); elsewhere the AMX kernels stay off.
func requestAMX() error {
	return errors.New("AMX tile data is requested through Linux's arch_prctl; not available on " + runtime.GOOS)
}
