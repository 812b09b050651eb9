package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/llmesh/llmesh/accel/simd"
	"github.com/llmesh/llmesh/services/tokenizer/tokbench"
)

// benchKernels measures the cpu backend's GEMM kernels (accel/simd):
// SGEMM beside OpenBLAS and gonum, INT8 and BF16 beside our own SGEMM
// and INT8 beside oneDNN, each partner in the same run.
// The wall clock is the honest rate on a quiet machine; --clock cpu
// divides by the process's CPU time instead, which holds up better when
// other work shares the cores.
func benchKernels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench kernels", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	sizesFlag := fs.String("sizes", "256,512,1024,2048", "square SGEMM sizes")
	threadsFlag := fs.String("threads", "1,2", "thread counts")
	lowp := fs.Int("lowp-size", 1024, "size of the INT8 and BF16 products")
	minTime := fs.Duration("min-time", 300*time.Millisecond, "least time of one measurement (after one warm-up call)")
	rounds := fs.Int("rounds", 3, "measurements per value, ours and the partner's in turn; the best counts")
	noGonum := fs.Bool("no-gonum", false, "skip gonum (slow: about 2 s a call at 2048)")
	clock := fs.String("clock", "wall", "wall: ops per second; cpu: ops per CPU-second of the process times the threads (steadier on a loaded machine, but it charges a library for threads that spin while waiting)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: bench kernels takes no arguments", errUsage)
	}
	sizes, err := kernIntList(*sizesFlag)
	if err != nil {
		return fmt.Errorf("%w: --sizes: %v", errUsage, err)
	}
	threads, err := kernIntList(*threadsFlag)
	if err != nil {
		return fmt.Errorf("%w: --threads: %v", errUsage, err)
	}
	cpuClock := false
	switch *clock {
	case "wall":
	case "cpu":
		cpuClock = true
	default:
		return fmt.Errorf("%w: --clock %q (want wall or cpu)", errUsage, *clock)
	}
	if *rounds < 1 {
		return fmt.Errorf("%w: --rounds %d (want at least 1)", errUsage, *rounds)
	}
	logw := io.Discard
	if !*asJSON {
		logw = stderr
	}
	tmp, err := os.MkdirTemp("", "llmesh-bench-kernels-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	openblas, obNote := kernBuildHarness(ctx, tmp, "sgemm.c", "openblas", "libopenblas-dev")
	onednn, dnNote := kernBuildHarness(ctx, tmp, "int8_onednn.c", "dnnl", "libdnnl-dev")

	var results []tokbench.Result
	ops := func(n int) float64 { return 2 * float64(n) * float64(n) * float64(n) }
	suffix := ""
	if cpuClock {
		suffix = "/cpu-clock"
	}
	// val reads a rate on the chosen clock for a run on th threads.
	val := func(r kernRate, th int) float64 {
		if cpuClock {
			return r.cpu * float64(th)
		}
		return r.wall
	}
	// Each value is the best of --rounds measurements, ours and the
	// partner's taking turns, so that load from elsewhere hits both alike.
	fp32 := map[int]float64{} // our SGEMM at the low-precision size, by threads
	for _, th := range threads {
		k, err := simd.New(simd.WithThreads(th))
		if err != nil {
			return err
		}
		fmt.Fprintf(logw, "threads=%d: %s\n", th, strings.Join(k.Describe(), " "))
		for _, n := range sizes {
			if err := ctx.Err(); err != nil {
				return err
			}
			run := kernSgemmRun(k, n)
			var ours, ob float64
			var obErr error
			for range *rounds {
				ours = max(ours, val(kernMeasure(*minTime, ops(n), run), th))
				if openblas != "" && obErr == nil {
					var v kernRate
					v, obErr = kernRunHarness(ctx, openblas, n, *minTime, "OPENBLAS_NUM_THREADS", th)
					ob = max(ob, val(v, th))
				}
			}
			if n == *lowp {
				fp32[th] = ours
			}
			name := fmt.Sprintf("sgemm/n=%d/threads=%d%s", n, th, suffix)
			r := tokbench.Result{Name: name, Unit: "GFLOP/s", Value: ours}
			switch {
			case openblas == "":
				r.Partner, r.Note = "openblas", obNote
			case obErr != nil:
				r.Partner, r.Note = "openblas", obErr.Error()
			default:
				r.Compare("openblas", ob, true)
			}
			fmt.Fprintf(logw, "  %s: %.1f GFLOP/s (openblas %s)\n", name, ours, kernValueText(r.PartnerValue))
			results = append(results, r)
			if !*noGonum {
				g := kernWithProcs(th, func() float64 {
					return val(kernMeasure(*minTime, ops(n), kernGonumRun(n)), th)
				})
				r := tokbench.Result{Name: name + "/vs-gonum", Unit: "GFLOP/s", Value: ours}
				r.Compare("gonum", g, true)
				fmt.Fprintf(logw, "  %s: gonum %.1f GFLOP/s\n", name, g)
				results = append(results, r)
			}
		}
		n := *lowp
		i8run, bfrun, f32run := kernInt8Run(k, n), kernBf16Run(k, n), kernSgemmRun(k, n)
		var i8, bf, f32, dn float64
		var dnErr error
		for range *rounds {
			f32 = max(f32, val(kernMeasure(*minTime, ops(n), f32run), th))
			i8 = max(i8, val(kernMeasure(*minTime, ops(n), i8run), th))
			bf = max(bf, val(kernMeasure(*minTime, ops(n), bfrun), th))
			if onednn != "" && dnErr == nil {
				var v kernRate
				v, dnErr = kernRunHarness(ctx, onednn, n, *minTime, "OMP_NUM_THREADS", th)
				dn = max(dn, val(v, th))
			}
		}
		f32 = max(f32, fp32[th])
		r := tokbench.Result{Name: fmt.Sprintf("int8/n=%d/threads=%d%s", n, th, suffix), Unit: "GOP/s", Value: i8}
		r.Compare("our sgemm", f32, true)
		results = append(results, r)
		r = tokbench.Result{Name: fmt.Sprintf("int8/n=%d/threads=%d%s/vs-onednn", n, th, suffix), Unit: "GOP/s", Value: i8}
		switch {
		case onednn == "":
			r.Partner, r.Note = "onednn", dnNote
		case dnErr != nil:
			r.Partner, r.Note = "onednn", dnErr.Error()
		default:
			r.Compare("onednn", dn, true)
		}
		fmt.Fprintf(logw, "  int8 %d: %.1f GOP/s (our sgemm %.1f, onednn %s)\n", n, i8, f32, kernValueText(r.PartnerValue))
		results = append(results, r)
		r = tokbench.Result{Name: fmt.Sprintf("bf16/n=%d/threads=%d%s", n, th, suffix), Unit: "GFLOP/s", Value: bf}
		r.Compare("our sgemm", f32, true)
		fmt.Fprintf(logw, "  bf16 %d: %.1f GFLOP/s\n", n, bf)
		results = append(results, r)
	}
	return writeBench(stdout, "kernels", *asJSON, results)
}

func kernValueText(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64)
}

func kernIntList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// kernRate is a measured rate in G ops per second of wall time and per
// CPU-second of the whole process.
type kernRate struct{ wall, cpu float64 }

// kernMeasure runs f once to warm up, then until minTime has passed.
func kernMeasure(minTime time.Duration, ops float64, f func()) kernRate {
	f()
	reps := 0
	c0 := kernProcessCPU()
	start := time.Now()
	for {
		f()
		reps++
		if el := time.Since(start); el >= minTime {
			total := ops * float64(reps)
			return kernRate{wall: total / float64(el.Nanoseconds()), cpu: total / float64((kernProcessCPU() - c0).Nanoseconds())}
		}
	}
}

// kernProcessCPU is the CPU time this process has used.
func kernProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func kernWithProcs(n int, f func() float64) float64 {
	old := runtime.GOMAXPROCS(n)
	defer runtime.GOMAXPROCS(old)
	return f()
}

func kernBenchMatrix(n, mod int) []float32 {
	x := make([]float32, n*n)
	for i := range x {
		x[i] = float32(i%mod) - float32(mod/2)
	}
	return x
}

func kernSgemmRun(k *simd.Kernels, n int) func() {
	a, b, c := kernBenchMatrix(n, 7), kernBenchMatrix(n, 5), make([]float32, n*n)
	return func() { k.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n) }
}

func kernGonumRun(n int) func() {
	a, b, c := kernBenchMatrix(n, 7), kernBenchMatrix(n, 5), make([]float32, n*n)
	return func() { gonum.Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, a, n, b, n, 0, c, n) }
}

// int8Run multiplies activations (n×n) by weights stored out×in (n×n,
// transposed), per-row and per-channel scales.
func kernInt8Run(k *simd.Kernels, n int) func() {
	a, b := make([]int8, n*n), make([]int8, n*n)
	for i := range a {
		a[i], b[i] = int8(i%13-6), int8(i%11-5)
	}
	as, bs := make([]float32, n), make([]float32, n)
	for i := range as {
		as[i], bs[i] = 0.01, 0.02
	}
	c := make([]float32, n*n)
	return func() { k.GemmInt8(true, n, n, n, a, n, as, b, n, bs, c, n) }
}

func kernBf16Run(k *simd.Kernels, n int) func() {
	a, b := make([]uint16, n*n), make([]uint16, n*n)
	simd.ToBF16(a, kernBenchMatrix(n, 7))
	simd.ToBF16(b, kernBenchMatrix(n, 5))
	c := make([]float32, n*n)
	return func() { k.GemmBF16(false, false, n, n, n, 1, a, n, b, n, 0, c, n) }
}

// kernBuildHarness compiles bench/openblas/<src> against -l<lib> into dir. It
// returns the program, or "" and a note saying why it cannot run.
func kernBuildHarness(ctx context.Context, dir, src, lib, pkg string) (string, string) {
	wd, _ := os.Getwd()
	srcPath := kernFindUp(wd, filepath.Join("bench", "openblas", src))
	if srcPath == "" {
		return "", fmt.Sprintf("bench/openblas/%s not found from the working directory (run from the repository)", src)
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		return "", "gcc not installed (apt-get install gcc " + pkg + ")"
	}
	exe := filepath.Join(dir, strings.TrimSuffix(src, ".c"))
	out, err := exec.CommandContext(ctx, "gcc", "-O2", "-o", exe, srcPath, "-l"+lib).CombinedOutput()
	if err != nil {
		return "", fmt.Sprintf("building %s failed (is %s installed?): %s", src, pkg, kernFirstLine(out))
	}
	return exe, ""
}

func kernFirstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// kernFindUp returns start/rel or the same under a parent of start, "" if
// none exists.
func kernFindUp(start, rel string) string {
	for d := start; ; d = filepath.Dir(d) {
		if p := filepath.Join(d, rel); kernFileExists(p) {
			return p
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

func kernFileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// kernRunHarness runs a C harness for size n on th threads (set through
// threadVar) and returns the rate it prints.
func kernRunHarness(ctx context.Context, exe string, n int, minTime time.Duration, threadVar string, th int) (kernRate, error) {
	cmd := exec.CommandContext(ctx, exe, strconv.Itoa(n), strconv.FormatFloat(minTime.Seconds(), 'f', 3, 64))
	cmd.Env = append(os.Environ(), threadVar+"="+strconv.Itoa(th))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return kernRate{}, fmt.Errorf("%s: %v: %s", filepath.Base(exe), err, kernFirstLine(ee.Stderr))
		}
		return kernRate{}, err
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return kernRate{}, fmt.Errorf("%s printed %q", filepath.Base(exe), out)
	}
	wall, err1 := strconv.ParseFloat(f[1], 64)
	cpu, err2 := strconv.ParseFloat(f[2], 64)
	if err := errors.Join(err1, err2); err != nil {
		return kernRate{}, fmt.Errorf("%s printed %q: %w", filepath.Base(exe), out, err)
	}
	return kernRate{wall: wall, cpu: cpu}, nil
}
