//go:build unix

package transformer

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time this process has used, all threads, user and
// system (0 where the platform does not say).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
