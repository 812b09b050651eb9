package accel

// Exported for the tests in package accel_test, which import acceltest.

// WithHandshakeForTest lets a test plugin serve with another handshake.
var WithHandshakeForTest = withHandshake

// ProcessExited reports whether go-plugin has seen the current process exit.
func (p *Plugin) ProcessExited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc == nil || p.proc.exited()
}
