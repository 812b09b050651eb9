// Package trainer is the trainer service: one shard consumes jobs.train,
// reads token shards from the object store, trains a transformer through an
// accelerator plugin (forward, backward and AdamW all run in the plugin),
// evaluates validation loss, checkpoints to the object store as safetensors
// with the optimizer state, reports loss, learning rate, gradient norm and
// tokens/s as events, and finally registers the model.
//
// A plugin that dies mid-run is restarted by the plugin host; the shard then
// reloads the last checkpoint and resumes from its step, with the same data
// order (batches are drawn from an RNG seeded by the job seed and the step),
// so the loss curve continues where it stopped.
//
// # Data parallelism
//
// A job with "shards" set trains data-parallel. The job's shard submits
// shards-1 train-shard jobs (any trainer instance takes them), and any
// process may call Service.RunShard for the job. Shards meet in the shards
// KV bucket: each writes its record ("<job>.m-<id>": what it would train,
// its state) every heartbeat, and one not rewritten for 4 heartbeats is
// dead. The earliest live shard leads: once enough shards wait and none
// still trains, it writes the next generation's plan ("<job>.plan" in the
// trainer bucket, compare-and-set): the members in rank order and the
// checkpoint to resume from. Each step every rank computes its slice of the
// global batch (the rows of Batch×GradAccum windows drawn from PCG(seed,
// step)), weights its gradients by its rows, and the ranks sum them with the
// ring allreduce of package collective over core NATS; every rank then
// applies the same update, so the replicas stay identical. The gradients
// travel in buckets (bucket_mb, cut from the end of the vector down, the
// same on every rank): the backend reports each layer's gradients as the
// backward pass of the step's last micro-batch finishes them
// (accel.TrainStepRequest.GradientsReady), and a bucket is all-reduced as
// soon as it is complete, while the pass goes on.
//
// A dead or hung shard makes the allreduce time out (collective_timeout_s);
// the others return to the rendezvous, the leader (a new one, if the leader
// died) writes a plan without it, and all resume from the last checkpoint.
// A shard that arrives while the job runs waits and is let in at the next
// checkpoint boundary (the ring re-forms). max_restarts bounds re-forms
// after failures; a job that cannot gather its shards fails at
// join_timeout_s, saying how many joined.
//
// Checkpoints of data-parallel jobs (ckpt.go) are a weights object, a
// manifest object (step, content hash, data position, RNG seed, early
// stopping state), and a pointer moved last; the newest that passes its
// hash check is used, and the last keep_checkpoints are kept. Rank 0
// reports metrics to the job's events, to a TensorBoard event file
// (package tbevents, when Config.TensorBoardDir is set) and to the
// Prometheus exposition of Service.MetricsHandler, and registers the model.
//
// # Tensor parallelism
//
// A job with "parallel": "tensor" splits the model instead of the batch
// (tp.go): its shards — a fixed group of "shards", which must divide n_head
// and 4·n_embd — each hold their share of every layer's attention heads and
// MLP columns (accel/transformer.TPModel), read the same batches, and
// all-reduce activations (two per layer forward) and input gradients (two
// per layer backward) over the same NATS ring. Membership, recovery and
// checkpoints are those of data-parallel jobs; checkpoints hold the full,
// gathered model, so they load unsplit. Unlike every other job, a
// tensor-parallel shard computes in the trainer process on the CPU kernels
// (accel/simd), not in an accelerator plugin: the plugin protocol has no
// way to call back to the host in the middle of a step.
package trainer
