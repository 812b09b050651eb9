// Package normalize turns raw document text into the forms the data-prep
// stages use:
//
//   - Text is the training text: valid UTF-8, NFC, no control characters,
//     \n line breaks, no trailing spaces, at most one blank line in a row.
//     Full-width characters and Chinese punctuation are kept.
//   - Key is the matching key for exact and near-duplicate detection: width
//     folded (full-width ASCII to ASCII, U+3000 to a space, NFKC where
//     needed), lower case, white space collapsed; optionally Traditional
//     Chinese converted to Simplified (KeyWith). A key never becomes
//     training text.
//   - ToSimplified converts Traditional characters to Simplified, character
//     by character, with a table generated from OpenCC's TSCharacters
//     dictionary (tables.go; go generate; Apache-2.0 data). Phrase-level
//     conversion (OpenCC's TSPhrases) is out of scope.
//
// All functions are pure, safe for concurrent use and keep no reference to
// their input. Lookup tables (a 64 KiB rune-class table, a 128 KiB
// Traditional→Simplified index) are built on first use and live for the
// process. Text and Key scan their input once; they take a second pass only
// for text holding runes that Unicode normalization could change (combining
// marks, compatibility characters), which legal Chinese and English text
// almost never holds.
package normalize
