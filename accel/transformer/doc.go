// Package transformer is the model runtime every accelerator backend
// shares: a decoder-only GPT (Pre-LN, LayerNorm or RMSNorm, learned or
// rotary positions, GELU or SwiGLU MLP, causal multi-head attention with
// an optional sliding window and global tokens, tied embeddings, optional
// early-exit heads) with its forward and backward passes, the AdamW
// optimizer, label smoothing, BF16 mixed precision, and safetensors
// checkpoints with GPT-2 tensor names, so that real GPT-2 weights load.
//
// Training runs on fused kernels (tiled attention that never writes the
// T×T score matrix, the residual add fused into the next norm,
// cross-entropy with label smoothing, one-pass AdamW). Serving runs on a
// Decoder: a paged KV cache (KVBlockTokens positions a block, shared
// identical prompt prefixes) and batched incremental steps that mix
// prefills and single-token decodes, with early exit.
//
// Compression: a teacher's top-K logits per position (Model.TopK) and the
// student's distillation objective against them
// (Model.DistillForwardBackward); pruning by magnitude, attention head or
// MLP neuron (PruneMagnitude, PruneHeads, PruneNeurons, PruneSpec), and a
// SparsityMask that AdamW keeps at zero while a pruned model fine-tunes.
// INT8: Quantize writes a checkpoint with every weight matrix and the tied
// head in symmetric per-output-channel INT8 (activations quantized per row
// at run time, or with calibrated static scales: W8A8); a Model read from
// it runs every weight product, in Loss and in the Decoder, on accel/simd's
// INT8 kernels, and refuses training (ErrQuantized). QAT (Model.SetQAT)
// trains through fake-quantized weights with straight-through gradients;
// StartActivationStats/StopActivationStats is the calibration pass.
//
// Tensor parallelism: a TPModel is one rank's Megatron-style slice of a
// Model (its attention heads and MLP columns; everything else replicated),
// trained in lockstep with the other ranks through a caller-supplied
// allreduce (AllReduceFunc: two activation sums forward and two gradient
// sums backward per layer) and AdamW.StepTP, and gathered back to a full
// Model for checkpoints (GatherModel).
//
// The math is written against Kernels, a small interface of dense
// primitives (Sgemm at its core), with optional extensions found by type
// assertion (VectorKernels, RowKernels, ColKernels, GeluKernels,
// PackedKernels). PortableKernels is the pure-Go implementation; accel/simd
// supplies the AVX-512/AVX2 ones.
//
// Ownership and lifetimes: a Model owns one flat []float32 of parameters,
// one of gradients (allocated on first backward pass) and its activation
// buffers, which grow to the largest batch seen and are reused; slices
// returned by ParamData, Grads and Params alias that storage for the
// Model's lifetime. A Model (and a Decoder) is not safe for concurrent
// use. Tensors from ReadSafetensors alias the input bytes. Parallel work
// runs on accel/simd's process-wide pool of GOMAXPROCS-1 helpers.
package transformer
