// Package accel is the host side of the accelerator contract.
//
// Backend is the coarse-grained interface every accelerator implements
// (load a model, train a micro-batch, apply an update, evaluate, decode a
// batch step, save, unload), in plain Go types. Backends run as separate
// processes — plugins — spoken to over gRPC through hashicorp/go-plugin:
//
//   - A plugin binary's main calls Serve with its Backend. Serve owns the
//     process until the host closes the connection.
//   - The host builds a Host from a validated HostConfig and calls Launch
//     for a backend name. The returned *Plugin is itself a Backend whose
//     calls go to the plugin process. Binaries are found by name
//     (llmesh-plugin-<name>) in HostConfig.PluginDir, next to the running
//     executable, then on PATH, unless HostConfig.Plugins or
//     HostConfig.Command says otherwise.
//
// Errors keep their meaning across the process boundary: ErrNotImplemented,
// ErrUnknownModel and ErrInvalidArgument travel as gRPC codes and come back
// as errors that match the same sentinels with the plugin's message. A call
// whose context the caller cancelled returns ctx.Err(); a call that fails
// because the process died wraps ErrPluginDied.
//
// Security: the handshake's magic cookie and protocol version refuse a
// binary built for something else (ErrIncompatiblePlugin for another
// version); HostConfig.Checksums pins a backend to the SHA-256 of its binary
// (go-plugin's SecureConfig), so that a replaced binary is refused at launch
// and at every restart with an error wrapping ErrChecksumMismatch; and
// go-plugin's AutoMTLS gives every launch its own certificate, so that only
// the process that started a plugin can talk to it.
//
// Host.Catalog lists the backends the host can launch — the binaries it
// would discover and those configured — with their SHA-256 and, when asked
// to probe them, the Info each reports; a backend that cannot be used is
// listed with its error.
//
// Health: each *Plugin has a supervisor (from Launch to Close) that checks,
// every HostConfig.HealthInterval, that the process runs and that its gRPC
// health service reports SERVING. A plugin binary makes it report
// NOT_SERVING with the WithHealth option of Serve. A process that exited,
// or failed HostConfig.HealthFailures checks in a row (a hung one times
// out), is killed and restarted under the same backoff and MaxRestarts as a
// crash found by a call, and the next call fails with ErrPluginRestarted.
// Plugin.Health reports what the supervisor last saw.
//
// Lifetimes: a *Plugin owns its process. When the process dies, the call
// that notices restarts it and fails with an error wrapping both
// ErrPluginRestarted and ErrPluginDied — loaded models lived in the dead
// process and must be loaded again, so the call is never retried silently.
// After HostConfig.MaxRestarts restarts in a row the plugin gives up and
// every call fails with ErrPluginDied. Plugin.Close kills the process;
// Host.Close closes every plugin it launched. Slices in results belong to
// the caller.
package accel
