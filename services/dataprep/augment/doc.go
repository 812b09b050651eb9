// Package augment makes training text more varied without changing what
// it says: synonym replacement from a dictionary, random span deletion and
// random sentence swaps, each at a configurable rate, and back-translation
// through a translation model.
//
// An [Augmenter] is built from a validated [Config] and is immutable; it is
// safe for concurrent use. Apply is a pure function of (Config, document
// id, text): two instances with the same config, on any machine, produce
// the same output for the same document, so sharded data-prep runs agree.
//
// Text is handled paragraph by paragraph (split on '\n') and sentence by
// sentence. A sentence ends after a run of 。！？； or, when followed by a
// blank or the end of the paragraph, of .!?; (so "1.5" and "No.5" do not
// split); the punctuation stays with its sentence. Synonyms are replaced by
// longest match over a trie of the dictionary keys, which works on Chinese
// text without word boundaries; a key that begins or ends with an ASCII
// letter or digit only matches at a word boundary ("shall" not inside
// "shallow"). Matching is case-sensitive. Output is always valid UTF-8:
// invalid input bytes become U+FFFD.
//
// Back-translation is an interface only: [BackTranslate] takes any
// [Translator]. The stage that calls the model served by the inference
// service over the bus will implement Translator later; until a model is
// served, data-prep does not back-translate.
package augment
