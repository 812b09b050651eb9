// Package inference is the inference service. It answers
// infer.<model>.generate requests in the "inference" queue group: it loads
// the model's checkpoint into an accelerator plugin on first use (and again
// when the registry points at a newer checkpoint), encodes the prompt with
// the model's tokenizer, decodes with greedy or temperature/top-k sampling
// and streams GenerateChunk messages back to the request's reply subject,
// ending with one whose done flag is set.
//
// The service owns one plugin per backend; a plugin that dies is restarted
// by the host, and requests in flight reload their model and retry once.
package inference
