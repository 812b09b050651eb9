// Package bus is all of llmesh's NATS knowledge: it embeds or connects to a
// NATS server with JetStream, names every stream, subject, KV bucket and
// object store, and gives services typed operations on them — jobs,
// workers, events, content-addressed objects and the dataset and model
// registries. Services never see a subject string or a jetstream type
// unless they ask for the raw connection (Bus.Conn, Bus.JetStream).
//
// # What lives where
//
//   - Stream JOBS (subjects jobs.<kind>, work-queue retention, file storage,
//     10 minute duplicate window): one JobEnvelope per submitted job, with
//     the job id as Nats-Msg-Id. One durable pull consumer per kind, named
//     after the kind, shared by every worker instance of that kind.
//   - Stream EVENTS (subjects events.<job>.<type>, limits retention, 7 days):
//     progress, metric, log, artifact, done and failed events. Watching a
//     job replays its subject.
//   - KV buckets: jobs (JobRecord, the state of record of every job),
//     models, datasets, tokenizers, plugins, shards (entries expire after
//     ShardsTTL unless refreshed).
//   - Object store artifacts: blobs named by the SHA-256 of their content
//     ("sha256-<hex>"), so identical content is stored once.
//
// Values in the buckets and messages on the streams are the protobufs of
// contracts/proto/llmesh/bus/v1.
//
// # Lifetimes
//
// A Server owns the embedded nats-server and its data directory's lock
// until Shutdown. A Bus owns one NATS connection until Close; it is safe
// for concurrent use. ServeJobs and WatchEvents run until their ctx ends
// (WatchEvents also until the job's done or failed event). A handler's
// *Job and its ctx are valid only during the handler call. Slices returned
// by GetObject belong to the caller.
//
// # Delivery guarantees
//
// A job runs at least once: a worker that dies or is stopped mid-job has
// its message redelivered (after AckWait, or at once on a clean stop) to
// another worker, which sees state RUNNING and attempts+1. Handlers should
// therefore be idempotent, e.g. write artifacts content-addressed.
package bus
