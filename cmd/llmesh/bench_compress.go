package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/distiller"
	"github.com/llmesh/llmesh/services/quantizer"
	"github.com/llmesh/llmesh/services/tokenizer/tokbench"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// compressOptions size bench compress.
type compressOptions struct {
	Documents, Vocab                       int
	Ctx, Embd, Layers, Heads               int
	StudentEmbd, StudentLayers             int
	Steps, Batch                           int
	QATSteps, DistillSteps, PruneSteps     int
	EvalBatches, DecodeTokens, DecodeRound int
	PromptTokens                           int
	LR, Alpha, Temperature                 float64
	TopK                                   int
	PluginDir                              string
	// Input is a corpus file (JSONL, text or parquet; .gz decompressed)
	// used instead of the built-in corpus.
	Input string
}

func defaultCompressOptions() compressOptions {
	return compressOptions{Documents: 1500, Vocab: 1024, Ctx: 64, Embd: 256, Layers: 4, Heads: 4, StudentEmbd: 128, StudentLayers: 4,
		Steps: 1200, Batch: 16, QATSteps: 60, DistillSteps: 400, PruneSteps: 120, EvalBatches: 16, DecodeTokens: 48, DecodeRound: 3,
		PromptTokens: 16, LR: 3e-3, Alpha: 0.5, Temperature: 1, TopK: 32}
}

// compressTarget is one line of issue 8's "done means".
type compressTarget struct {
	what string
	pass bool
}

// benchCompress runs the compression services on the embedded stack (jobs
// over the bus, the cpu plugin) on the built-in corpus: a reference FP32
// model is trained, then quantized (PTQ, and after QAT), distilled into a
// student of about a quarter of its parameters (beside the same student
// trained from scratch), and pruned to 50% with a fine-tune; decoding
// speed of the FP32 and INT8 models is measured on the same backend.
// Every line is compared with its partner from the same run and with the
// issue's target.
func benchCompress(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := defaultCompressOptions()
	fs := flag.NewFlagSet("bench compress", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	fs.IntVar(&o.Documents, "documents", o.Documents, "documents of the built-in corpus")
	fs.IntVar(&o.Vocab, "vocab", o.Vocab, "vocabulary size the tokenizer is trained to")
	fs.IntVar(&o.Ctx, "ctx", o.Ctx, "context length (the sequence length trained)")
	fs.IntVar(&o.Embd, "embd", o.Embd, "d_model of the reference (teacher) model")
	fs.IntVar(&o.Layers, "layers", o.Layers, "layers of the reference model")
	fs.IntVar(&o.Heads, "heads", o.Heads, "attention heads (both models)")
	fs.IntVar(&o.StudentEmbd, "student-embd", o.StudentEmbd, "d_model of the student")
	fs.IntVar(&o.StudentLayers, "student-layers", o.StudentLayers, "layers of the student")
	fs.IntVar(&o.Steps, "steps", o.Steps, "training steps of the reference model")
	fs.IntVar(&o.Batch, "batch", o.Batch, "batch (rows of ctx tokens) of every training job")
	fs.IntVar(&o.QATSteps, "qat-steps", o.QATSteps, "quantization-aware fine-tuning steps")
	fs.IntVar(&o.DistillSteps, "distill-steps", o.DistillSteps, "training steps of the student (distilled and from scratch)")
	fs.IntVar(&o.PruneSteps, "prune-steps", o.PruneSteps, "fine-tuning steps after pruning")
	fs.IntVar(&o.EvalBatches, "eval-batches", o.EvalBatches, "validation batches every loss is measured on")
	fs.IntVar(&o.DecodeTokens, "decode-tokens", o.DecodeTokens, "tokens decoded per sequence in the speed measurement (at most 64)")
	fs.IntVar(&o.PromptTokens, "prompt-tokens", o.PromptTokens, "prompt tokens before decoding")
	fs.IntVar(&o.DecodeRound, "rounds", o.DecodeRound, "alternating FP32/INT8 decoding rounds (the best counts)")
	fs.Float64Var(&o.LR, "lr", o.LR, "peak learning rate of the training jobs")
	fs.Float64Var(&o.Alpha, "alpha", o.Alpha, "distillation: weight of the KL term (1-alpha goes to cross-entropy)")
	fs.Float64Var(&o.Temperature, "temperature", o.Temperature, "distillation temperature")
	fs.IntVar(&o.TopK, "top-k", o.TopK, "distillation: teacher logits sent per position")
	fs.StringVar(&o.PluginDir, "plugin-dir", "", "folder with llmesh-plugin-<backend> binaries")
	fs.StringVar(&o.Input, "input", "", "corpus file (JSONL of {\"text\": ...}, text or parquet; .gz is decompressed) instead of the built-in corpus")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: bench compress takes no arguments", errUsage)
	}
	switch {
	case o.Documents < 10 || o.Vocab < 260 || o.Steps < 1 || o.DistillSteps < 1 || o.QATSteps < 1 || o.PruneSteps < 1 || o.Batch < 1 || o.EvalBatches < 1 || o.DecodeRound < 1:
		return fmt.Errorf("%w: want --documents >= 10, --vocab >= 260 and positive steps, batch, eval batches and rounds", errUsage)
	case o.DecodeTokens < 2 || o.DecodeTokens > accel.MaxDecodeSteps || o.PromptTokens < 1 || o.PromptTokens+o.DecodeTokens > o.Ctx:
		return fmt.Errorf("%w: --decode-tokens in [2, %d] and --prompt-tokens >= 1 must fit the context %d together", errUsage, accel.MaxDecodeSteps, o.Ctx)
	}
	logf := func(format string, args ...any) {
		if !*asJSON {
			fmt.Fprintf(stderr, format+"\n", args...)
		}
	}
	results, targets, err := runCompressBench(ctx, o, compressPluginCommand(o.PluginDir), logf)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(benchReport{Area: "compress", Machine: thisMachine(), Results: results})
	}
	printCompressTable(stdout, thisMachine(), results, targets)
	return nil
}

// runCompressBench is the measurement; plugins come from cmd.
func runCompressBench(ctx context.Context, o compressOptions, cmd stackPluginCommand, logf func(string, ...any)) ([]tokbench.Result, []compressTarget, error) {
	dir, err := os.MkdirTemp("", "llmesh-bench-compress-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	st, err := startStack(ctx, stackConfig{DataDir: dir, Services: []string{"dataprep", "tokenizer", "trainer", "quantizer", "distiller"},
		Logger: slog.New(slog.DiscardHandler), PluginCommand: cmd})
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	job := func(kind string, spec map[string]any, result any) error {
		logf("%s...", kind)
		start := time.Now()
		raw, id, err := awaitJob(ctx, st.bus, kind, spec, nil, st.Err())
		if err != nil {
			return err
		}
		logf("  %s job %s took %.1fs", kind, id, time.Since(start).Seconds())
		return json.Unmarshal(raw, result)
	}

	// The corpus, the tokenizer and the reference FP32 model.
	var prep struct {
		Documents int64 `json:"documents"`
	}
	prepSpec := map[string]any{"builtin": "demo", "documents": o.Documents, "seed": 7, "output": "bench-corpus"}
	if o.Input != "" {
		if err := putBenchInput(ctx, st.bus, o.Input, dir, "bench-input"); err != nil {
			return nil, nil, err
		}
		prepSpec = map[string]any{"input": "bench-input", "output": "bench-corpus"}
	}
	if err := job(bus.KindDataprep, prepSpec, &prep); err != nil {
		return nil, nil, err
	}
	var tok struct {
		VocabSize   int      `json:"vocab_size"`
		TrainRefs   []string `json:"train_refs"`
		ValRef      string   `json:"val_ref"`
		TrainTokens int      `json:"train_tokens"`
		ValTokens   int      `json:"val_tokens"`
	}
	if err := job(bus.KindTokenize, map[string]any{"dataset": "bench-corpus", "tokenizer": "bench", "vocab_size": o.Vocab}, &tok); err != nil {
		return nil, nil, err
	}
	logf("  %d documents, vocabulary %d, %d train and %d validation tokens", prep.Documents, tok.VocabSize, tok.TrainTokens, tok.ValTokens)
	cfg := fmt.Sprintf(`{"vocab_size":%d,"n_ctx":%d,"n_embd":%d,"n_layer":%d,"n_head":%d}`, tok.VocabSize, o.Ctx, o.Embd, o.Layers, o.Heads)
	var trained struct {
		Parameters uint64  `json:"parameters"`
		FinalLoss  float64 `json:"final_val_loss"`
		TPS        float64 `json:"tokens_per_sec"`
	}
	if err := job(bus.KindTrain, map[string]any{"model": "ref", "tokenizer": "bench", "train_refs": tok.TrainRefs, "val_ref": tok.ValRef,
		"config": json.RawMessage(cfg), "steps": o.Steps, "batch": o.Batch, "lr": o.LR, "warmup": max(o.Steps/20, 1), "eval_every": o.Steps,
		"eval_batches": 2, "checkpoint_every": o.Steps, "log_every": max(o.Steps/10, 1), "seed": 1}, &trained); err != nil {
		return nil, nil, err
	}
	logf("  reference model %s: %d parameters, validation loss %.4f, %.0f tokens/s", cfg, trained.Parameters, trained.FinalLoss, trained.TPS)
	common := map[string]any{"eval_batches": o.EvalBatches, "batch": o.Batch, "seed": 2}
	with := func(m map[string]any) map[string]any {
		for k, v := range common {
			m[k] = v
		}
		return m
	}

	// Quantization: post-training, and after quantization-aware training.
	var ptq, qat, w8a8 quantizer.Result
	if err := job(bus.KindQuantize, with(map[string]any{"model": "ref", "output": "ref-int8"}), &ptq); err != nil {
		return nil, nil, err
	}
	if err := job(bus.KindQuantize, with(map[string]any{"model": "ref", "mode": "w8a8", "calib_batches": 4, "output": "ref-w8a8"}), &w8a8); err != nil {
		return nil, nil, err
	}
	if err := job(bus.KindQuantize, with(map[string]any{"model": "ref", "output": "ref-qat", "qat_steps": o.QATSteps, "lr": o.LR / 10}), &qat); err != nil {
		return nil, nil, err
	}
	// Distillation, with the from-scratch baseline in the same job.
	student := fmt.Sprintf(`{"n_ctx":%d,"n_embd":%d,"n_layer":%d,"n_head":%d}`, o.Ctx, o.StudentEmbd, o.StudentLayers, o.Heads)
	var dis distiller.DistillResult
	if err := job(bus.KindDistill, with(map[string]any{"teacher": "ref", "student": json.RawMessage(student), "tokenizer": "bench", "steps": o.DistillSteps,
		"lr": o.LR, "warmup": max(o.DistillSteps/20, 1), "top_k": o.TopK, "temperature": o.Temperature, "alpha": o.Alpha, "baseline": true, "output": "ref-student"}), &dis); err != nil {
		return nil, nil, err
	}
	// Pruning: 50% unstructured, then a fine-tune that keeps the zeros.
	var pr distiller.PruneResult
	if err := job(bus.KindPrune, with(map[string]any{"model": "ref", "method": "magnitude", "sparsity": 0.5, "steps": o.PruneSteps, "lr": o.LR / 3,
		"warmup": max(o.PruneSteps/10, 1), "output": "ref-pruned"}), &pr); err != nil {
		return nil, nil, err
	}

	// Decoding speed, FP32 against INT8, on one plugin of the backend.
	logf("decoding %d tokens after %d-token prompts, FP32 vs INT8, batch 1 and 8...", o.DecodeTokens, o.PromptTokens)
	dec, err := decodeSpeeds(ctx, st, o, cfg, tok.ValRef, tok.VocabSize)
	if err != nil {
		return nil, nil, err
	}

	var results []tokbench.Result
	var targets []compressTarget
	add := func(r tokbench.Result, target string, pass bool) {
		results = append(results, r)
		targets = append(targets, compressTarget{what: target, pass: pass})
		r.AddNote("target " + target + ": " + map[bool]string{true: "pass", false: "FAIL"}[pass])
		results[len(results)-1] = r
	}
	size := tokbench.Result{Name: "size/int8", Unit: "bytes", Value: float64(ptq.BytesAfter),
		Note: fmt.Sprintf("%d parameters; symmetric per-output-channel INT8 safetensors vs FP32 weights", ptq.Parameters)}
	size.Compare("fp32 checkpoint", float64(ptq.BytesBefore), false)
	add(size, ">= 3.8x smaller", ptq.Ratio >= 3.8)
	for _, d := range dec {
		r := tokbench.Result{Name: fmt.Sprintf("decode/int8/batch=%d", d.batch), Unit: "tokens/s", Value: d.int8,
			Note: fmt.Sprintf("cached multi-step greedy decoding in the %s plugin, best of %d", d.backend, o.DecodeRound)}
		r.Compare("fp32, same plugin", d.fp32, true)
		add(r, ">= 2x", d.int8 >= 2*d.fp32)
	}
	ppl := func(name string, q quantizer.Result, target float64, note string) {
		r := tokbench.Result{Name: name, Unit: "perplexity", Value: q.PerplexityAfter,
			Note: fmt.Sprintf("%+.2f%% on %d validation tokens%s", 100*q.PerplexityChange, q.EvalTokens, note)}
		r.Compare("fp32", q.PerplexityBefore, false)
		add(r, fmt.Sprintf("<= +%g%%", 100*target), q.PerplexityChange <= target)
	}
	ppl("perplexity/ptq-int8", ptq, 0.02, "")
	ppl("perplexity/qat-int8", qat, 0.01, fmt.Sprintf("; after %d QAT steps, which also train on (their FP32 master weights: %.4g)", qat.QATSteps, math.Exp(qat.ValLossQAT)))
	w := tokbench.Result{Name: "perplexity/ptq-w8a8", Unit: "perplexity", Value: w8a8.PerplexityAfter,
		Note: fmt.Sprintf("%+.2f%%; static activation scales from %d calibration batches; no target", 100*w8a8.PerplexityChange, w8a8.CalibBatches)}
	w.Compare("fp32", w8a8.PerplexityBefore, false)
	results = append(results, w)
	targets = append(targets, compressTarget{})

	vs := tokbench.Result{Name: "distill/student-vs-scratch", Unit: "val loss", Value: dis.StudentValLoss,
		Note: fmt.Sprintf("student %d parameters (%.2f of the teacher's), %d steps both, %.1f%% lower", dis.StudentParameters, dis.ParameterRatio, dis.Steps, 100*dis.VsScratch)}
	vs.Compare("same student from scratch", dis.ScratchValLoss, false)
	add(vs, ">= 5% lower", dis.VsScratch >= 0.05)
	vt := tokbench.Result{Name: "distill/student-vs-teacher", Unit: "val loss", Value: dis.StudentValLoss,
		Note: fmt.Sprintf("%+.1f%%; top-%d teacher logits over the bus as Arrow, %s in all", 100*dis.VsTeacher, dis.TopK, humanBytes(dis.TeacherBytes))}
	vt.Compare("teacher", dis.TeacherValLoss, false)
	add(vt, "within 10%", dis.VsTeacher <= 0.10)
	pp := tokbench.Result{Name: "prune/magnitude-50%", Unit: "perplexity", Value: pr.PerplexityFinal,
		Note: fmt.Sprintf("%+.2f%% after %d fine-tune steps (%.2f right after pruning); %.1f%% of linear weights zero; %s dense, %s sparse",
			100*pr.PerplexityChange, pr.Steps, math.Exp(pr.ValLossPruned), 100*pr.Sparsity, humanBytes(pr.DenseBytes), humanBytes(pr.SparseBytes))}
	pp.Compare("dense", pr.PerplexityDense, false)
	add(pp, "<= +3%", pr.PerplexityChange <= 0.03)
	return results, targets, nil
}

// compressPluginCommand finds the plugins of bench compress (tests
// replace it: a test binary is not llmesh).
var compressPluginCommand = pluginCommand

// stackPluginCommand is how the bench's stack launches plugins.
type stackPluginCommand = func(name string) (*exec.Cmd, error)

// decodeSpeed is one batch size's tokens/s of both models.
type decodeSpeed struct {
	batch      int
	fp32, int8 float64
	backend    string
}

// decodeSpeeds loads the FP32 and INT8 reference models in one plugin and
// times cached multi-step greedy decoding (the backend's loop, so no
// per-token round trip) at batch 1 and 8, alternating the two models.
func decodeSpeeds(ctx context.Context, st *stack, o compressOptions, cfg, valRef string, vocab int) ([]decodeSpeed, error) {
	be, err := st.host.Launch(ctx, "cpu")
	if err != nil {
		return nil, err
	}
	defer be.Close()
	info, err := be.Info(ctx)
	if err != nil {
		return nil, err
	}
	backend := info.Name + " (" + strings.Join(info.Features, " ") + ")"
	toks, err := st.bus.GetTokens(ctx, valRef, vocab)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"ref", "ref-int8"} {
		rec, err := st.bus.GetModel(ctx, name)
		if err != nil {
			return nil, err
		}
		w, err := st.bus.GetObject(ctx, rec.Checkpoint)
		if err != nil {
			return nil, err
		}
		if _, err := be.LoadModel(ctx, accel.LoadRequest{ModelID: name, ConfigJSON: []byte(cfg), Weights: w}); err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
	}
	var out []decodeSpeed
	var nextID uint64
	for _, B := range []int{1, 8} {
		d := decodeSpeed{batch: B, backend: backend}
		for round := range o.DecodeRound + 1 { // the first round warms up
			for _, name := range []string{"ref", "ref-int8"} {
				seqs, ids := make([][]int32, B), make([]uint64, B)
				for i := range B {
					off := ((round*B + i) * 997) % (len(toks) - o.PromptTokens)
					seqs[i], ids[i] = toks[off:off+o.PromptTokens], nextID
					nextID++
				}
				// The prefill, then every decoded token in one call.
				if _, err := be.DecodeStep(ctx, accel.DecodeRequest{ModelID: name, Sequences: seqs, CacheIDs: ids}); err != nil {
					return nil, fmt.Errorf("%s prefill: %w", name, err)
				}
				next := make([][]int32, B)
				for i := range next {
					next[i] = seqs[i][len(seqs[i])-1:]
				}
				start := time.Now()
				res, err := be.DecodeStep(ctx, accel.DecodeRequest{ModelID: name, Sequences: next, CacheIDs: ids, Steps: o.DecodeTokens})
				el := time.Since(start)
				if err != nil {
					return nil, fmt.Errorf("%s decode: %w", name, err)
				}
				n := 0
				for _, t := range res.Tokens {
					n += len(t)
				}
				if _, err := be.DecodeStep(ctx, accel.DecodeRequest{ModelID: name, Release: ids}); err != nil {
					return nil, err
				}
				if round == 0 {
					continue
				}
				tps := float64(n) / el.Seconds()
				if name == "ref" {
					d.fp32 = max(d.fp32, tps)
				} else {
					d.int8 = max(d.int8, tps)
				}
			}
		}
		out = append(out, d)
	}
	return out, nil
}

func printCompressTable(w io.Writer, m machine, results []tokbench.Result, targets []compressTarget) {
	fmt.Fprintf(w, "bench compress on %s (%d cores)\n\n", m.CPU, m.Cores)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tours\tunit\tpartner\tpartner value\tratio\ttarget\tpass\tnote")
	for i, r := range results {
		pv, ratio := "—", "—"
		if r.PartnerValue != nil {
			pv = fmt.Sprintf("%.4g", *r.PartnerValue)
		}
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.3fx", *r.Ratio)
		}
		tg, pass := "—", "—"
		if t := targets[i]; t.what != "" {
			tg, pass = t.what, map[bool]string{true: "pass", false: "FAIL"}[t.pass]
		}
		note, _, _ := strings.Cut(r.Note, "; target ")
		if strings.HasPrefix(note, "target ") {
			note = ""
		}
		fmt.Fprintf(tw, "%s\t%.4g\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Value, r.Unit, r.Partner, pv, ratio, tg, pass, note)
	}
	tw.Flush()
}

// putBenchInput registers the corpus file path as dataset name; a .gz file
// is decompressed into tmp first.
func putBenchInput(ctx context.Context, b *bus.Bus, path, tmp, name string) error {
	if strings.HasSuffix(path, ".gz") {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		plain := filepath.Join(tmp, strings.TrimSuffix(filepath.Base(path), ".gz"))
		out, err := os.Create(plain)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, io.LimitReader(zr, 4<<30))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		path = plain
	}
	data, format, docs, err := readDatasetPath(path, "")
	if err != nil {
		return err
	}
	info, err := b.PutBytes(ctx, data)
	if err != nil {
		return err
	}
	return b.PutDataset(ctx, &busv1.DatasetRecord{Name: name, Ref: info.Ref, Size: info.Size, Format: format, Documents: docs, CreatedAt: timestamppb.Now()})
}
