// Package quality decides whether a document is good enough to train on,
// with Gopher-style heuristics (Rae et al. 2021, "Scaling Language Models:
// Methods, Analysis & Insights from Training Gopher", MassiveText quality
// filters) adapted to Chinese: length, the share of CJK and Latin letters,
// symbol ratio, bullet and ellipsis lines, boilerplate lines, duplicate
// lines, and repeated n-grams.
//
// Words are Latin words (letter and digit runs, lower-cased) and single CJK
// characters, so for Chinese the n-gram rules work on character n-grams and
// for English on word n-grams, in one stream for mixed text. Repeated
// n-grams are measured as Gopher does: the share of word characters covered
// by the single most common 2-, 3- and 4-gram, and by all 5- to 10-grams
// that occur more than once.
//
// A Filter is built from a validated Config (DefaultConfig holds defaults
// tuned on the project's Chinese laws and English licence texts, which are
// legal text that repeats set phrases far more than web text; see Config for
// where they depart from Gopher's values). Check returns the first failing
// rule in the fixed order of Rules, so callers can keep a reject count per
// rule; Stats returns every measure for reports and tuning. A Filter is
// safe for concurrent use and keeps nothing from the texts it sees; its
// scratch memory is pooled.
//
// Check expects normalized training text (package normalize): \n line
// breaks, no control characters.
package quality
