// Package corpustest gives tests and benchmarks the shared corpora
// (shared/data/cn-law.jsonl.gz and en-legal.jsonl.gz, found above the
// working directory): where they are, and their documents. Every function
// that needs a corpus skips the test, with the reason, when it is absent,
// and fails it when the file is malformed.
//
// The documents returned are the caller's; nothing is cached between calls.
package corpustest
