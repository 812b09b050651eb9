// Package bpe is the byte-level BPE codec that the tokenizer service (which
// trains and serves tokenizers) and the inference service (which encodes
// prompts and decodes samples) both run. It owns the whole codec: training,
// encoding, decoding and the HuggingFace tokenizer.json format.
//
// # Model
//
// Tokens are byte strings. Ids 0..k-1 are the special tokens given to Train
// (by default just "<|endoftext|>"), the next 256 ids are the single bytes,
// and every later id is the result of one merge. Because every byte has a
// token, any string, valid UTF-8 or not, encodes, and
// Decode(Encode(s)) == s always holds.
//
// # Pre-tokenization
//
// Text is cut into pre-tokens before merging, the way GPT-2's regular
// expression
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// would cut it (the code is hand-written, no regexp), with one change for
// Chinese: runs of Han ideographs, and runs of CJK punctuation (U+3000–U+303F,
// U+FE30–U+FE4F, U+FF00–U+FF65 that are not letters or digits), are classes of
// their own and are cut into chunks of at most ChunkRunes (4) runes counted
// from the start of the run, an optional leading space riding with the first
// chunk. Without this a whole Chinese clause would be one pre-token and merges
// could not find common words. Four runes keeps two-character words (合同,
// 甲方, 被告) and four-character set phrases (本院认为, 判决如下) learnable
// while bounding pre-token length. A tokenizer.json written by MarshalJSON
// expresses the same cut as an Oniguruma Split pattern (see PreTokenizerPattern)
// so HuggingFace tokenizers encode identically. A foreign file with GPT-2's
// plain ByteLevel pre-tokenizer is encoded with GPT-2's rule (no Han chunking).
//
// # Lifetimes and concurrency
//
// A *Tokenizer is immutable after Train or Load and safe for concurrent use;
// the merge cache inside it is guarded. Slices returned by Encode belong to
// the caller.
package bpe
