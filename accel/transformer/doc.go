// Package transformer is the model runtime every accelerator backend
// shares: a decoder-only GPT (Pre-LN, LayerNorm or RMSNorm, learned or
// rotary positions, GELU MLP, causal multi-head attention, tied
// embeddings) with its forward and backward passes, the AdamW optimizer,
// and safetensors checkpoints with GPT-2 tensor names, so that real GPT-2
// weights load.
//
// The math is written against Kernels, a small interface of dense
// primitives (Sgemm at its core). PortableKernels is the pure-Go
// implementation; backends supply faster ones.
//
// Ownership and lifetimes: a Model owns one flat []float32 of parameters,
// one of gradients (allocated on first backward pass) and its activation
// buffers, which grow to the largest batch seen and are reused; slices
// returned by ParamData, Grads and Params alias that storage for the
// Model's lifetime. A Model is not safe for concurrent use. Tensors from
// ReadSafetensors alias the input bytes. A process-wide pool of
// GOMAXPROCS-1 goroutines, started on first use, runs the parallel work.
package transformer
