package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/llmesh/llmesh/bus"
)

// cmdPlugins is `llmesh plugins swap <model> <backend>` and `llmesh
// plugins status`: both reach every inference instance over the bus.
func cmdPlugins(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "plugins swap <model> <backend> | plugins status [--nats URL]"
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	verb := args[0]
	fs := flag.NewFlagSet("plugins "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	switch {
	case verb == "swap" && len(pos) == 2, verb == "status" && len(pos) == 0:
	default:
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	b, err := connectBus(ctx, *natsURL)
	if err != nil {
		return err
	}
	defer b.Close()
	if verb == "swap" {
		return pluginsSwap(ctx, b, pos[0], pos[1], stdout)
	}
	return pluginsStatus(ctx, b, stdout)
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, which it returns.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func pluginsSwap(ctx context.Context, b *bus.Bus, model, backend string, stdout io.Writer) error {
	replies, err := b.SwapBackend(ctx, model, backend)
	for _, r := range replies {
		if r.Error != "" {
			fmt.Fprintf(stdout, "%s: failed: %s\n", r.Instance, r.Error)
			continue
		}
		from := "not loaded"
		if r.OldBackend != "" {
			from = fmt.Sprintf("%s (pid %d)", r.OldBackend, r.OldPid)
		}
		fmt.Fprintf(stdout, "%s: %s: %s -> %s (pid %d) in %dms\n", r.Instance, r.Model, from, r.Backend, r.Pid, r.Millis)
	}
	return err
}

func pluginsStatus(ctx context.Context, b *bus.Bus, stdout io.Writer) error {
	sts, err := b.InferenceStatus(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-32s %-24s %-8s %8s %8s %9s %8s\n", "INSTANCE", "MODEL", "BACKEND", "PID", "RESTARTS", "IN-FLIGHT", "DRAINING")
	for _, st := range sts {
		if len(st.Models) == 0 {
			fmt.Fprintf(stdout, "%-32s %-24s\n", st.Instance, "(no model loaded)")
		}
		for _, m := range st.Models {
			fmt.Fprintf(stdout, "%-32s %-24s %-8s %8d %8d %9d %8d\n", st.Instance, m.Model, m.Backend, m.Pid, m.Restarts, m.InFlight, m.Draining)
		}
	}
	return nil
}
