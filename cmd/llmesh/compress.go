package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/distiller"
	"github.com/llmesh/llmesh/services/quantizer"
)

// compressFlags are the flags every compression command has.
type compressFlags struct {
	natsURL *string
	asJSON  *bool
	extra   *string
	output  *string
	backend *string
}

func newCompressFlags(fs *flag.FlagSet) compressFlags {
	return compressFlags{
		natsURL: fs.String("nats", "nats://127.0.0.1:4222", "NATS server of a running mesh"),
		asJSON:  fs.Bool("json", false, "print the job's result as JSON"),
		extra:   fs.String("spec", "", `more job spec fields as a JSON object (e.g. '{"lr":0.001,"eval_batches":16}')`),
		output:  fs.String("output", "", "name to register the new model under (default: derived from the source)"),
		backend: fs.String("backend", "", "accelerator backend (default cpu)"),
	}
}

// spec merges the flags' fields into the --spec object (flags win).
func (c compressFlags) spec(fields map[string]any) (map[string]any, error) {
	spec := map[string]any{}
	if *c.extra != "" {
		if err := json.Unmarshal([]byte(*c.extra), &spec); err != nil || spec == nil {
			return nil, fmt.Errorf("%w: --spec is not a JSON object", errUsage)
		}
	}
	for k, v := range fields {
		spec[k] = v
	}
	if *c.output != "" {
		spec["output"] = *c.output
	}
	if *c.backend != "" {
		spec["backend"] = *c.backend
	}
	return spec, nil
}

// runJob submits a job to a running mesh, shows its events and returns
// its result.
func runJob(ctx context.Context, natsURL, kind string, spec map[string]any, stderr io.Writer) (json.RawMessage, string, error) {
	b, err := connectBus(ctx, natsURL)
	if err != nil {
		return nil, "", err
	}
	defer b.Close()
	return awaitJob(ctx, b, kind, spec, newProgress(stderr, false), nil)
}

// awaitJob submits a job, shows its events on p (when not nil) until it
// finishes and returns its result; a value on stackErr (a service of an
// embedded stack died) ends the wait.
func awaitJob(ctx context.Context, b *bus.Bus, kind string, spec map[string]any, p *progress, stackErr <-chan error) (json.RawMessage, string, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, "", err
	}
	rec, err := b.SubmitJob(ctx, kind, js, bus.SubmitOptions{})
	if err != nil {
		return nil, "", err
	}
	if p != nil {
		p.log("%s job %s submitted", kind, rec.Id)
		defer p.finish()
	}
	events, err := b.WatchEvents(ctx, rec.Id)
	if err != nil {
		return nil, rec.Id, err
	}
wait:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				break wait
			}
			if p != nil {
				p.event(ev)
			}
		case err := <-stackErr:
			return nil, rec.Id, err
		}
	}
	if ctx.Err() != nil {
		_, _ = b.CancelJob(context.WithoutCancel(ctx), rec.Id)
		return nil, rec.Id, ctx.Err()
	}
	final, err := b.GetJob(ctx, rec.Id)
	if err != nil {
		return nil, rec.Id, err
	}
	if final.State != busv1.JobState_JOB_STATE_SUCCEEDED {
		return nil, rec.Id, fmt.Errorf("%s job %s %s: %s", kind, rec.Id, strings.ToLower(strings.TrimPrefix(final.State.String(), "JOB_STATE_")), final.Error)
	}
	return final.ResultJson, rec.Id, nil
}

func printJSON(w io.Writer, job string, result json.RawMessage) error {
	_, err := fmt.Fprintf(w, "{\"job\":%q,\"result\":%s}\n", job, result)
	return err
}

func cmdQuantize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quantize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := newCompressFlags(fs)
	model := fs.String("model", "", "registered FP32 model to quantize")
	mode := fs.String("mode", "int8", "int8 (weights; activations quantized per call) or w8a8 (static activation scales, calibrated)")
	calib := fs.Int("calib-batches", 0, "validation batches that calibrate w8a8 activation scales (default 8)")
	qat := fs.Int("qat-steps", 0, "quantization-aware fine-tuning steps before quantizing (0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: quantize --model M [--mode int8|w8a8] [--qat-steps N]", errUsage)
	}
	f := map[string]any{"model": *model, "mode": *mode}
	if *calib != 0 {
		f["calib_batches"] = *calib
	}
	if *qat != 0 {
		f["qat_steps"] = *qat
	}
	spec, err := cf.spec(f)
	if err != nil {
		return err
	}
	raw, id, err := runJob(ctx, *cf.natsURL, bus.KindQuantize, spec, stderr)
	if err != nil {
		return err
	}
	if *cf.asJSON {
		return printJSON(stdout, id, raw)
	}
	var r quantizer.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s quantized (%s) by job %s\n", r.Source, r.Mode, id)
	fmt.Fprintf(stdout, "  model       %s (%s)\n", orNone(r.Model), short(r.Checkpoint))
	fmt.Fprintf(stdout, "  size        %s FP32 -> %s INT8 (%.2fx smaller)\n", humanBytes(r.BytesBefore), humanBytes(r.BytesAfter), r.Ratio)
	fmt.Fprintf(stdout, "  perplexity  %.3f FP32 -> %.3f INT8 (%+.2f%%) on %d validation tokens\n", r.PerplexityBefore, r.PerplexityAfter, 100*r.PerplexityChange, r.EvalTokens)
	if r.QATSteps > 0 {
		fmt.Fprintf(stdout, "  qat         %d steps; FP32 validation loss after them %.4f\n", r.QATSteps, r.ValLossQAT)
	}
	return nil
}

func cmdDistill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("distill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := newCompressFlags(fs)
	teacher := fs.String("teacher", "", "registered teacher model")
	student := fs.String("student", "", `student transformer config as JSON (e.g. '{"n_ctx":256,"n_embd":128,"n_layer":2,"n_head":4}'; vocab_size is the teacher's)`)
	steps := fs.Int("steps", 0, "training steps (default 200)")
	temp := fs.Float64("temperature", 0, "softmax temperature of both distributions (default 1)")
	alpha := fs.Float64("alpha", 0, "weight of the distillation term; 1-alpha goes to cross-entropy (default 0.5)")
	topK := fs.Int("top-k", 0, "teacher logits sent per position (default 32)")
	baseline := fs.Bool("baseline", false, "also train the same student from scratch and compare")
	tok := fs.String("tokenizer", "", "the student's tokenizer (must be the teacher's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *teacher == "" || *student == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: distill --teacher M --student CONFIG_JSON [--steps N] [--baseline]", errUsage)
	}
	if !json.Valid([]byte(*student)) {
		return fmt.Errorf("%w: --student is not JSON", errUsage)
	}
	f := map[string]any{"teacher": *teacher, "student": json.RawMessage(*student), "baseline": *baseline}
	for k, v := range map[string]int{"steps": *steps, "top_k": *topK} {
		if v != 0 {
			f[k] = v
		}
	}
	for k, v := range map[string]float64{"temperature": *temp, "alpha": *alpha} {
		if v != 0 {
			f[k] = v
		}
	}
	if *tok != "" {
		f["tokenizer"] = *tok
	}
	spec, err := cf.spec(f)
	if err != nil {
		return err
	}
	raw, id, err := runJob(ctx, *cf.natsURL, bus.KindDistill, spec, stderr)
	if err != nil {
		return err
	}
	if *cf.asJSON {
		return printJSON(stdout, id, raw)
	}
	var r distiller.DistillResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nstudent %s distilled from %s by job %s\n", r.Model, r.Teacher, id)
	fmt.Fprintf(stdout, "  parameters  %s student, %s teacher (%.2f)\n", humanCount(int64(r.StudentParameters)), humanCount(int64(r.TeacherParameters)), r.ParameterRatio)
	fmt.Fprintf(stdout, "  val loss    student %.4f, teacher %.4f (%+.1f%%)\n", r.StudentValLoss, r.TeacherValLoss, 100*r.VsTeacher)
	if r.ScratchValLoss != 0 {
		fmt.Fprintf(stdout, "  scratch     %.4f (the distilled student is %.1f%% lower)\n", r.ScratchValLoss, 100*r.VsScratch)
	}
	fmt.Fprintf(stdout, "  teacher     top-%d logits at T=%g, alpha %g: %s over the bus in %d steps\n", r.TopK, r.Temperature, r.Alpha, humanBytes(r.TeacherBytes), r.Steps)
	return nil
}

func cmdPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("prune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := newCompressFlags(fs)
	model := fs.String("model", "", "registered model to prune")
	method := fs.String("method", "magnitude", "magnitude (unstructured), heads or neurons")
	sparsity := fs.Float64("sparsity", 0.5, "fraction of the linear weights (magnitude), heads or neurons removed")
	steps := fs.Int("steps", 0, "fine-tuning steps after pruning (default 100; -1: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: prune --model M [--method magnitude|heads|neurons] [--sparsity S] [--steps N]", errUsage)
	}
	f := map[string]any{"model": *model, "method": *method, "sparsity": *sparsity}
	if *steps != 0 {
		f["steps"] = *steps
	}
	spec, err := cf.spec(f)
	if err != nil {
		return err
	}
	raw, id, err := runJob(ctx, *cf.natsURL, bus.KindPrune, spec, stderr)
	if err != nil {
		return err
	}
	if *cf.asJSON {
		return printJSON(stdout, id, raw)
	}
	var r distiller.PruneResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s pruned (%s, target %.0f%%) by job %s\n", r.Source, r.Method, 100*r.Target, id)
	fmt.Fprintf(stdout, "  model       %s (%s)\n", orNone(r.Model), short(r.Checkpoint))
	fmt.Fprintf(stdout, "  sparsity    %.1f%% of %s linear weights zero; %s of %s parameters nonzero\n", 100*r.Sparsity, humanCount(r.LinearWeights), humanCount(r.NonzeroParams), humanCount(int64(r.Parameters)))
	fmt.Fprintf(stdout, "  size        %s dense, %s sparse (bitmap + nonzeros)\n", humanBytes(r.DenseBytes), humanBytes(r.SparseBytes))
	fmt.Fprintf(stdout, "  val loss    %.4f dense, %.4f pruned, %.4f after %d fine-tune steps (perplexity %+.2f%%)\n", r.ValLossDense, r.ValLossPruned, r.ValLossFinetuned, r.Steps, 100*r.PerplexityChange)
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(not registered)"
	}
	return s
}
