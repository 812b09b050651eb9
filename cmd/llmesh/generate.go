package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// connectBus connects a client command to a running mesh.
func connectBus(ctx context.Context, url string) (*bus.Bus, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{URL: url, Name: "llmesh-cli"})
	if err != nil {
		return nil, fmt.Errorf("connect to %s (is `llmesh up` running?): %w", url, err)
	}
	return b, nil
}

func cmdGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	model := fs.String("model", "", "model name")
	prompt := fs.String("prompt", "", "prompt text")
	maxTokens := fs.Int("max-tokens", 64, "most tokens to generate")
	temp := fs.Float64("temperature", 0, "sampling temperature (0: greedy)")
	topK := fs.Int("top-k", 0, "sample among the k most likely tokens (0: all)")
	seed := fs.Uint64("seed", 0, "sampling seed")
	topP := fs.Float64("top-p", 0, "sample from the smallest set of tokens whose probability reaches p (0: all)")
	penalty := fs.Float64("repetition-penalty", 0, "divide the logits of tokens already seen by this (>1; 0: none)")
	var stops stringList
	fs.Var(&stops, "stop", "stop before this string (repeatable)")
	exit := fs.Float64("exit-threshold", 0, "early exit at this confidence on models with exit heads (0: off)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: generate --model M --prompt P", errUsage)
	}
	b, err := connectBus(ctx, *natsURL)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprint(stdout, *prompt)
	err = b.Generate(ctx, &busv1.GenerateRequest{
		Model: *model, Prompt: *prompt, MaxTokens: int32(*maxTokens), Temperature: float32(*temp), TopK: int32(*topK), Seed: *seed,
		TopP: float32(*topP), RepetitionPenalty: float32(*penalty), Stop: stops, ExitThreshold: float32(*exit),
	}, func(c *busv1.GenerateChunk) error {
		fmt.Fprint(stdout, c.Text)
		if c.Done {
			fmt.Fprintf(stdout, "\n")
			saved := ""
			if c.LayersSaved > 0 {
				saved = fmt.Sprintf(", %d layers saved by early exit", c.LayersSaved)
			}
			fmt.Fprintf(stderr, "[%d prompt + %d generated tokens, %s%s]\n", c.PromptTokens, c.CompletionTokens, c.FinishReason, saved)
		}
		return nil
	})
	return err
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func cmdJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	verb := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("jobs "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	kind := fs.String("kind", "", "list only jobs of this kind")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := connectBus(ctx, *natsURL)
	if err != nil {
		return err
	}
	defer b.Close()
	id := fs.Arg(0)
	needID := func() error {
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: jobs %s ID", errUsage, verb)
		}
		return nil
	}
	switch verb {
	case "list":
		recs, err := b.ListJobs(ctx, *kind)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-40s %-10s %-10s %s\n", "ID", "KIND", "STATE", "UPDATED")
		for _, r := range recs {
			fmt.Fprintf(stdout, "%-40s %-10s %-10s %s\n", r.Id, r.Kind, stateName(r.State), r.UpdatedAt.AsTime().Local().Format(time.DateTime))
		}
		return nil
	case "get":
		if err := needID(); err != nil {
			return err
		}
		r, err := b.GetJob(ctx, id)
		if err != nil {
			return err
		}
		out, _ := protojson.MarshalOptions{Multiline: true}.Marshal(r)
		fmt.Fprintln(stdout, string(out))
		if len(r.ResultJson) > 0 {
			fmt.Fprintf(stdout, "result: %s\n", r.ResultJson)
		}
		return nil
	case "watch":
		if err := needID(); err != nil {
			return err
		}
		events, err := b.WatchEvents(ctx, id)
		if err != nil {
			return err
		}
		p := newProgress(stdout, false)
		for ev := range events {
			p.event(ev)
		}
		p.finish()
		return ctx.Err()
	case "cancel":
		if err := needID(); err != nil {
			return err
		}
		r, err := b.CancelJob(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s\n", r.Id, stateName(r.State))
		return nil
	}
	return fmt.Errorf("%w: jobs list|get|watch|cancel", errUsage)
}

func stateName(s busv1.JobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}
