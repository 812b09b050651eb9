// Package tokenizer is the tokenizer service. It consumes jobs.tokenize —
// train a byte-level BPE vocabulary on a dataset and/or encode the dataset
// into token shards (Arrow tensors of uint16 or uint32 ids, split into train
// and validation) — and answers tokenizer.encode and tokenizer.decode
// requests in the "tokenizer" queue group.
//
// Tokenizers are stored as HF tokenizer.json in the object store and
// registered by name; the codec itself lives in services/internal/bpe, which
// the inference service shares.
package tokenizer
