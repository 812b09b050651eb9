package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/stub"
	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/gateway"
)

const usage = `llmesh runs the life of a small language model as a mesh of services on NATS.

Usage:
  llmesh up [--data DIR] [--addr HOST:PORT] [--nats-port N]   run everything locally
  llmesh serve <service> --nats URL [--data DIR] [--addr A]    run one service (%s)
  llmesh pipeline run FILE [--nats URL] [--data DIR] [--json]  run a pipeline file
  llmesh generate --model M --prompt P [--nats URL] [...]      generate text
  llmesh jobs [list|get|watch|cancel] [ID] [--nats URL]        inspect jobs
  llmesh quantize --model M [--mode int8|w8a8] [--qat-steps N]  quantize a model to INT8 (--nats URL, --json)
  llmesh distill --teacher M --student CONFIG [--baseline]      distill a smaller student from a teacher
  llmesh prune --model M [--method magnitude|heads|neurons] [--sparsity S]  prune, then fine-tune
  llmesh dataset put NAME PATH | dataset list [--nats URL]      upload a file or a folder of .txt/.md files
  llmesh plugin serve <backend>                                 serve a built-in backend (cpu, tpu)
  llmesh plugins swap <model> <backend> | plugins status [--nats URL]  hot-swap a model's backend; show plugins
  llmesh filter policy put KEY FILE | policy get KEY | check [--model M] TEXT   manage filter policies, check text
  llmesh bench <area> [--json] [...]                            measure beside partners, same run (kernels, train-step, train, serve, compress, tokenizer, dataprep, filter)

Run "llmesh <command> -h" for a command's flags.
`

// builtinBackends are the backends this binary can serve itself.
var builtinBackends = map[string]func() accel.Backend{
	"cpu": func() accel.Backend { return engine.New("cpu", transformer.PortableKernels()) },
	"tpu": func() accel.Backend {
		return stub.New("tpu", "the TPU backend is a stub by design")
	},
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(stderr, usage, strings.Join(Services, ", "))
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var err error
	switch args[0] {
	case "up":
		err = cmdUp(ctx, args[1:], stdout, stderr)
	case "serve":
		err = cmdServe(ctx, args[1:], stdout, stderr)
	case "pipeline":
		err = cmdPipeline(ctx, args[1:], stdout, stderr)
	case "generate":
		err = cmdGenerate(ctx, args[1:], stdout, stderr)
	case "quantize":
		err = cmdQuantize(ctx, args[1:], stdout, stderr)
	case "distill":
		err = cmdDistill(ctx, args[1:], stdout, stderr)
	case "prune":
		err = cmdPrune(ctx, args[1:], stdout, stderr)
	case "jobs":
		err = cmdJobs(ctx, args[1:], stdout, stderr)
	case "bench":
		err = cmdBench(ctx, args[1:], stdout, stderr)
	case "dataset":
		err = cmdDataset(ctx, args[1:], stdout, stderr)
	case "plugins":
		err = cmdPlugins(ctx, args[1:], stdout, stderr)
	case "filter":
		err = cmdFilter(ctx, args[1:], stdout, stderr)
	case "plugin":
		if len(args) != 3 || args[1] != "serve" {
			err = fmt.Errorf("%w: llmesh plugin serve <backend>", errUsage)
			break
		}
		mk, ok := builtinBackends[args[2]]
		if !ok {
			err = fmt.Errorf("no built-in backend %q (built in: cpu, tpu)", args[2])
			break
		}
		accel.Serve(mk())
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "llmesh: %v\n\n", err)
		fmt.Fprintf(stderr, usage, strings.Join(Services, ", "))
		return 2
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "llmesh: interrupted")
		return 130
	default:
		fmt.Fprintf(stderr, "llmesh: %v\n", err)
		return 1
	}
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func defaultDataDir() string {
	if d := os.Getenv("LLMESH_DATA"); d != "" {
		return d
	}
	return ".llmesh"
}

func cmdUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", defaultDataDir(), "data folder (NATS store, API token)")
	addr := fs.String("addr", gateway.DefaultAddr, "gateway listen address")
	natsPort := fs.Int("nats-port", 4222, "embedded NATS port on 127.0.0.1 (0: in-process only)")
	pluginDir := fs.String("plugin-dir", "", "folder with llmesh-plugin-<backend> binaries")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: up takes no arguments", errUsage)
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	st, err := startStack(ctx, stackConfig{
		DataDir: *data, NATSHost: "127.0.0.1", NATSPort: *natsPort, Services: Services, Addr: *addr,
		PluginDir: *pluginDir, Logger: log,
		GatewayReady: func(addr, token string, created bool) {
			abs, _ := filepath.Abs(*data)
			fmt.Fprintf(stdout, "llmesh is up\n  gateway  http://%s\n  nats     %s\n  data     %s\n", addr, natsURLOf(*natsPort), abs)
			if created {
				fmt.Fprintf(stdout, "  token    %s  (new; kept in %s)\n", token, filepath.Join(abs, gateway.TokenFile))
			} else {
				fmt.Fprintf(stdout, "  token    %s\n", token)
			}
			fmt.Fprintf(stdout, "\nTry:\n  curl -s -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \\\n    http://%s/llmesh.api.v1.ModelService/ListModels -d '{}'\n\nCtrl-C stops.\n", token, addr)
		},
	})
	if err != nil {
		return err
	}
	defer st.Close()
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "stopping")
		return nil
	case err := <-st.Err():
		return err
	}
}

func natsURLOf(port int) string {
	if port == 0 {
		return "in-process"
	}
	return fmt.Sprintf("nats://127.0.0.1:%d", port)
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: serve <service> --nats URL", errUsage)
	}
	name := args[0]
	fs := flag.NewFlagSet("serve "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	data := fs.String("data", defaultDataDir(), "data folder (the gateway keeps its API token here)")
	addr := fs.String("addr", gateway.DefaultAddr, "gateway listen address")
	pluginDir := fs.String("plugin-dir", "", "folder with llmesh-plugin-<backend> binaries")
	level := fs.String("log-level", "info", "log level")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	known := false
	for _, s := range Services {
		known = known || s == name
	}
	if !known {
		return fmt.Errorf("%w: unknown service %q (want one of %s)", errUsage, name, strings.Join(Services, ", "))
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	st, err := startStack(ctx, stackConfig{
		DataDir: *data, NATSURL: *natsURL, Services: []string{name}, Addr: *addr, PluginDir: *pluginDir, Logger: log,
		GatewayReady: func(addr, token string, created bool) {
			fmt.Fprintf(stdout, "gateway on http://%s (token %s)\n", addr, token)
		},
	})
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("serving", "service", name, "nats", *natsURL)
	select {
	case <-ctx.Done():
		return nil
	case err := <-st.Err():
		return err
	}
}
