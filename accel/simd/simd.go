package simd

import (
	"errors"
	"fmt"
	"runtime"
)

//go:generate go run gen_asm.go

// Level is a family of kernels, ordered from slowest to fastest.
type Level int

const (
	// Generic is portable Go; it runs everywhere.
	Generic Level = iota
	// AVX2 needs AVX2 and FMA: a 6×16 float32 microkernel.
	AVX2
	// AVX512 needs AVX-512 F: a 14×32 float32 microkernel, with VNNI
	// INT8 and VDPBF16PS BF16 kernels where the CPU has those extensions.
	AVX512
	// AMX is Intel's tile unit. Detect reports it only where the CPU has
	// AMX-TILE, -INT8 and -BF16 and the kernel grants tile data; no AMX
	// kernel ships yet, so New never runs at this level (ErrUnsupported).
	AMX
)

func (l Level) String() string {
	switch l {
	case Generic:
		return "generic"
	case AVX2:
		return "avx2"
	case AVX512:
		return "avx512"
	case AMX:
		return "amx"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// ErrUnsupported is returned for a level this CPU, OS or build cannot run.
var ErrUnsupported = errors.New("simd: level not supported here")

// Features is what the CPU and OS offer the kernels.
type Features struct {
	AVX2, FMA           bool
	AVX512F, AVX512VNNI bool
	AVX512BF16          bool
	AMXTile, AMXInt8    bool
	AMXBF16             bool
	AMXPermitted        bool   // the OS granted tile data (arch_prctl)
	AMXDenied           string // why the OS did not, where the CPU has AMX
	AMXKernels          bool   // this build has AMX kernels
	Assembly            bool   // this build has the amd64 assembly
}

// CPU returns the features of this machine (the AMX permission request is
// made once, on first use).
func CPU() Features { return cpuFeatures() }

// pick chooses the best level features allow.
func pick(f Features) Level {
	switch {
	case !f.Assembly:
		return Generic
	case f.AMXKernels && f.AMXTile && f.AMXInt8 && f.AMXBF16 && f.AMXPermitted && f.AVX512F:
		return AMX
	case f.AVX512F:
		return AVX512
	case f.AVX2 && f.FMA:
		return AVX2
	}
	return Generic
}

// Detect returns the best level this machine runs.
func Detect() Level { return pick(CPU()) }

// Supported reports whether level l runs here.
func Supported(l Level) bool { return l >= Generic && l <= Detect() }

// Kernels runs the kernels of one level on a fixed pool of threads. It
// satisfies the runtime's Kernels interface (Sgemm) and is safe for
// concurrent use.
type Kernels struct {
	level   Level
	threads int
	int8    bool // VNNI INT8 kernel
	bf16    bool // VDPBF16PS kernel
	pool    *pool
	f32     geometry
}

type config struct {
	level   Level
	auto    bool
	threads int
}

// Option configures New.
type Option func(*config)

// WithLevel forces a level (tests use it to run every path this machine
// can); the default is Detect().
func WithLevel(l Level) Option { return func(c *config) { c.level, c.auto = l, false } }

// WithThreads sets how many threads a call uses, the caller included
// (default GOMAXPROCS).
func WithThreads(n int) Option { return func(c *config) { c.threads = n } }

// New returns kernels at the detected level, or the level forced with
// WithLevel (an error wrapping ErrUnsupported when it cannot run here).
func New(opts ...Option) (*Kernels, error) {
	c := config{auto: true, threads: runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		o(&c)
	}
	f := CPU()
	if c.auto {
		c.level = pick(f)
	}
	if c.level == AMX && !f.AMXKernels {
		// No AMX kernel ships yet: the next best level runs instead.
		if c.auto {
			c.level = AVX512
		} else {
			return nil, fmt.Errorf("%w: %s (no AMX kernels in this build)", ErrUnsupported, c.level)
		}
	}
	if c.level < Generic || c.level > pick(f) {
		return nil, fmt.Errorf("%w: %s (this machine runs up to %s)", ErrUnsupported, c.level, pick(f))
	}
	if c.threads < 1 {
		return nil, fmt.Errorf("simd: %d threads (want at least 1)", c.threads)
	}
	k := &Kernels{level: c.level, threads: c.threads, pool: newPool(c.threads)}
	k.f32 = floatGeometry(c.level)
	k.int8 = c.level >= AVX512 && f.AVX512VNNI
	k.bf16 = c.level >= AVX512 && f.AVX512BF16
	return k, nil
}

// Must is New for callers that use only the detected level: it cannot
// fail without options.
func Must(opts ...Option) *Kernels {
	k, err := New(opts...)
	if err != nil {
		panic(err)
	}
	return k
}

// Level returns the level k runs.
func (k *Kernels) Level() Level { return k.level }

// Threads returns how many threads a call of k uses.
func (k *Kernels) Threads() int { return k.threads }

// Describe names k's level and the kernels it uses, for logs and feature
// lists: "kernels:avx512", "kernels:int8-vnni", "kernels:bf16-dpbf16".
func (k *Kernels) Describe() []string {
	d := []string{"kernels:" + k.level.String()}
	if k.int8 {
		d = append(d, "kernels:int8-vnni")
	}
	if k.bf16 {
		d = append(d, "kernels:bf16-dpbf16")
	}
	return d
}

// ParseLevel reads a level's name as String writes it.
func ParseLevel(s string) (Level, error) {
	for l := Generic; l <= AMX; l++ {
		if l.String() == s {
			return l, nil
		}
	}
	return 0, fmt.Errorf("simd: unknown level %q (want generic, avx2, avx512 or amx)", s)
}
