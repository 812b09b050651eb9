// Package dataprep is the data-prep service: it consumes jobs.dataprep and
// turns a raw corpus (an uploaded dataset, or the built-in demo corpus) into
// a clean dataset in the object store, reporting what each stage did.
//
// The stages here are the minimal set every later stage builds on: Unicode
// NFC normalisation with control characters removed and whitespace tidied,
// a minimum-length filter and exact deduplication by content hash. The
// output is a JSONL dataset registered under its name.
package dataprep
