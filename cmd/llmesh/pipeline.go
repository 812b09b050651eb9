package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/pipeline"
)

func cmdPipeline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "run" {
		return fmt.Errorf("%w: pipeline run FILE", errUsage)
	}
	fs := flag.NewFlagSet("pipeline run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", "", "NATS server of a running mesh (default: start an embedded stack)")
	data := fs.String("data", "", "data folder of the embedded stack (default: a temporary folder)")
	asJSON := fs.Bool("json", false, "end with one JSON object summarising every stage")
	level := fs.String("log-level", "warn", "log level of the embedded stack")
	pluginDir := fs.String("plugin-dir", "", "folder with llmesh-plugin-<backend> binaries")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: pipeline run FILE", errUsage)
	}
	raw, err := readLimited(fs.Arg(0), pipeline.MaxYAML)
	if err != nil {
		return err
	}
	specJSON, spec, err := pipeline.ParseYAML(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	cfg := stackConfig{NATSURL: *natsURL, DataDir: *data, PluginDir: *pluginDir, Logger: log}
	if *natsURL == "" {
		cfg.Services = []string{"dataprep", "tokenizer", "trainer", "quantizer", "distiller", "inference", "pipeline"}
		if cfg.DataDir == "" {
			tmp, err := os.MkdirTemp("", "llmesh-pipeline-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			cfg.DataDir = tmp
		}
	}
	st, err := startStack(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	sum, err := runPipeline(ctx, st, specJSON, newProgress(stderr, *asJSON))
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(sum)
	}
	printSummary(stdout, spec, sum)
	return nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// pipelineResult is the --json output: the job and its summary.
type pipelineResult struct {
	Job string `json:"job"`
	pipeline.Summary
}

// runPipeline submits the pipeline job, shows its events and returns its
// summary; the stack's services fail the run if one of them dies.
func runPipeline(ctx context.Context, st *stack, specJSON []byte, p *progress) (*pipelineResult, error) {
	rec, err := st.bus.SubmitJob(ctx, "pipeline", specJSON, bus.SubmitOptions{})
	if err != nil {
		return nil, err
	}
	p.log("pipeline job %s submitted", rec.Id)
	events, err := st.bus.WatchEvents(ctx, rec.Id)
	if err != nil {
		return nil, err
	}
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				p.finish()
				if ctx.Err() != nil {
					// Interrupted: leave no half-run pipeline behind.
					_, _ = st.bus.CancelJob(context.WithoutCancel(ctx), rec.Id)
					return nil, ctx.Err()
				}
				final, err := st.bus.GetJob(ctx, rec.Id)
				if err != nil {
					return nil, err
				}
				if final.State != busv1.JobState_JOB_STATE_SUCCEEDED {
					return nil, fmt.Errorf("pipeline %s %s: %s", rec.Id, strings.ToLower(strings.TrimPrefix(final.State.String(), "JOB_STATE_")), final.Error)
				}
				out := &pipelineResult{Job: rec.Id}
				if err := json.Unmarshal(final.ResultJson, &out.Summary); err != nil {
					return nil, fmt.Errorf("pipeline %s: summary: %w", rec.Id, err)
				}
				return out, nil
			}
			p.event(ev)
		case err := <-st.Err():
			p.finish()
			return nil, err
		}
	}
}

func printSummary(w io.Writer, spec *pipeline.Spec, s *pipelineResult) {
	fmt.Fprintf(w, "\npipeline %s (job %s) finished in %s\n", s.Name, s.Job, (time.Duration(s.Seconds) * time.Second).String())
	fmt.Fprintf(w, "  corpus      %d documents, %s (dataset %s)\n", s.Documents, humanBytes(s.CorpusBytes), s.Dataset)
	fmt.Fprintf(w, "  vocabulary  %d tokens (tokenizer %s); %d train and %d validation tokens\n", s.VocabSize, s.Tokenizer, s.TrainTokens, s.ValTokens)
	fmt.Fprintf(w, "  model       %s: %s parameters, %d steps at %.0f tokens/s\n", s.Model, humanCount(s.Parameters), s.Steps, s.TokensPerSec)
	fmt.Fprintf(w, "  val loss    %.4f at the start, %.4f at the end (%.1f%% lower)\n", s.InitialValLoss, s.FinalValLoss, 100*(1-s.FinalValLoss/s.InitialValLoss))
	if len(s.Models) > 1 {
		var chain []string
		for _, st := range []string{"train", "quantize", "distill", "prune"} {
			if m, ok := s.Models[st]; ok {
				chain = append(chain, st+" "+m)
			}
		}
		fmt.Fprintf(w, "  models      %s; samples from %s\n", strings.Join(chain, ", "), s.SampledModel)
	}
	if s.PluginRestarts > 0 {
		fmt.Fprintf(w, "  restarts    the backend plugin was restarted %d times\n", s.PluginRestarts)
	}
	for _, smp := range s.Samples {
		prompt := smp.Prompt
		if prompt == "" {
			prompt = "(empty prompt)"
		}
		fmt.Fprintf(w, "  sample      %s ⟶\n%s\n", prompt, indent(smp.Prompt+smp.Text, "              "))
	}
}

func indent(s, pad string) string {
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func humanCount(n int64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

var _ = slog.Default
var _ = filepath.Join
var _ = errors.New
