// Package corpus reads and writes the dataset formats that the data-prep and
// tokenizer services share: JSONL (one {"text": ...} object a line, optionally
// gzip-compressed) and plain text (documents separated by blank lines).
//
// Reading never loses input silently: a malformed line is an error that names
// the line, and invalid UTF-8 is reported, not replaced.
package corpus
