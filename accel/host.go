package accel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// Host errors.
var (
	// ErrPluginNotFound: no binary for the backend was found.
	ErrPluginNotFound = errors.New("accel: plugin not found")
	// ErrIncompatiblePlugin: the plugin speaks another protocol version.
	ErrIncompatiblePlugin = errors.New("accel: incompatible plugin")
	// ErrClosed: the plugin or host was closed.
	ErrClosed = errors.New("accel: closed")
	// ErrChecksumMismatch: the plugin binary's SHA-256 is not the one
	// pinned in HostConfig.Checksums; the binary was not started. Errors
	// wrapping it are *ChecksumError values.
	ErrChecksumMismatch = errors.New("accel: plugin checksum mismatch")
)

// Defaults for HostConfig.
const (
	DefaultMaxRestarts    = 3
	DefaultRestartBackoff = 250 * time.Millisecond
	DefaultStartTimeout   = 30 * time.Second
	DefaultHealthInterval = time.Second
	DefaultHealthTimeout  = time.Second
	DefaultHealthFailures = 3
	maxRestartBackoff     = 10 * time.Second
	stderrTailLines       = 20
	// killGrace bounds go-plugin's graceful shutdown of a process before
	// it is killed: a hung (or stopped) process never answers it.
	killGrace = 5 * time.Second
)

// BinaryPrefix is the file name prefix of plugin binaries: backend "cpu" is
// the binary llmesh-plugin-cpu.
const BinaryPrefix = "llmesh-plugin-"

var backendName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// HostConfig configures a plugin Host.
type HostConfig struct {
	// Plugins maps a backend name to its binary. A backend not listed is
	// discovered: BinaryPrefix+name in PluginDir, else next to the running
	// executable, else on PATH.
	Plugins map[string]string
	// PluginDir is searched first during discovery; empty skips it.
	PluginDir string
	// Logger receives the host's logs and the plugins' stderr; nil discards.
	Logger *slog.Logger
	// MaxRestarts is how many times in a row a crashed plugin is restarted
	// before the host gives up on it (a successful call resets the count).
	// 0 means DefaultMaxRestarts; negative means never restart.
	MaxRestarts int
	// RestartBackoff is the wait before the first restart in a row; it
	// doubles for each further one (up to 10s). 0 means
	// DefaultRestartBackoff.
	RestartBackoff time.Duration
	// Env is added to the plugin's environment (KEY=VALUE), over the host's.
	Env []string
	// Command, when set, builds the command that starts backend name
	// instead of discovery; it is called once per (re)start. Tests use it to
	// re-exec their own binary. Its Env, when nil, is the host's.
	Command func(name string) (*exec.Cmd, error)
	// StartTimeout bounds a launch: process start, handshake and the first
	// Info call. 0 means DefaultStartTimeout.
	StartTimeout time.Duration
	// MaxMessageSize is the largest gRPC message the host sends or receives;
	// 0 means DefaultMaxMessageSize.
	MaxMessageSize int
	// Checksums pins backends to binaries: backend name → hex SHA-256 of
	// the file the plugin is started from (FileChecksum computes it). A
	// pinned backend whose binary differs is refused with an error wrapping
	// ErrChecksumMismatch, at launch and at every restart. The pin applies
	// to the command's Path, whether discovered, listed in Plugins or built
	// by Command (for a script, that is the interpreter).
	Checksums map[string]string
	// HealthInterval is how often each launched plugin's supervisor checks
	// that its process runs and its gRPC health service reports SERVING.
	// 0 means DefaultHealthInterval; negative disables the supervisor (a
	// dead process is then noticed by the next call only).
	HealthInterval time.Duration
	// HealthTimeout bounds one health check; 0 means DefaultHealthTimeout.
	HealthTimeout time.Duration
	// HealthFailures is how many health checks in a row must fail (or
	// report NOT_SERVING) before the process counts as dead and is
	// replaced; 0 means DefaultHealthFailures.
	HealthFailures int
}

// Validate checks the configuration.
func (c *HostConfig) Validate() error {
	for name, path := range c.Plugins {
		if !backendName.MatchString(name) {
			return fmt.Errorf("%w: host config: backend name %q must match %s", ErrInvalidArgument, name, backendName)
		}
		if path == "" {
			return fmt.Errorf("%w: host config: backend %q has an empty binary path", ErrInvalidArgument, name)
		}
	}
	if c.PluginDir != "" {
		fi, err := os.Stat(c.PluginDir)
		if err != nil {
			return fmt.Errorf("%w: host config: plugin dir: %v", ErrInvalidArgument, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: host config: plugin dir %q is not a directory", ErrInvalidArgument, c.PluginDir)
		}
	}
	if c.RestartBackoff < 0 {
		return fmt.Errorf("%w: host config: restart backoff %v is negative", ErrInvalidArgument, c.RestartBackoff)
	}
	if c.StartTimeout < 0 {
		return fmt.Errorf("%w: host config: start timeout %v is negative", ErrInvalidArgument, c.StartTimeout)
	}
	if c.MaxMessageSize < 0 {
		return fmt.Errorf("%w: host config: max message size %d is negative", ErrInvalidArgument, c.MaxMessageSize)
	}
	for name, sum := range c.Checksums {
		if !backendName.MatchString(name) {
			return fmt.Errorf("%w: host config: checksum for backend name %q: name must match %s", ErrInvalidArgument, name, backendName)
		}
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%w: host config: checksum for backend %q is %q, want %d hex digits of SHA-256", ErrInvalidArgument, name, sum, 2*sha256.Size)
		}
	}
	if c.HealthTimeout < 0 {
		return fmt.Errorf("%w: host config: health timeout %v is negative", ErrInvalidArgument, c.HealthTimeout)
	}
	if c.HealthFailures < 0 {
		return fmt.Errorf("%w: host config: health failures %d is negative", ErrInvalidArgument, c.HealthFailures)
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%w: host config: env entry %q is not KEY=VALUE", ErrInvalidArgument, kv)
		}
	}
	return nil
}

// Host launches accelerator plugins and keeps track of them until Close.
// It is safe for concurrent use.
type Host struct {
	cfg    HostConfig
	logger *slog.Logger

	mu      sync.Mutex
	plugins map[*Plugin]struct{}
	closed  bool
}

// NewHost validates cfg and returns a Host.
func NewHost(cfg HostConfig) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxRestarts == 0 {
		cfg.MaxRestarts = DefaultMaxRestarts
	}
	if cfg.RestartBackoff == 0 {
		cfg.RestartBackoff = DefaultRestartBackoff
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = DefaultHealthInterval
	}
	if cfg.HealthTimeout == 0 {
		cfg.HealthTimeout = DefaultHealthTimeout
	}
	if cfg.HealthFailures == 0 {
		cfg.HealthFailures = DefaultHealthFailures
	}
	logger := cfg.Logger
	if logger == nil {
		logger = discardLogger()
	}
	return &Host{cfg: cfg, logger: logger, plugins: make(map[*Plugin]struct{})}, nil
}

// Resolve returns the binary that backend name runs, from HostConfig.Plugins
// or by discovery.
func (h *Host) Resolve(name string) (string, error) {
	if !backendName.MatchString(name) {
		return "", fmt.Errorf("%w: backend name %q must match %s", ErrInvalidArgument, name, backendName)
	}
	if p, ok := h.cfg.Plugins[name]; ok {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("%w: accelerator plugin %q: %v", ErrPluginNotFound, name, err)
		}
		return p, nil
	}
	bin := BinaryPrefix + name
	var looked []string
	try := func(dir string) (string, bool) {
		p := filepath.Join(dir, bin)
		looked = append(looked, dir)
		return p, checkExecutable(p) == nil
	}
	if h.cfg.PluginDir != "" {
		if p, ok := try(h.cfg.PluginDir); ok {
			return p, nil
		}
	}
	if exe, err := os.Executable(); err == nil {
		if p, ok := try(filepath.Dir(exe)); ok {
			return p, nil
		}
	}
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	looked = append(looked, "$PATH")
	return "", fmt.Errorf("%w: accelerator plugin %q: no executable %s in %s", ErrPluginNotFound, name, bin, strings.Join(looked, ", "))
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

func (h *Host) command(name string) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	if h.cfg.Command != nil {
		c, err := h.cfg.Command(name)
		if err != nil {
			return nil, fmt.Errorf("accelerator plugin %q: command: %w", name, err)
		}
		if c == nil {
			return nil, fmt.Errorf("%w: accelerator plugin %q: command func returned nil", ErrInvalidArgument, name)
		}
		cmd = c
	} else {
		path, err := h.Resolve(name)
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(path)
	}
	h.setEnv(cmd)
	return cmd, nil
}

// setEnv gives cmd the host's environment (or its own) with HostConfig.Env
// over it. go-plugin would append the host environment after ours, and
// later entries win; build it here so that Env overrides the host's.
func (h *Host) setEnv(cmd *exec.Cmd) {
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(append([]string(nil), env...), h.cfg.Env...)
}

// Launch starts backend name, checks its protocol version and returns it.
// ctx bounds the launch only; the plugin lives until Close.
func (h *Host) Launch(ctx context.Context, name string) (*Plugin, error) {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%w: plugin host", ErrClosed)
	}
	proc, err := h.start(ctx, name)
	if err != nil {
		return nil, err
	}
	p := &Plugin{
		host:   h,
		name:   name,
		logger: h.logger.With("plugin", name),
		proc:   proc,
	}
	p.health.Store(int32(HealthServing))
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		proc.kill()
		return nil, fmt.Errorf("%w: plugin host", ErrClosed)
	}
	h.plugins[p] = struct{}{}
	p.logger.Info("launched accelerator plugin", "pid", proc.pid, "path", proc.path,
		"device", proc.info.Device, "version", proc.info.Version, "stub", proc.info.Stub)
	if h.cfg.HealthInterval > 0 {
		p.startSupervisor()
	}
	return p, nil
}

// Close stops every plugin the host launched. Launch fails afterwards.
func (h *Host) Close() error {
	h.mu.Lock()
	h.closed = true
	ps := make([]*Plugin, 0, len(h.plugins))
	for p := range h.plugins {
		ps = append(ps, p)
	}
	h.mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
	return nil
}

func (h *Host) forget(p *Plugin) {
	h.mu.Lock()
	delete(h.plugins, p)
	h.mu.Unlock()
}

// process is one running plugin process.
type process struct {
	client  *plugin.Client
	backend Backend
	health  grpc_health_v1.HealthClient
	info    Info
	pid     int
	os      *os.Process
	path    string
	stderr  *tailBuffer
}

func (p *process) exited() bool { return p.client.Exited() }

// kill asks the process to exit and waits for it; one that does not within
// killGrace (hung, stopped) is killed.
func (p *process) kill() {
	if c, ok := p.backend.(interface{ closeBulk() }); ok {
		defer c.closeBulk()
	}
	done := make(chan struct{})
	go func() {
		p.client.Kill()
		close(done)
	}()
	t := time.NewTimer(killGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		p.forceKill()
		<-done
	}
}

// forceKill kills the process at once (SIGKILL also ends a stopped
// process) and waits for go-plugin to let go of it.
func (p *process) forceKill() {
	if p.os != nil {
		_ = p.os.Kill() // ErrProcessDone when it had exited already
	}
	p.client.Kill()
}

// stderrTail formats the last stderr lines for an error or a log.
func (p *process) stderrTail() string {
	lines := p.stderr.Lines()
	if len(lines) == 0 {
		return "(no stderr output)"
	}
	return strings.Join(lines, "\n")
}

// start launches one process of backend name: handshake, dispense, Info.
func (h *Host) start(ctx context.Context, name string) (*process, error) {
	cmd, err := h.command(name)
	if err != nil {
		return nil, err
	}
	return h.startCmd(ctx, name, cmd)
}

// startCmd launches cmd as backend name, checking its checksum first when
// one is pinned.
func (h *Host) startCmd(ctx context.Context, name string, cmd *exec.Cmd) (*process, error) {
	secure, err := h.secureConfig(name, cmd.Path)
	if err != nil {
		return nil, err
	}
	tail := newTailBuffer(stderrTailLines)
	maxMsg := h.cfg.MaxMessageSize
	client := plugin.NewClient(&plugin.ClientConfig{
		SecureConfig:     secure,
		HandshakeConfig:  Handshake,
		Plugins:          pluginSet(nil),
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     h.cfg.StartTimeout,
		Stderr:           tail,
		// What the plugin writes to os.Stdout/os.Stderr after Serve
		// arrives over go-plugin's stdio stream.
		SyncStdout: lineLogger(h.logger.With("plugin", name, "stream", "stdout")),
		SyncStderr: io.MultiWriter(tail, lineLogger(h.logger.With("plugin", name, "stream", "stderr"))),
		Logger:     newHCLogAdapter(h.logger.With("plugin", name), ""),
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
		},
	})
	proc := &process{client: client, path: cmd.Path, stderr: tail}
	fail := func(format string, args ...any) (*process, error) {
		client.Kill()
		err := fmt.Errorf(format, args...)
		if lines := tail.Lines(); len(lines) > 0 {
			err = fmt.Errorf("%w; plugin stderr:\n%s", err, strings.Join(lines, "\n"))
		}
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, h.cfg.StartTimeout)
	defer cancel()
	type result struct {
		rpc plugin.ClientProtocol
		err error
	}
	done := make(chan result, 1)
	go func() {
		rpc, err := client.Client()
		done <- result{rpc, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		client.Kill()
		<-done
		return fail("accelerator plugin %q (%s): launch: %w", name, cmd.Path, ctx.Err())
	}
	if res.err != nil {
		if errors.Is(res.err, plugin.ErrChecksumsDoNotMatch) {
			// The binary changed between our check and go-plugin's.
			return fail("%w: accelerator plugin %q (%s): the binary changed while it was being started: %v",
				ErrChecksumMismatch, name, cmd.Path, res.err)
		}
		if strings.Contains(strings.ToLower(res.err.Error()), "incompatible api version") {
			return fail("%w: accelerator plugin %q (%s): %v (host speaks protocol version %d)",
				ErrIncompatiblePlugin, name, cmd.Path, res.err, ProtocolVersion)
		}
		return fail("accelerator plugin %q (%s): launch failed (is it an llmesh accelerator plugin?): %w",
			name, cmd.Path, res.err)
	}
	if cmd.Process != nil {
		proc.pid = cmd.Process.Pid
		proc.os = cmd.Process
	}
	if gc, ok := res.rpc.(*plugin.GRPCClient); ok {
		proc.health = grpc_health_v1.NewHealthClient(gc.Conn)
	}
	raw, err := res.rpc.Dispense(PluginName)
	if err != nil {
		return fail("accelerator plugin %q (%s): dispense: %w", name, cmd.Path, err)
	}
	b, ok := raw.(Backend)
	if !ok {
		return fail("accelerator plugin %q (%s): dispensed %T, not a Backend", name, cmd.Path, raw)
	}
	proc.backend = b
	info, err := b.Info(ctx)
	if err != nil {
		return fail("accelerator plugin %q (%s): info: %w", name, cmd.Path, err)
	}
	if info.ProtocolVersion != ProtocolVersion {
		return fail("%w: accelerator plugin %q (%s) speaks protocol version %d, the host speaks %d: rebuild the plugin",
			ErrIncompatiblePlugin, name, cmd.Path, info.ProtocolVersion, ProtocolVersion)
	}
	proc.info = info
	return proc, nil
}

// Plugin is a launched accelerator plugin. It implements Backend: every
// call goes to the current process. When the process dies the next call
// (or the call that saw it die) restarts it and fails with an error
// wrapping both ErrPluginRestarted and ErrPluginDied: loaded models are
// gone and must be loaded again; calls are never retried silently. After
// MaxRestarts restarts in a row without a successful call in between, the
// plugin gives up and every call fails with ErrPluginDied. A health
// supervisor (see HostConfig.HealthInterval) replaces a dead, hung or
// NOT_SERVING process without waiting for a call; the next call then fails
// with ErrPluginRestarted the same way. Safe for concurrent use.
type Plugin struct {
	host   *Host
	name   string
	logger *slog.Logger

	mu          sync.Mutex
	proc        *process // nil after a failed restart
	restarts    int
	consecutive int
	gaveUp      error
	closed      bool
	// pending is the ErrPluginRestarted error of a restart the supervisor
	// made; the next call returns it, so that its caller learns that the
	// loaded models are gone.
	pending error

	health  atomic.Int32 // a HealthState
	stopSup context.CancelFunc
	supDone chan struct{}
}

var _ Backend = (*Plugin)(nil)

// Name is the backend name the plugin was launched as.
func (p *Plugin) Name() string { return p.name }

// Pid is the current process id, or 0 when none runs.
func (p *Plugin) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return 0
	}
	return p.proc.pid
}

// Restarts is how many times the plugin has been restarted in all.
func (p *Plugin) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Close kills the process. Calls fail with ErrClosed afterwards.
func (p *Plugin) Close() error {
	if p.stopSup != nil {
		// Before taking mu: a restart the supervisor is making holds it
		// and gives up when its context ends.
		p.stopSup()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	proc := p.proc
	p.proc = nil
	p.mu.Unlock()
	p.health.Store(int32(HealthDead))
	if proc != nil {
		proc.kill()
	}
	if p.supDone != nil {
		<-p.supDone
	}
	p.host.forget(p)
	return nil
}

// current returns the live process, restarting a dead one first (which
// fails the call with ErrPluginRestarted).
func (p *Plugin) current(ctx context.Context, method string) (*process, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.unusableLocked(); err != nil {
		return nil, err
	}
	if err := p.pending; err != nil {
		p.pending = nil
		return nil, err
	}
	if p.proc != nil && !p.proc.exited() {
		return p.proc, nil
	}
	return nil, p.restartLocked(ctx, p.proc, method, "the process had exited before the call")
}

func (p *Plugin) unusableLocked() error {
	if p.closed {
		return fmt.Errorf("%w: accelerator plugin %q", ErrClosed, p.name)
	}
	return p.gaveUp
}

// restartLocked replaces dead (nil after a failed restart) with a fresh
// process and returns the error the failing call reports.
func (p *Plugin) restartLocked(ctx context.Context, dead *process, method, cause string) error {
	if err := p.unusableLocked(); err != nil {
		return err
	}
	if dead != nil && p.proc != dead {
		if p.proc == nil {
			// A concurrent restart failed; try again below.
			dead = nil
		} else {
			// Another call already restarted it; this call's state is gone too.
			return fmt.Errorf("%w: %w: accelerator plugin %q died during %s and was restarted (now pid %d); loaded models must be loaded again",
				ErrPluginRestarted, ErrPluginDied, p.name, method, p.proc.pid)
		}
	}
	p.health.Store(int32(HealthRestarting))
	deadPid := 0
	if dead != nil {
		deadPid = dead.pid
		// Log the crash once, with the last stderr lines.
		p.logger.Error("accelerator plugin died", "pid", dead.pid, "method", method, "cause", cause,
			"stderr", dead.stderrTail())
		// It is being replaced: no graceful shutdown, which a hung process
		// would never answer.
		dead.forceKill()
		p.proc = nil
	}
	max := p.host.cfg.MaxRestarts
	if max < 0 || p.consecutive >= max {
		reason := fmt.Sprintf("restarted %d times in a row, the limit", p.consecutive)
		if max < 0 {
			reason = "restarts are disabled"
		}
		p.gaveUp = fmt.Errorf("%w: accelerator plugin %q (last pid %d) died during %s: %s; giving up: %s",
			ErrPluginDied, p.name, deadPid, method, cause, reason)
		if dead != nil {
			p.gaveUp = fmt.Errorf("%w; last stderr:\n%s", p.gaveUp, dead.stderrTail())
		}
		p.logger.Error("giving up on accelerator plugin", "restarts_in_a_row", p.consecutive, "max_restarts", max)
		p.health.Store(int32(HealthDead))
		return p.gaveUp
	}
	backoff := p.host.cfg.RestartBackoff << p.consecutive
	if backoff > maxRestartBackoff || backoff <= 0 {
		backoff = maxRestartBackoff
	}
	p.consecutive++
	t := time.NewTimer(backoff)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		p.consecutive--
		p.health.Store(int32(HealthDead))
		return fmt.Errorf("%w: accelerator plugin %q died during %s (%s); not restarted: %w",
			ErrPluginDied, p.name, method, cause, ctx.Err())
	}
	np, err := p.host.start(ctx, p.name)
	if err != nil {
		p.logger.Error("restarting accelerator plugin failed", "error", err, "attempt", p.consecutive)
		p.health.Store(int32(HealthDead))
		return fmt.Errorf("%w: accelerator plugin %q died during %s (%s); restart %d of %d failed: %w",
			ErrPluginDied, p.name, method, cause, p.consecutive, max, err)
	}
	p.proc = np
	p.restarts++
	p.health.Store(int32(HealthServing))
	p.logger.Warn("restarted accelerator plugin", "old_pid", deadPid, "pid", np.pid, "restarts", p.restarts, "by", method)
	return fmt.Errorf("%w: %w: accelerator plugin %q (pid %d) died during %s (%s) and was restarted as pid %d; loaded models are gone and must be loaded again",
		ErrPluginRestarted, ErrPluginDied, p.name, deadPid, method, cause, np.pid)
}

// do runs f against the current process and turns a dead process into a
// restart.
func (p *Plugin) do(ctx context.Context, method string, f func(Backend) error) error {
	proc, err := p.current(ctx, method)
	if err != nil {
		return err
	}
	err = f(proc.backend)
	if err != nil && ctx.Err() != nil {
		return err // the caller cancelled; a dead process is noticed next call
	}
	if err != nil && (errors.Is(err, ErrPluginDied) || proc.exited()) {
		p.mu.Lock()
		defer p.mu.Unlock()
		err = p.restartLocked(ctx, proc, method, err.Error())
		if errors.Is(err, ErrPluginRestarted) {
			p.pending = nil // this caller is told
		}
		return err
	}
	// The process answered: it is healthy.
	p.mu.Lock()
	if p.proc == proc {
		p.consecutive = 0
	}
	p.mu.Unlock()
	return err
}

// Info returns the Info the current process reported at launch.
func (p *Plugin) Info(ctx context.Context) (Info, error) {
	proc, err := p.current(ctx, "Info")
	if err != nil {
		return Info{}, err
	}
	return proc.info, nil
}

func (p *Plugin) LoadModel(ctx context.Context, req LoadRequest) (res LoadResult, err error) {
	err = p.do(ctx, "LoadModel", func(b Backend) (err error) { res, err = b.LoadModel(ctx, req); return })
	return
}

func (p *Plugin) TrainStep(ctx context.Context, req TrainStepRequest) (res TrainStepResult, err error) {
	err = p.do(ctx, "TrainStep", func(b Backend) (err error) { res, err = b.TrainStep(ctx, req); return })
	return
}

func (p *Plugin) ApplyUpdate(ctx context.Context, req UpdateRequest) (res UpdateResult, err error) {
	err = p.do(ctx, "ApplyUpdate", func(b Backend) (err error) { res, err = b.ApplyUpdate(ctx, req); return })
	return
}

func (p *Plugin) Evaluate(ctx context.Context, req EvalRequest) (res EvalResult, err error) {
	err = p.do(ctx, "Evaluate", func(b Backend) (err error) { res, err = b.Evaluate(ctx, req); return })
	return
}

func (p *Plugin) DecodeStep(ctx context.Context, req DecodeRequest) (res DecodeResult, err error) {
	err = p.do(ctx, "DecodeStep", func(b Backend) (err error) { res, err = b.DecodeStep(ctx, req); return })
	return
}

func (p *Plugin) SaveWeights(ctx context.Context, req SaveRequest) (res SaveResult, err error) {
	err = p.do(ctx, "SaveWeights", func(b Backend) (err error) { res, err = b.SaveWeights(ctx, req); return })
	return
}

func (p *Plugin) Unload(ctx context.Context, modelID string) error {
	return p.do(ctx, "Unload", func(b Backend) error { return b.Unload(ctx, modelID) })
}
