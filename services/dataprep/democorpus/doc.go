// Package democorpus generates the built-in demo corpus: synthetic legal
// documents, about 80% Chinese and 20% English, for the worked example of
// training a small contract/judgment generator without any outside data.
//
// Kinds are contracts (sale, lease, employment, loan) and civil judgments.
// Each document is a fixed skeleton (title, parties, recitals, numbered
// articles, signatures; or court, case number, claims, findings, holding,
// costs) filled from varied clause templates whose slots (names,
// addresses, amounts in figures and in Chinese capital numerals, dates,
// durations, rates, cities) are drawn at random. The recurring formulas
// give a small model something to learn; the slots give it variety.
//
// The package owns the templates and the generator. Output is a pure
// function of (seed, index): Generate(seed, n)[i] does not depend on n, and
// the same seed gives byte-identical output on every platform and Go
// version (math/rand/v2's PCG is specified exactly).
package democorpus
