// hf_train.mjs trains a byte-level BPE with HF tokenizers (Rust, via the npm
// "tokenizers" package) on one text file and prints one JSON line:
//
//   {"seconds": <train call only>, "rss_bytes": <peak RSS of this process>,
//    "vocab_size": <vocabulary reached>, "trainer_vocab_size": 30000, ...}
//
// Usage: node hf_train.mjs <textfile> <vocab> [pre-tokenizer regex]
//
// It is the partner of `llmesh bench tokenizer`. The regex, when given, is
// the Oniguruma Split pattern llmesh's tokenizer.json uses (Han runs cut into
// chunks), so both sides count the same pre-tokens; without it the plain
// GPT-2 ByteLevel pre-tokenizer is used.
//
// The npm binding's Tokenizer.train(files) always trains with the model's
// default BpeTrainer (vocab_size 30000, min_frequency 0, no special tokens):
// it exposes no trainer options. The requested vocab is echoed back so the
// caller can note the difference; the special token is added after training.
import { Tokenizer } from 'tokenizers';
import { statSync } from 'node:fs';

const [file, vocabArg, pattern] = process.argv.slice(2);
if (!file || !vocabArg) {
  console.error('usage: node hf_train.mjs <textfile> <vocab> [pre-tokenizer regex]');
  process.exit(2);
}
const requested = Number(vocabArg);
if (!Number.isInteger(requested) || requested < 257) {
  console.error(`hf_train: vocab ${vocabArg} is not an integer of at least 257`);
  process.exit(2);
}

const byteLevel = (useRegex) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
const preTokenizer = pattern
  ? { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false },
      byteLevel(false)] }
  : byteLevel(true);
const spec = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [],
  normalizer: null,
  pre_tokenizer: preTokenizer,
  post_processor: null,
  decoder: byteLevel(true),
  model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: {}, merges: [] },
};
const tok = Tokenizer.fromString(JSON.stringify(spec));

const t0 = process.hrtime.bigint();
tok.train([file]);
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
tok.addSpecialTokens(['<|endoftext|>']);

console.log(JSON.stringify({
  seconds,
  // maxRSS is in kilobytes.
  rss_bytes: process.resourceUsage().maxRSS * 1024,
  vocab_size: tok.getVocabSize(true),
  requested_vocab_size: requested,
  trainer_vocab_size: 30000,
  trainer_min_frequency: 0,
  input_bytes: statSync(file).size,
  tokenizers_version: '0.23.2',
}));
