package cuda

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var kernelDecl = regexp.MustCompile(`extern "C" __global__ void (\w+)\(`)

// kernelNames lists the extern "C" kernels of Sources.
func kernelNames(t *testing.T) []string {
	t.Helper()
	src, err := source()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range kernelDecl.FindAllStringSubmatch(src, -1) {
		names = append(names, m[1])
	}
	sort.Strings(names)
	return names
}

// TestLaunchesNameKernels checks that every kernel the Go side launches is
// defined in Sources, and every kernel defined is launched somewhere.
func TestLaunchesNameKernels(t *testing.T) {
	defined := map[string]bool{}
	for _, n := range kernelNames(t) {
		defined[n] = false
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	launch := regexp.MustCompile(`\.(?:launch|convert)\("(\w+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range launch.FindAllStringSubmatch(string(b), -1) {
			if _, ok := defined[m[1]]; !ok {
				t.Errorf("%s launches %s, which kernels/*.cu does not define", f, m[1])
			}
			defined[m[1]] = true
		}
	}
	for n, used := range defined {
		if !used {
			t.Errorf("kernel %s is never launched", n)
		}
	}
}

// TestKernelsCompileWithClang compiles Sources to PTX with clang's CUDA
// front end, when clang is installed: the CUDA C is checked on machines
// without a GPU or a CUDA toolkit (NVRTC compiles it for real on a GPU;
// see gpu_test.go).
func TestKernelsCompileWithClang(t *testing.T) {
	var clang string
	for _, c := range []string{"clang", "clang-19", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14"} {
		if p, err := exec.LookPath(c); err == nil {
			clang = p
			break
		}
	}
	if clang == "" {
		t.Skip("no clang on PATH (apt-get install clang-14 runs this check)")
	}
	src, err := source()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "kernels.cu"), filepath.Join(dir, "kernels.ptx")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	prelude, err := filepath.Abs("testdata/clang_prelude.h")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(clang, "-x", "cuda", "--cuda-device-only", "-nocudainc", "-nocudalib",
		"--cuda-gpu-arch=sm_80", "-Wall", "-Werror", "-Wno-unknown-cuda-version",
		"-include", prelude, "-S", "-o", out, in)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, msg)
	}
	ptx, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range kernelNames(t) {
		if !strings.Contains(string(ptx), ".entry "+n+"(") {
			t.Errorf("PTX has no entry %s", n)
		}
	}
}
