// Package inference is the inference service. It answers
// infer.<model>.generate requests in the "inference" queue group: it loads
// the model's checkpoint into an accelerator plugin on first use (and again
// when the registry points at a newer checkpoint), encodes the prompt with
// the model's tokenizer, decodes with greedy or temperature/top-k sampling
// and streams GenerateChunk messages back to the request's reply subject,
// ending with one whose done flag is set.
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
// A plugin that dies is restarted by the host; requests in flight on it
// reload their model and retry the decode step until it succeeds or
// Config.RetryWindow ends, after which they fail with ErrUnavailable
// (error code "unavailable", safe to retry). The service closes its
// plugins when Run returns.
package inference
