package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/filter"
)

// cmdFilter manages filter policies and checks text:
//
//	llmesh filter policy put KEY FILE   (KEY: a model name or "default")
//	llmesh filter policy get KEY
//	llmesh filter check [--model M] [--direction prompt|output] TEXT
func cmdFilter(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "filter policy put KEY FILE | filter policy get KEY | filter check [--model M] TEXT"
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	verb := args[0]
	args = args[1:]
	if verb == "policy" {
		if len(args) == 0 {
			return fmt.Errorf("%w: %s", errUsage, use)
		}
		verb, args = "policy "+args[0], args[1:]
	}
	fs := flag.NewFlagSet("filter "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	model := fs.String("model", "", "model whose policy applies (check)")
	dir := fs.String("direction", "prompt", "prompt or output (check)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch verb {
	case "policy put":
		if fs.NArg() != 2 {
			return fmt.Errorf("%w: filter policy put KEY FILE", errUsage)
		}
		data, err := os.ReadFile(fs.Arg(1))
		if err != nil {
			return err
		}
		if _, err := filter.ParsePolicy(data); err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(1), err)
		}
		b, err := connectBus(ctx, *natsURL)
		if err != nil {
			return err
		}
		defer b.Close()
		rev, err := filter.PutPolicy(ctx, b, fs.Arg(0), data)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "policy %s: version %d\n", fs.Arg(0), rev)
		return nil
	case "policy get":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: filter policy get KEY", errUsage)
		}
		b, err := connectBus(ctx, *natsURL)
		if err != nil {
			return err
		}
		defer b.Close()
		kv, err := b.KeyValue(ctx, bus.BucketFilterPolicies)
		if err != nil {
			return err
		}
		ent, err := kv.Get(ctx, fs.Arg(0))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			p, _ := json.MarshalIndent(filter.DefaultPolicy(), "", "  ")
			fmt.Fprintf(stderr, "no policy %q stored: the built-in default applies\n", fs.Arg(0))
			fmt.Fprintln(stdout, string(p))
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "policy %s: version %d\n", fs.Arg(0), ent.Revision())
		fmt.Fprintln(stdout, strings.TrimSpace(string(ent.Value())))
		return nil
	case "check":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: filter check [--model M] TEXT", errUsage)
		}
		b, err := connectBus(ctx, *natsURL)
		if err != nil {
			return err
		}
		defer b.Close()
		c, err := filter.NewClient(filter.ClientConfig{Bus: b})
		if err != nil {
			return err
		}
		rep, err := c.Check(ctx, &busv1.FilterCheckRequest{Model: *model, Text: fs.Arg(0), Direction: *dir})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s (policy version %d)\n", rep.Action, rep.PolicyVersion)
		if rep.Action != "block" {
			fmt.Fprintln(stdout, rep.Text)
		}
		for _, f := range rep.Findings {
			fmt.Fprintf(stdout, "  %s %s %s/%s [%d,%d)\n", f.Action, f.Category, f.Stage, f.Rule, f.Start, f.End)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown filter command %q: %s", errUsage, verb, use)
}
