// Package bpe is the byte-level BPE codec that the tokenizer service (which
// trains and serves tokenizers) and the inference service (which encodes
// prompts and decodes samples) both run. It owns the whole codec: training,
// encoding, decoding, the HuggingFace tokenizer.json format (Load,
// MarshalJSON) and tiktoken rank files (LoadTiktoken, MarshalTiktoken).
//
// # Model
//
// Tokens are byte strings. For a trained tokenizer, ids 0..k-1 are the
// special tokens given to Train (by default just "<|endoftext|>"), the next
// 256 ids are the single bytes, and every later id is the result of one
// merge. Because every byte has a token, any string, valid UTF-8 or not,
// encodes, and Decode(Encode(s)) == s always holds.
//
// # Merge modes
//
// Text is cut into pre-tokens, and each pre-token, starting from its single
// bytes, is merged pair by pair, always the adjacent pair of lowest rank,
// leftmost among equals. The two modes differ in which pairs merge and what
// ranks them:
//
//   - Merges mode (Train, Load): a pair merges only if the merges list names
//     it; its rank is its place in that list. This is HuggingFace's BPE,
//     including ignore_merges (a pre-token that is a token is that token).
//   - Rank mode (LoadTiktoken): tiktoken's rule. Any two adjacent parts
//     whose concatenated bytes are a token merge, ranked by that token's
//     rank, which is also its id; a pre-token that is a token is that token.
//     Internally the pair table holds every split of every token into two
//     tokens, so a merge is a lookup on token ids, never on byte strings.
//
// MarshalJSON writes a rank-mode tokenizer the way HuggingFace converts
// tiktoken files: every split of every token as a merge, ordered by the
// token's rank, then by the ranks of the left and right pieces, with
// ignore_merges. Loaded back, that file is in merges mode and encodes as
// tiktoken does except in one case, where HuggingFace's tokenizers differ
// from tiktoken on that file too: when two different splits of one token
// (x+yz and xy+z, or x+y and z+w elsewhere in the pre-token with xy == zw)
// are candidates at the same time, tiktoken merges the leftmost first and
// the merges list the one whose left piece ranks lower, and what follows
// can differ. On the test corpora (2 MB of Chinese and English plus the
// nasty cases) this never happens and the encodings are identical
// (TestTiktokenViaTokenizerJSON).
//
// Both modes keep a merge cache of short pre-tokens.
//
// # Pre-tokenization
//
// There are two pre-tokenizers, each hand-written (no regexp) and exactly
// equivalent to a regular expression as tiktoken-go runs it (regexp2 over
// the text's runes; \s is unicode.IsSpace, \p{L} unicode.IsLetter, \p{N}
// unicode.IsNumber, so "½", "²" and "〇" are numbers and U+0085, U+00A0,
// U+2028 and U+3000 are spaces, but U+200B is not).
//
// GPT-2's (GPT2Pattern; r50k_base, and our trained tokenizers):
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// cl100k_base's (Cl100kPattern): contractions in any case, one optional
// rune that is not CR, LF, a letter or a number before letters, numbers in
// groups of one to three, punctuation taking trailing newlines:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// An invalid UTF-8 byte is cut as tiktoken-go cuts it, as one U+FFFD (a
// symbol), but its byte is kept: tiktoken-go encodes U+FFFD's three bytes
// instead, so it cannot round-trip such text and token parity is defined
// for valid UTF-8 only.
//
// Our trained tokenizers use GPT-2's rule with one change for Chinese: runs
// of Han ideographs, and runs of CJK punctuation (U+3000–U+303F,
// U+FE30–U+FE4F, U+FF00–U+FF65 that are not letters or digits), are classes
// of their own and are cut into chunks of at most ChunkRunes (4) runes
// counted from the start of the run, an optional leading space riding with
// the first chunk. Without this a whole Chinese clause would be one
// pre-token and merges could not find common words. Four runes keeps
// two-character words (合同, 甲方, 被告) and four-character set phrases
// (本院认为, 判决如下) learnable while bounding pre-token length. A
// tokenizer.json written by MarshalJSON expresses the same cut as an
// Oniguruma Split pattern (see PreTokenizerPattern) so HuggingFace
// tokenizers encode identically. A foreign file with GPT-2's plain
// ByteLevel pre-tokenizer, and r50k_base, are encoded with GPT-2's rule (no
// Han chunking); a file whose Split pattern is Cl100kPattern with
// cl100k's rule.
//
// # Lifetimes and concurrency
//
// A *Tokenizer is immutable after Train, Load or LoadTiktoken and safe for
// concurrent use; the merge cache inside it is guarded. Slices returned by
// Encode and EncodeBatch belong to the caller.
package bpe
