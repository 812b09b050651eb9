package accel

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	accelv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/accel/v1"
)

// PluginName is the name under which the accelerator is dispensed.
const PluginName = "accelerator"

// DefaultMaxMessageSize is the largest gRPC message either side accepts by
// default: weights and gradients travel in one message, well above grpc-go's
// 4 MiB default.
const DefaultMaxMessageSize = 512 << 20

// Handshake is the go-plugin handshake shared by the host and every plugin.
// The magic cookie only keeps a plugin binary from being run by hand; it is
// not a security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "LLMESH_ACCEL_PLUGIN",
	MagicCookieValue: "4f6d3c1e-accel-llmesh",
}

// GRPCPlugin is the go-plugin glue for Backend: the plugin side serves Impl,
// the host side gets a Backend that speaks gRPC to it.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is served on the plugin side; nil on the host side.
	Impl Backend
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers Impl on s.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	accelv1.RegisterAcceleratorServer(s, &grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient returns a Backend that calls the plugin over conn.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return newGRPCClient(conn), nil
}

// pluginSet is what both sides register.
func pluginSet(impl Backend) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}

// ServeOption configures Serve.
type ServeOption func(*serveConfig)

type serveConfig struct {
	maxMsg    int
	logger    hclog.Logger
	handshake plugin.HandshakeConfig
	healthy   func() bool
}

// WithMaxMessageSize sets the largest gRPC message the plugin sends or
// receives (DefaultMaxMessageSize when unset).
func WithMaxMessageSize(n int) ServeOption { return func(c *serveConfig) { c.maxMsg = n } }

// WithServeLogger sends go-plugin's own logs to l instead of stderr.
func WithServeLogger(l *slog.Logger) ServeOption {
	return func(c *serveConfig) { c.logger = newHCLogAdapter(l, "") }
}

// withHandshake overrides the handshake; tests use it to serve a plugin
// with a wrong protocol version.
func withHandshake(h plugin.HandshakeConfig) ServeOption {
	return func(c *serveConfig) { c.handshake = h }
}

// Serve serves b as an accelerator plugin and returns when the host closes
// the connection. It is called from a plugin binary's main; run by hand
// (without the host's magic cookie) it prints a message and exits 1.
func Serve(b Backend, opts ...ServeOption) {
	plugin.Serve(serveConfigFor(b, stderr(), opts...))
}

func stderr() io.Writer { return os.Stderr }

func serveConfigFor(b Backend, logOut io.Writer, opts ...ServeOption) *plugin.ServeConfig {
	c := serveConfig{maxMsg: DefaultMaxMessageSize, handshake: Handshake}
	for _, o := range opts {
		o(&c)
	}
	if c.logger == nil {
		// JSON lines on stderr: the host parses them back into its logger.
		c.logger = hclog.New(&hclog.LoggerOptions{
			Name:       "accel-plugin",
			Level:      hclog.Info,
			Output:     logOut,
			JSONFormat: true,
		})
	}
	maxMsg, healthy := c.maxMsg, c.healthy
	return &plugin.ServeConfig{
		HandshakeConfig: c.handshake,
		Plugins:         pluginSet(b),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg))
			if healthy != nil {
				opts = append(opts, grpc.ChainUnaryInterceptor(healthInterceptor(healthy)))
			}
			return plugin.DefaultGRPCServer(opts)
		},
		Logger: c.logger,
	}
}
