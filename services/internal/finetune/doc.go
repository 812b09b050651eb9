// Package finetune is what the compression services (quantizer, distiller)
// share when they start from a model that already exists: resolving a
// registered model or a checkpoint ref to its weights, config and
// tokenizer; reading token shards; the fixed validation windows and the
// seeded training batches; the warmup + cosine schedule; and the loops that
// evaluate and fine-tune a model through an accelerator backend.
//
// Nothing here multiplies a matrix: every forward, backward and update runs
// in the backend. Source weights are read once per job and belong to the
// caller; the token slices returned by Tokens are fresh copies.
package finetune
