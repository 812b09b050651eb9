package accel

import "net"

// Exported for the tests in package accel_test, which import acceltest.

// WithHandshakeForTest lets a test plugin serve with another handshake.
var WithHandshakeForTest = withHandshake

// ProcessExited reports whether go-plugin has seen the current process exit.
func (p *Plugin) ProcessExited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc == nil || p.proc.exited()
}

// AddrForTest is the address the current process's gRPC server listens on,
// as go-plugin's ReattachConfig gives it; nil when none runs.
func (p *Plugin) AddrForTest() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return nil
	}
	if rc := p.proc.client.ReattachConfig(); rc != nil {
		return rc.Addr
	}
	return nil
}

// CloseBulkForTest removes the shared-memory files of a host-side Backend
// made by GRPCPlugin (a no-op for any other Backend).
func CloseBulkForTest(b Backend) {
	if c, ok := b.(interface{ closeBulk() }); ok {
		c.closeBulk()
	}
}

// DisableBulkForTest makes a host-side Backend made by GRPCPlugin send
// its gradients inline.
func DisableBulkForTest(b Backend) {
	if p, ok := b.(*Plugin); ok {
		p.mu.Lock()
		b = p.proc.backend
		p.mu.Unlock()
	}
	if c, ok := b.(*grpcClient); ok {
		c.bulk.disable()
	}
}
