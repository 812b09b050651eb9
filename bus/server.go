package bus

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultMaxPayload is the embedded server's max_payload when
// ServerConfig.MaxPayload is 0: room for a 1 MiB job spec plus its
// envelope, and for tensor chunks. Large things go to the object store.
const DefaultMaxPayload = 8 << 20

// ServerConfig configures an embedded NATS server with JetStream.
type ServerConfig struct {
	// DataDir holds JetStream's file store. Required.
	DataDir string
	// Host to listen on; "" means 127.0.0.1.
	Host string
	// Port to listen on; -1 picks a free port, 0 means NATS's 4222.
	Port int
	// InProcess makes the server listen on no port at all; only clients
	// given Config.Server (an in-process connection) can reach it.
	InProcess bool
	// MaxPayload is the largest message in bytes, 1 MiB to 64 MiB; 0
	// means DefaultMaxPayload.
	MaxPayload int32
	// Logger receives the server's log lines; nil discards them.
	Logger *slog.Logger
}

// Validate checks the config and reports the first problem, wrapping
// ErrInvalidConfig.
func (c ServerConfig) Validate() error {
	switch {
	case c.DataDir == "":
		return fmt.Errorf("server data dir is empty: %w", ErrInvalidConfig)
	case c.Port < -1 || c.Port > 65535:
		return fmt.Errorf("server port %d is outside -1..65535: %w", c.Port, ErrInvalidConfig)
	case c.MaxPayload != 0 && (c.MaxPayload < 1<<20 || c.MaxPayload > 64<<20):
		return fmt.Errorf("server max payload %d is outside 1 MiB..64 MiB: %w", c.MaxPayload, ErrInvalidConfig)
	}
	return nil
}

// Server is an embedded nats-server with JetStream.
type Server struct {
	ns        *server.Server
	log       *slog.Logger
	inProcess bool
}

// StartServer starts an embedded server with JetStream storing files under
// cfg.DataDir, fsyncing every write (SyncAlways: an acknowledged job state
// survives a crash), and returns once it accepts connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := orDiscard(cfg.Logger)
	opts := &server.Options{
		ServerName: "llmesh",
		Host:       cfg.Host,
		Port:       cfg.Port,
		DontListen: cfg.InProcess,
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		SyncAlways: true,
		MaxPayload: cfg.MaxPayload,
		NoSigs:     true,
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats server: %w", err)
	}
	ns.SetLoggerV2(serverLogger{log}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("start nats server: not ready after 30s (data dir %s)", cfg.DataDir)
	}
	s := &Server{ns: ns, log: log, inProcess: cfg.InProcess}
	log.Info("nats server started", "url", s.ClientURL(), "data_dir", cfg.DataDir, "in_process", cfg.InProcess)
	return s, nil
}

// ClientURL is the URL clients connect to ("" for an InProcess server).
func (s *Server) ClientURL() string {
	if s.inProcess {
		return ""
	}
	return s.ns.ClientURL()
}

// Shutdown stops the server and waits until it has stopped.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// serverLogger adapts slog to nats-server's Logger.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLogger) Tracef(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
