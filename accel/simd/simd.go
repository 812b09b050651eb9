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
	// AMX is Intel's tile unit: AMX-INT8 and AMX-BF16 tile kernels for
	// GemmInt8 and GemmBF16 (Sgemm stays on AVX-512). Detect reports it
	// only where the CPU has AMX-TILE, -INT8, -BF16 and AVX-512, Linux
	// granted tile data (arch_prctl), and LLMESH_SIMD_AMX=1 opts in: the
	// AMX kernels have not yet run on AMX hardware.
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
	int8    int8Mode
	bf16    bf16Mode
	amxI8   amxFunc
	amxBF   amxFunc
	pool    *Pool
	f32     geometry
}

type int8Mode uint8

const (
	int8Go   int8Mode = iota // portable Go
	int8VNNI                 // AVX-512 VNNI microkernel
	int8AMX                  // AMX tiles
)

type bf16Mode uint8

const (
	bf16Wide  bf16Mode = iota // widened to float32 while packing
	bf16Pairs                 // AVX-512 BF16 microkernel
	bf16AMX                   // AMX tiles
)

// AMXOptIn is the environment variable that lets Detect pick AMX (=1).
const AMXOptIn = "LLMESH_SIMD_AMX"

type config struct {
	level   Level
	auto    bool
	threads int
	amxGo   bool // tests: AMX drivers on Go doubles of the tile products
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
	if c.level < Generic || c.level > pick(f) {
		why := ""
		if c.level == AMX {
			switch {
			case !f.AMXTile || !f.AMXInt8 || !f.AMXBF16:
				why = "; the CPU has no AMX"
			case !f.AMXPermitted:
				why = "; the OS refused tile data: " + f.AMXDenied
			case !f.AMXKernels:
				why = "; set " + AMXOptIn + "=1 to use the (unverified) AMX kernels"
			}
		}
		return nil, fmt.Errorf("%w: %s (this machine runs up to %s%s)", ErrUnsupported, c.level, pick(f), why)
	}
	if c.threads < 1 {
		return nil, fmt.Errorf("simd: %d threads (want at least 1)", c.threads)
	}
	k := &Kernels{level: c.level, threads: c.threads, pool: SharedPool(c.threads)}
	k.f32 = floatGeometry(c.level)
	if c.level >= AVX512 && f.AVX512VNNI {
		k.int8 = int8VNNI
	}
	if c.level >= AVX512 && f.AVX512BF16 {
		k.bf16 = bf16Pairs
	}
	if c.level == AMX {
		k.int8, k.bf16 = int8AMX, bf16AMX
		k.amxI8, k.amxBF = amxTiles()
	}
	if c.amxGo {
		k.int8, k.bf16 = int8AMX, bf16AMX
		k.amxI8, k.amxBF = amxInt8TileGo, amxBF16TileGo
	}
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
// lists: "kernels:avx512", "kernels:int8-vnni", "kernels:bf16-dpbf16"
// ("kernels:int8-amx", "kernels:bf16-amx" at the AMX level).
func (k *Kernels) Describe() []string {
	d := []string{"kernels:" + k.level.String()}
	switch k.int8 {
	case int8VNNI:
		d = append(d, "kernels:int8-vnni")
	case int8AMX:
		d = append(d, "kernels:int8-amx")
	}
	switch k.bf16 {
	case bf16Pairs:
		d = append(d, "kernels:bf16-dpbf16")
	case bf16AMX:
		d = append(d, "kernels:bf16-amx")
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
