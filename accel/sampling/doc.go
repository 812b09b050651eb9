// Package sampling picks the next token from a row of logits: greedy at
// temperature 0, otherwise softmax with temperature over the top-k logits,
// drawn from a seeded generator so that a given seed reproduces a
// generation. A Sampler owns its generator and scratch; it is not safe for
// concurrent use.
package sampling
