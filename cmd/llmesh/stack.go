package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/gateway"
	"github.com/llmesh/llmesh/services/dataprep"
	"github.com/llmesh/llmesh/services/distiller"
	"github.com/llmesh/llmesh/services/filter"
	"github.com/llmesh/llmesh/services/inference"
	"github.com/llmesh/llmesh/services/pipeline"
	"github.com/llmesh/llmesh/services/quantizer"
	"github.com/llmesh/llmesh/services/tokenizer"
	"github.com/llmesh/llmesh/services/trainer"
)

// Services are the names `serve` accepts, in start order.
var Services = []string{"dataprep", "tokenizer", "trainer", "quantizer", "distiller", "filter", "inference", "pipeline", "gateway"}

// The filter client is the inference service's filter.
var _ inference.Filter = (*filter.Client)(nil)

// stackConfig says what one process runs.
type stackConfig struct {
	DataDir   string   // data folder (NATS store, token)
	NATSURL   string   // external server; empty starts an embedded one
	NATSHost  string   // embedded server's listen host
	NATSPort  int      // embedded server's port; 0 runs it in-process only
	Services  []string // which services to run
	Addr      string   // gateway address
	PluginDir string
	Logger    *slog.Logger
	// PluginCommand overrides how plugins are launched (tests).
	PluginCommand func(name string) (*exec.Cmd, error)
	// GatewayReady receives the gateway's address and token.
	GatewayReady func(addr, token string, created bool)
}

// stack is a running set of services on one bus.
type stack struct {
	server *bus.Server
	bus    *bus.Bus
	host   *accel.Host
	wg     sync.WaitGroup
	errc   chan error
	cancel context.CancelFunc

	metrics atomic.Pointer[http.Handler] // the trainer's, once it runs here
}

// serveMetrics serves the metrics of the services this stack runs (the
// trainer's), or 404 when none of them has any.
func (st *stack) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if h := st.metrics.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.Error(w, "no metrics: this process runs no trainer", http.StatusNotFound)
}

func startStack(ctx context.Context, cfg stackConfig) (*stack, error) {
	log := cfg.Logger
	st := &stack{errc: make(chan error, len(cfg.Services)+1)}
	ctx, st.cancel = context.WithCancel(ctx)
	var err error
	fail := func(e error) (*stack, error) { st.Close(); return nil, e }

	bcfg := bus.Config{URL: cfg.NATSURL, Name: "llmesh", Logger: log}
	if cfg.NATSURL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fail(err)
		}
		st.server, err = bus.StartServer(bus.ServerConfig{
			DataDir: filepath.Join(cfg.DataDir, "nats"), Host: cfg.NATSHost, Port: cfg.NATSPort,
			InProcess: cfg.NATSPort == 0, Logger: log,
		})
		if err != nil {
			return fail(err)
		}
		bcfg.Server = st.server
	}
	if st.bus, err = bus.Connect(ctx, bcfg); err != nil {
		return fail(err)
	}
	if err := st.bus.Setup(ctx); err != nil {
		return fail(err)
	}
	needHost := false
	for _, s := range cfg.Services {
		needHost = needHost || s == "trainer" || s == "inference" || s == "filter" || s == "quantizer" || s == "distiller"
	}
	if needHost {
		cmd := cfg.PluginCommand
		if cmd == nil {
			cmd = pluginCommand(cfg.PluginDir)
		}
		st.host, err = accel.NewHost(accel.HostConfig{PluginDir: cfg.PluginDir, Logger: log, Command: cmd})
		if err != nil {
			return fail(err)
		}
	}
	for _, name := range cfg.Services {
		run, err := st.service(name, cfg)
		if err != nil {
			return fail(err)
		}
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				st.errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	return st, nil
}

func (st *stack) service(name string, cfg stackConfig) (func(context.Context) error, error) {
	b, log := st.bus, cfg.Logger
	switch name {
	case "dataprep":
		s, err := dataprep.New(dataprep.Config{Bus: b, Logger: log})
		return runOf(s, err)
	case "tokenizer":
		s, err := tokenizer.New(tokenizer.Config{Bus: b, Logger: log})
		return runOf(s, err)
	case "trainer":
		// Data-parallel jobs write TensorBoard event files under the data
		// folder: tensorboard --logdir <data>/tensorboard.
		s, err := trainer.New(trainer.Config{Bus: b, Host: st.host, Logger: log, TensorBoardDir: filepath.Join(cfg.DataDir, "tensorboard")})
		if err == nil {
			h := s.MetricsHandler()
			st.metrics.Store(&h)
		}
		return runOf(s, err)
	case "quantizer":
		s, err := quantizer.New(quantizer.Config{Bus: b, Host: st.host, Logger: log})
		return runOf(s, err)
	case "distiller":
		// Distill and prune jobs.
		s, err := distiller.New(distiller.Config{Bus: b, Host: st.host, Logger: log})
		return runOf(s, err)
	case "filter":
		// The learned stage runs classifiers the trainer made, in a
		// plugin of the filter's own.
		cls := filter.NewClassifiers(b, st.host, "")
		s, err := filter.New(filter.Config{Bus: b, Logger: log, Classifiers: cls.Source})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			defer cls.Close()
			return s.Run(ctx)
		}, nil
	case "inference":
		// Every prompt and output goes through the filter: the client runs
		// the policies' rule stages here and asks the filter service where
		// a policy requires it.
		fc, err := filter.NewClient(filter.ClientConfig{Bus: b, Logger: log})
		if err != nil {
			return nil, err
		}
		s, err := inference.New(inference.Config{Bus: b, Host: st.host, Logger: log, Filter: fc})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			ferr := make(chan error, 1)
			go func() { ferr <- fc.Run(ctx) }()
			err := s.Run(ctx)
			return errors.Join(err, <-ferr)
		}, nil
	case "pipeline":
		s, err := pipeline.New(pipeline.Config{Bus: b, Logger: log})
		return runOf(s, err)
	case "gateway":
		token, created, err := gateway.LoadToken(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		g, err := gateway.New(gateway.Config{Bus: b, Addr: cfg.Addr, Token: token, Logger: log, Metrics: http.HandlerFunc(st.serveMetrics)})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			return g.Run(ctx, func(addr string) {
				if cfg.GatewayReady != nil {
					cfg.GatewayReady(addr, token, created)
				}
			})
		}, nil
	}
	return nil, fmt.Errorf("unknown service %q (want one of %v)", name, Services)
}

func runOf[S interface{ Run(context.Context) error }](s S, err error) (func(context.Context) error, error) {
	if err != nil {
		return nil, err
	}
	return s.Run, nil
}

// Err reports the first service that failed.
func (st *stack) Err() <-chan error { return st.errc }

// Close stops every service, the plugins and the embedded server.
func (st *stack) Close() {
	if st.cancel != nil {
		st.cancel()
	}
	st.wg.Wait()
	if st.host != nil {
		st.host.Close()
	}
	if st.bus != nil {
		st.bus.Close()
	}
	if st.server != nil {
		st.server.Shutdown()
	}
}

// pluginCommand finds a backend's binary (llmesh-plugin-<name> in the plugin
// folder, next to this executable, or on PATH); failing that, this binary
// serves the built-in backends itself (`llmesh plugin serve <name>`).
func pluginCommand(dir string) func(name string) (*exec.Cmd, error) {
	return func(name string) (*exec.Cmd, error) {
		bin := "llmesh-plugin-" + name
		self, selfErr := os.Executable()
		var candidates []string
		if dir != "" {
			candidates = append(candidates, filepath.Join(dir, bin))
		}
		if selfErr == nil {
			candidates = append(candidates, filepath.Join(filepath.Dir(self), bin))
		}
		for _, c := range candidates {
			if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return exec.Command(c), nil
			}
		}
		if p, err := exec.LookPath(bin); err == nil {
			return exec.Command(p), nil
		}
		if _, ok := builtinBackends[name]; ok && selfErr == nil {
			return exec.Command(self, "plugin", "serve", name), nil
		}
		return nil, fmt.Errorf("backend %q: no %s in %v or on PATH, and it is not built in", name, bin, candidates)
	}
}

var errUsage = errors.New("usage")
