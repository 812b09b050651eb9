// Package synth generates a synthetic corpus with ground truth for measuring
// the data-prep stages: planted exact and near duplicates at known Jaccard
// similarity, and planted personal data of every type the pii package
// detects, each with its byte span.
//
// Base documents come from the demo corpus (democorpus), which is templated:
// two demo documents of the same kind share up to 80% of their 5-character
// shingles. To make unrelated base documents clean, each one is salted with
// random paragraphs built from the corpus's own vocabulary (Chinese
// character pairs, English words) about as long as the document, which
// brings same-kind pairs below Jaccard 0.5 (TestBaseDocsUnrelated measures
// it).
//
// Near duplicates are copies of a base document edited by substituting,
// deleting and inserting short runs of characters and swapping sentences;
// the number of edits is searched until the copy's exact shingle Jaccard
// with its source is within Tolerance of the target. Each planted pair
// records the measured value, which is exact. Every derived document has
// its own source (while the base set lasts), so the planted pairs are the
// whole truth: there are no chains of copies of copies.
//
// Personal data is planted only in base documents that no copy was made
// from, as its own line, "<context word><value>", so that it never moves a
// planted pair's Jaccard and passports carry the context word the detector
// needs. Document order is shuffled, so the first of a pair is not always
// the source.
//
// Generate is a pure function of its Config: the same Config gives the same
// Corpus on every platform.
package synth
