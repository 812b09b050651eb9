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
package trainer
