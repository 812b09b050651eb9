// hf_encode.mjs loads a tokenizer.json with HF tokenizers (the npm
// "tokenizers" package) and encodes texts, to check that files llmesh writes
// load in HF tooling and encode the same way.
//
// Usage: node hf_encode.mjs <tokenizer.json> <texts.json>
// texts.json holds a JSON array of strings; the output is one JSON line, an
// array of id arrays.
import { Tokenizer } from 'tokenizers';
import { readFileSync } from 'node:fs';

const [tokFile, textsFile] = process.argv.slice(2);
if (!tokFile || !textsFile) {
  console.error('usage: node hf_encode.mjs <tokenizer.json> <texts.json>');
  process.exit(2);
}
const tok = Tokenizer.fromFile(tokFile);
const texts = JSON.parse(readFileSync(textsFile, 'utf8'));
const out = [];
for (const t of texts) {
  const enc = await tok.encode(t, null, { addSpecialTokens: false });
  out.push(enc.getIds());
}
process.stdout.write(JSON.stringify(out) + '\n');
