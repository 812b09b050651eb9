package cuda

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Library names tried, in order. The driver comes with the NVIDIA driver;
// cuBLAS and NVRTC with the CUDA toolkit or its redistributable wheels.
var (
	DriverLibrary   = "libcuda.so.1"
	CUBLASLibraries = []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"}
	NVRTCLibraries  = []string{"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"}
)

// dlopenFirst opens the first of names that loads; the error names every
// library tried and why each failed.
func dlopenFirst(names []string) (h uintptr, name string, err error) {
	var errs []string
	for _, n := range names {
		h, err := purego.Dlopen(n, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			return h, n, nil
		}
		errs = append(errs, "dlopen "+n+": "+strings.TrimPrefix(err.Error(), n+": "))
	}
	return 0, "", errors.New(strings.Join(errs, "; "))
}

// Find reports the first of names that loads (then closes it again), or
// why none did. The plugin's -probe uses it for cuBLAS and NVRTC.
func Find(names []string) (string, error) {
	h, name, err := dlopenFirst(names)
	if err != nil {
		return "", err
	}
	_ = purego.Dlclose(h)
	return name, nil
}

// bind resolves each symbol of syms in library h and registers the Go
// function variable it points to. Optional symbols (names ending in "?")
// that are missing leave the variable nil.
func bind(h uintptr, lib string, syms map[string]any) error {
	for sym, fn := range syms {
		optional := sym[len(sym)-1] == '?'
		if optional {
			sym = sym[:len(sym)-1]
		}
		addr, err := purego.Dlsym(h, sym)
		if err != nil {
			if optional {
				continue
			}
			return fmt.Errorf("%s: symbol %s: %w", lib, sym, err)
		}
		purego.RegisterFunc(fn, addr)
	}
	return nil
}

// goString copies the NUL-terminated C string at p.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	var n int
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// cString returns s as a NUL-terminated byte slice.
func cString(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}
