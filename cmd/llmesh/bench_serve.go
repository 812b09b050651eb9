package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/services/inference/servebench"
)

// benchServe drives the inference service (embedded bus, cpu plugin,
// reference model with seeded random weights) with 1, 8 and 32 clients,
// continuous batching off and on in the same run, and single-stream
// decoding beside PyTorch (bench/torch/decode.py).
func benchServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := servebench.Reference()
	fs := flag.NewFlagSet("bench serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	fs.IntVar(&o.Vocab, "vocab", o.Vocab, "vocabulary size (the tokenizer trained to it)")
	fs.IntVar(&o.Ctx, "ctx", o.Ctx, "context length")
	fs.IntVar(&o.Embd, "embd", o.Embd, "d_model")
	fs.IntVar(&o.Layers, "layers", o.Layers, "layers")
	fs.IntVar(&o.Heads, "heads", o.Heads, "attention heads")
	fs.IntVar(&o.PromptTokens, "prompt-tokens", o.PromptTokens, "prompt length in tokens")
	fs.IntVar(&o.MaxTokens, "tokens", o.MaxTokens, "tokens generated per request")
	fs.IntVar(&o.Requests, "requests", o.Requests, "requests per client count (at least 4 per client)")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "alternating off/on rounds per client count (the best counts)")
	fs.IntVar(&o.Threads, "threads", o.Threads, "cores for the PyTorch partner")
	fs.IntVar(&o.DecodeSteps, "decode-steps", 0, "greedy tokens a decode call may pick in the backend, batching on and off alike (0: the service's default)")
	clients := fs.String("clients", "1,8,32", "concurrent client counts, comma-separated")
	script := fs.String("torch-script", "", "PyTorch partner (default: bench/torch/decode.py found from here or above)")
	noTorch := fs.Bool("no-torch", false, "skip the PyTorch partner")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: bench serve takes no arguments", errUsage)
	}
	o.Clients = nil
	for _, c := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 || n > 1024 {
			return fmt.Errorf("%w: --clients %q: want positive counts up to 1024", errUsage, *clients)
		}
		o.Clients = append(o.Clients, n)
	}
	if o.DecodeSteps < 0 || o.DecodeSteps > accel.MaxDecodeSteps {
		return fmt.Errorf("%w: --decode-steps %d: want 0 to %d", errUsage, o.DecodeSteps, accel.MaxDecodeSteps)
	}
	if o.PromptTokens < 1 || o.MaxTokens < 1 || o.PromptTokens+o.MaxTokens > o.Ctx {
		return fmt.Errorf("%w: --prompt-tokens %d + --tokens %d must be positive and fit the context of %d", errUsage, o.PromptTokens, o.MaxTokens, o.Ctx)
	}
	o.PluginCommand = pluginCommand("")
	if !*noTorch {
		o.Torch, o.Python = *script, trainStepPython
		if o.Torch == "" {
			o.Torch = findServeScript()
		}
	}
	if !*asJSON {
		o.Log = stderr
	}
	results, err := servebench.Run(ctx, o)
	if err != nil {
		return err
	}
	return writeBench(stdout, "serve", *asJSON, results)
}

// findServeScript looks for bench/torch/decode.py from the working folder up.
func findServeScript() string {
	dir, _ := os.Getwd()
	for dir != "" {
		p := filepath.Join(dir, "bench", "torch", "decode.py")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		up := filepath.Dir(dir)
		if up == dir {
			break
		}
		dir = up
	}
	return "bench/torch/decode.py"
}
