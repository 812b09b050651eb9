//go:build amd64 && !purego

package simd

import (
	"fmt"
	"sync"
	"syscall"
	"unsafe"
)

// Linux arch_prctl codes for AMX tile data (asm/prctl.h) and its XSAVE
// feature number.
const (
	archGetXCompPerm  = 0x1022
	archReqXCompPerm  = 0x1023
	xfeatureXTileData = 18
)

var (
	amxOnce sync.Once
	amxErr  error
)

// requestAMX asks the kernel once for permission to use AMX tile data;
// Linux refuses AMX instructions (SIGILL) to a process that has not.
func requestAMX() error {
	amxOnce.Do(func() {
		if _, _, e := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXCompPerm, xfeatureXTileData, 0); e != 0 {
			amxErr = fmt.Errorf("arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA): %w", e)
			return
		}
		var mask uint64
		if _, _, e := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archGetXCompPerm, uintptr(unsafe.Pointer(&mask)), 0); e != 0 {
			amxErr = fmt.Errorf("arch_prctl(ARCH_GET_XCOMP_PERM): %w", e)
			return
		}
		if mask&(1<<xfeatureXTileData) == 0 {
			amxErr = fmt.Errorf("arch_prctl: tile data not in the permitted set %#x", mask)
		}
	})
	return amxErr
}
