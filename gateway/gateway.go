package gateway

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/contracts/gen/llmesh/api/v1/apiv1connect"
)

// DefaultAddr is where the gateway listens unless told otherwise: loopback
// only, so a fresh install is not reachable from the network.
const DefaultAddr = "127.0.0.1:8080"

// DefaultMaxUpload is the largest dataset upload accepted in one call.
const DefaultMaxUpload = 64 << 20

// Config configures the gateway.
type Config struct {
	Bus *bus.Bus
	// Addr is the listen address, default DefaultAddr.
	Addr string
	// Token is the API token every call must carry.
	Token string
	// MaxUpload bounds a dataset upload in bytes.
	MaxUpload int64
	Logger    *slog.Logger
	// Metrics, when set, is served at GET /metrics (Prometheus text
	// exposition), behind the token like every API route.
	Metrics http.Handler
}

// Validate checks the config and fills in defaults.
func (c *Config) Validate() error {
	if c.Bus == nil {
		return errors.New("gateway: config needs a bus")
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if len(c.Token) < 16 {
		return errors.New("gateway: the API token must be at least 16 characters")
	}
	if c.MaxUpload == 0 {
		c.MaxUpload = DefaultMaxUpload
	}
	if c.MaxUpload < 0 {
		return fmt.Errorf("gateway: max upload %d must be positive", c.MaxUpload)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Gateway serves the API.
type Gateway struct {
	cfg Config
	bus *bus.Bus
	log *slog.Logger
}

// New validates cfg and builds the gateway.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Gateway{cfg: cfg, bus: cfg.Bus, log: cfg.Logger.With("component", "gateway")}, nil
}

// Handler returns the gateway's HTTP handler: the Connect services behind
// the token check, and the health endpoints without it.
func (g *Gateway) Handler() http.Handler {
	api := http.NewServeMux()
	opts := []connect.HandlerOption{connect.WithReadMaxBytes(int(g.cfg.MaxUpload) + 1<<20)}
	api.Handle(apiv1connect.NewJobServiceHandler(&jobs{g}, opts...))
	api.Handle(apiv1connect.NewDatasetServiceHandler(&datasets{g}, opts...))
	api.Handle(apiv1connect.NewModelServiceHandler(&models{g}, opts...))
	api.Handle(apiv1connect.NewInferenceServiceHandler(&inference{g}, opts...))
	g.httpRoutes(api)
	if g.cfg.Metrics != nil {
		api.Handle("GET /metrics", g.cfg.Metrics)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !g.bus.Conn().IsConnected() {
			http.Error(w, "not ready: bus disconnected", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := g.bus.JetStream().AccountInfo(ctx); err != nil {
			http.Error(w, "not ready: jetstream: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("/", g.authenticate(api))
	return mux
}

// authenticate requires the API token on every request.
func (g *Gateway) authenticate(next http.Handler) http.Handler {
	want := []byte("Bearer " + g.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", `Bearer realm="llmesh"`)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"code":"unauthenticated","message":"missing or wrong API token: send Authorization: Bearer <token>"}` + "\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Run listens on the configured address and serves until ctx is done.
// ready, when not nil, receives the bound address once listening.
func (g *Gateway) Run(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("gateway: listen %s: %w", g.cfg.Addr, err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // gRPC without TLS on loopback
	srv := &http.Server{
		Handler:           g.Handler(),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	g.log.Info("gateway listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}

// TokenFile is where a generated API token is kept in the data folder.
const TokenFile = "gateway-token"

// LoadToken returns the API token: LLMESH_TOKEN when set, else the one kept
// in dataDir, else a new random one that is written there (mode 0600).
// created reports whether it was generated now.
func LoadToken(dataDir string) (token string, created bool, err error) {
	if t := strings.TrimSpace(os.Getenv("LLMESH_TOKEN")); t != "" {
		if len(t) < 16 {
			return "", false, errors.New("LLMESH_TOKEN must be at least 16 characters")
		}
		return t, false, nil
	}
	path := filepath.Join(dataDir, TokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 16 {
			return t, false, nil
		}
		return "", false, fmt.Errorf("token file %s holds fewer than 16 characters", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, err
	}
	t := "llm_" + hex.EncodeToString(raw[:])
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", false, err
	}
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return t, true, nil
}
