// Package bustest starts a real, embedded NATS server with JetStream for
// tests: one per test, on a random port, storing under t.TempDir(), shut
// down by t.Cleanup. No mocks.
package bustest
