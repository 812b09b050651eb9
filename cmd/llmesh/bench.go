package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/cpu"

	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/tokenizer/tokbench"
)

// benchAreas are the areas `llmesh bench` measures.
var benchAreas = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"tokenizer":  benchTokenizer,
	"dataprep":   benchDataprep,
	"filter":     benchFilter,
	"kernels":    benchKernels,
	"train-step": benchTrainStep,
	"train":      benchTrain,
	"serve":      benchServe,
	"compress":   benchCompress,
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	areas := slices.Sorted(maps.Keys(benchAreas))
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: bench <area> (areas: %s)", errUsage, strings.Join(areas, ", "))
	}
	f, ok := benchAreas[args[0]]
	if !ok {
		return fmt.Errorf("%w: unknown bench area %q (areas: %s)", errUsage, args[0], strings.Join(areas, ", "))
	}
	return f(ctx, args[1:], stdout, stderr)
}

// benchReport is DESIGN.md's benchmark JSON.
type benchReport struct {
	Area    string            `json:"area"`
	Machine machine           `json:"machine"`
	Results []tokbench.Result `json:"results"`
}

type machine struct {
	CPU      string   `json:"cpu"`
	Cores    int      `json:"cores"`
	Features []string `json:"features"`
}

func thisMachine() machine {
	m := machine{CPU: runtime.GOARCH, Cores: runtime.NumCPU(), Features: []string{}}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	for _, x := range []struct {
		name string
		has  bool
	}{
		{"avx2", cpu.X86.HasAVX2}, {"fma", cpu.X86.HasFMA}, {"avx512f", cpu.X86.HasAVX512F},
		{"avx512bw", cpu.X86.HasAVX512BW}, {"avx512vnni", cpu.X86.HasAVX512VNNI},
		{"avx512bf16", cpu.X86.HasAVX512BF16}, {"amx-tile", cpu.X86.HasAMXTile},
		{"asimd", cpu.ARM64.HasASIMD}, {"sve", cpu.ARM64.HasSVE},
	} {
		if x.has {
			m.Features = append(m.Features, x.name)
		}
	}
	return m
}

const trainChildFlag = "train-child"

// trainChildCommand returns how to run our training in a child process:
// this binary again with the hidden --train-child flag. Tests replace it
// (a test binary is not llmesh); nil trains in-process.
var trainChildCommand = func() func(ctx context.Context, file string, vocab int) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return func(ctx context.Context, file string, vocab int) *exec.Cmd {
		return exec.CommandContext(ctx, exe, "bench", "tokenizer", "--vocab", strconv.Itoa(vocab), "--"+trainChildFlag, file)
	}
}

func benchTokenizer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench tokenizer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	mb := fs.Float64("mb", 10, "megabytes of text (whole documents, half Chinese, half English)")
	vocab := fs.Int("vocab", 32000, "vocabulary size to train")
	data := fs.String("data", "", "folder with cn-law.jsonl.gz and en-legal.jsonl.gz (default: ../shared/data from here or above; else the built-in demo corpus)")
	install := fs.Bool("install-partners", false, "install missing partners (npm ci --prefix bench/tokenizers)")
	only := fs.String("only", "", "measure only encode or train")
	child := fs.String(trainChildFlag, "", "")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: llmesh bench tokenizer [--json] [--mb 10] [--vocab 32000] [--data DIR] [--only encode|train] [--install-partners]")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name != trainChildFlag {
				fmt.Fprintf(stderr, "  --%s\t%s (default %q)\n", f.Name, f.Usage, f.DefValue)
			}
		})
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: bench tokenizer takes no arguments", errUsage)
	}
	if *child != "" {
		return tokbench.TrainChild(ctx, *child, *vocab, stdout)
	}

	opts := tokbench.Options{MB: *mb, Vocab: *vocab, InstallPartners: *install}
	switch *only {
	case "":
	case "encode":
		opts.SkipTrain = true
	case "train":
		opts.SkipEncode = true
	default:
		return fmt.Errorf("%w: --only %q (want encode or train)", errUsage, *only)
	}
	if !*asJSON {
		opts.Log = stderr
	}
	dir := *data
	if dir == "" {
		wd, _ := os.Getwd()
		dir = tokbench.FindDataDir(wd)
	}
	if dir != "" {
		opts.DataDir = dir
	} else {
		// About 2.1 KB a document: generate enough for the size asked.
		n := max(int(*mb*1e6/2000), 1)
		for _, d := range democorpus.Generate(1, n) {
			opts.Texts = append(opts.Texts, d.Text)
		}
		opts.TextNote = "text: the built-in demo corpus (synthetic; ../shared/data not found, pass --data DIR)"
	}
	opts.TrainCommand = trainChildCommand()
	results, err := tokbench.Run(ctx, opts)
	if err != nil {
		return err
	}
	return writeBench(stdout, "tokenizer", *asJSON, results)
}

// writeBench prints an area's results: one DESIGN.md JSON object with
// asJSON, a table for people otherwise.
func writeBench(w io.Writer, area string, asJSON bool, results []tokbench.Result) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return enc.Encode(benchReport{Area: area, Machine: thisMachine(), Results: results})
	}
	printTable(w, thisMachine(), results)
	return nil
}

func printTable(w io.Writer, m machine, results []tokbench.Result) {
	fmt.Fprintf(w, "benchmarks on %s (%d cores)\n\n", m.CPU, m.Cores)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tours\tunit\tpartner\tpartner value\tratio\tnote")
	for _, r := range results {
		pv, ratio := "—", "—"
		if r.PartnerValue != nil {
			pv = fmt.Sprintf("%.3g", *r.PartnerValue)
		} else if r.Partner != "" {
			pv = "n/a"
		}
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2fx", *r.Ratio)
		}
		partner := r.Partner
		if partner == "" {
			partner = "—"
		}
		fmt.Fprintf(tw, "%s\t%.3g\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Value, r.Unit, partner, pv, ratio, r.Note)
	}
	tw.Flush()
}
