package accel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// HealthState is what a Plugin's supervisor last saw of its process.
type HealthState int32

const (
	// HealthServing: the process runs and its health service reports
	// SERVING (or, with health checks disabled, nothing says otherwise).
	HealthServing HealthState = iota + 1
	// HealthNotServing: the last health checks failed or reported
	// NOT_SERVING, fewer times in a row than HostConfig.HealthFailures.
	HealthNotServing
	// HealthRestarting: the process is being replaced.
	HealthRestarting
	// HealthDead: no process runs: the plugin was closed, the host gave up
	// on it, or a restart failed (the next call or check tries again).
	HealthDead
)

func (s HealthState) String() string {
	switch s {
	case HealthServing:
		return "serving"
	case HealthNotServing:
		return "not_serving"
	case HealthRestarting:
		return "restarting"
	case HealthDead:
		return "dead"
	}
	return fmt.Sprintf("HealthState(%d)", int32(s))
}

// healthMethod names the supervisor in restart errors and logs.
const healthMethod = "health check"

// stableChecks is how many health checks in a row a restarted process must
// pass before its restarts stop counting as "in a row" (see MaxRestarts).
const stableChecks = 10

// Health reports the plugin's health as its supervisor last saw it.
func (p *Plugin) Health() HealthState {
	return HealthState(p.health.Load())
}

func (p *Plugin) startSupervisor() {
	ctx, cancel := context.WithCancel(context.Background())
	p.stopSup = cancel
	p.supDone = make(chan struct{})
	go p.supervise(ctx)
}

// supervise checks the plugin every HealthInterval until ctx ends: the
// process must run and its health service answer SERVING. A process that
// exited, or failed HealthFailures checks in a row, is killed and restarted
// like a crash found by a call (same backoff and MaxRestarts); the next
// call then fails with ErrPluginRestarted.
func (p *Plugin) supervise(ctx context.Context) {
	defer close(p.supDone)
	cfg := &p.host.cfg
	t := time.NewTimer(cfg.HealthInterval)
	defer t.Stop()
	var watched *process
	failures, oks := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		proc, stop := p.proc, p.closed || p.gaveUp != nil
		p.mu.Unlock()
		if stop {
			return
		}
		if proc != watched {
			watched, failures, oks = proc, 0, 0
		}
		cause := ""
		switch {
		case proc == nil:
			cause = "no process runs (a restart failed)"
		case proc.exited():
			cause = "the process exited"
		default:
			status, err := proc.checkHealth(ctx, cfg.HealthTimeout)
			if ctx.Err() != nil {
				return
			}
			if err == nil && status == grpc_health_v1.HealthCheckResponse_SERVING {
				failures = 0
				oks++
				p.health.CompareAndSwap(int32(HealthNotServing), int32(HealthServing))
				if oks == stableChecks {
					p.mu.Lock()
					if p.proc == proc {
						p.consecutive = 0
					}
					p.mu.Unlock()
				}
				break
			}
			failures, oks = failures+1, 0
			what := fmt.Sprintf("reported %s", status)
			if err != nil {
				what = fmt.Sprintf("failed: %v", err)
			}
			if failures < cfg.HealthFailures {
				p.health.CompareAndSwap(int32(HealthServing), int32(HealthNotServing))
				p.logger.Warn("accelerator plugin health check", "pid", proc.pid, "result", what,
					"failures_in_a_row", failures, "limit", cfg.HealthFailures)
				break
			}
			cause = fmt.Sprintf("health check %s, %d times in a row", what, failures)
		}
		if cause != "" {
			p.mu.Lock()
			err := p.restartLocked(ctx, proc, healthMethod, cause)
			if errors.Is(err, ErrPluginRestarted) && p.proc != nil && p.proc != proc {
				p.pending = err
			}
			p.mu.Unlock()
		}
		t.Reset(cfg.HealthInterval)
	}
}

// checkHealth asks the process's gRPC health service (which go-plugin
// registers under plugin.GRPCServiceName) for its status.
func (p *process) checkHealth(ctx context.Context, timeout time.Duration) (grpc_health_v1.HealthCheckResponse_ServingStatus, error) {
	if p.health == nil {
		return grpc_health_v1.HealthCheckResponse_SERVING, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := p.health.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	if err != nil {
		return grpc_health_v1.HealthCheckResponse_UNKNOWN, err
	}
	return res.GetStatus(), nil
}

// WithHealth makes the plugin's gRPC health service report NOT_SERVING
// while healthy returns false; the host's supervisor then replaces the
// process after HostConfig.HealthFailures checks. healthy is called on
// every health check, from gRPC's goroutines, and must not block.
func WithHealth(healthy func() bool) ServeOption {
	return func(c *serveConfig) { c.healthy = healthy }
}

// healthInterceptor answers the health service's Check with NOT_SERVING,
// for the plugin's service and the whole server, while healthy is false.
// go-plugin registers the health service itself and keeps it SERVING.
func healthInterceptor(healthy func() bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod != grpc_health_v1.Health_Check_FullMethodName {
			return handler(ctx, req)
		}
		if r, ok := req.(*grpc_health_v1.HealthCheckRequest); ok &&
			(r.GetService() == "" || r.GetService() == plugin.GRPCServiceName) && !healthy() {
			return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_NOT_SERVING}, nil
		}
		return handler(ctx, req)
	}
}
