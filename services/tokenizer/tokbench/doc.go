// Package tokbench is the harness behind `llmesh bench tokenizer`. It
// measures the byte-level BPE codec (services/internal/bpe) next to its
// partners in one run, on the same text:
//
//   - encode MB/s on one core for cl100k_base and r50k_base, against
//     tiktoken-go with its offline rank files;
//   - batch encode MB/s on all cores, against tiktoken-go on as many
//     goroutines;
//   - training a vocabulary (32k by default) on 10 MB, seconds and peak RSS,
//     against HF tokenizers (Rust, via the npm package) run as a child
//     process by bench/tokenizers/hf_train.mjs.
//
// Run owns nothing that outlives it: the text file it writes for the
// training children goes in a temporary folder removed before it returns.
// Training is measured in a child process on both sides so that peak RSS is
// the trainer's alone; TrainChild is what that child runs. A partner that
// cannot run (no Node, the npm package not installed) is reported with a nil
// PartnerValue and a Note saying how to get it, never dropped.
package tokbench
