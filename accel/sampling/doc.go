// Package sampling picks the next token from a row of logits: greedy at
// temperature 0, otherwise softmax with temperature over the top-k logits,
// cut to the top-p nucleus, after a repetition penalty on the tokens seen
// so far; draws come from a seeded generator so that a given seed
// reproduces a generation. Params.Validate checks every parameter. A
// Sampler owns its generator, its set of seen tokens and its scratch; it is
// not safe for concurrent use.
package sampling
