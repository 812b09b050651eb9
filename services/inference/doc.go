// Package inference is the inference service. It answers
// infer.<model>.generate requests in the "inference" queue group: it loads
// the model's checkpoint into an accelerator plugin on its first request
// (and again when the registry points at a newer checkpoint), encodes the
// prompt with the model's tokenizer, decodes with greedy or sampled
// decoding (temperature, top-k, top-p, repetition penalty, seed; see
// accel/sampling) and streams GenerateChunk messages back to the request's
// reply subject, ending with one whose done flag is set. Stop sequences end
// a generation early (finish "stop"); a prompt longer than the model's
// context is refused, and generation stops at the context ("length").
//
// Continuous batching: each route (a model on a plugin) runs one batch
// loop while it has work. Every step it admits waiting requests, up to
// Config.MaxBatch running sequences, and prefills new prompts in chunks
// under the Config.StepTokens budget, issues one DecodeStep for all running
// sequences (prefills and decodes mixed), samples each and retires the
// finished ones. With a backend that keeps KV caches (DecodeResult
// CachedTokens) a sequence sends only its new tokens; otherwise, and with
// Config.DisableKVCache, each step sends whole windows. The loop owns its
// sequences; a request's goroutine reads its tokens from a channel and does
// the text work (detokenizing, stop sequences, the filter) off the loop.
//
// Backpressure and lifetimes: a model's queue holds at most
// Config.QueueDepth waiting requests and the instance at most
// Config.Concurrency requests; beyond them a request fails with
// ErrQueueFull (code resource_exhausted with a retry hint; HTTP 429 at the
// gateway). A request's deadline (GenerateRequest.deadline_unix_ms, set
// by bus.Generate from its context) is honoured: one that expires while
// queued never runs. A client that goes away publishes a GenerateCancel on
// inference.cancel and its generation stops at the next step.
//
// Serverless: requests that arrive while their model loads wait for it; a
// model unloads after Config.KeepAlive without requests, and loading past
// Config.MemoryBudget unloads idle models, least recently used first.
//
// Each model is routed to one plugin process; models on the same backend
// share the backend's newest plugin. Swap (and inference.swap on the bus,
// which every instance answers) moves a model to another backend, or to a
// fresh process of the same backend: the new plugin loads the weights, new
// requests go to it, requests already running finish on the old plugin,
// and the old plugin is closed once no model uses it. A request stays on
// the plugin it started on for its whole life. inference.status reports
// per model the backend, plugin pid, restarts and requests in flight.
//
// A plugin that dies is restarted by the host; the batch reloads the model
// and prefills every running sequence again, retrying until it succeeds or
// Config.RetryWindow ends, after which its requests fail with
// ErrUnavailable (error code "unavailable", safe to retry). The service
// closes its plugins when Run returns.
package inference
