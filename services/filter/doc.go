// Package filter is the filter service: the input and output rails of
// every served model. It answers filter.check (request-reply, queue group
// "filter") and gives the inference service a Client that checks prompts
// and streamed output (Client implements inference.Filter).
//
// A check runs the stages of the model's policy:
//   - phrase lists (built-in ones per category and inline ones) matched by
//     one Aho–Corasick automaton over folded text — full-width to ASCII,
//     case, Traditional to Simplified Chinese, look-alike digits and
//     symbols, and inserted spaces, symbols and zero-width marks dropped —
//     on word boundaries for Latin phrases;
//   - regular expressions (RE2) on the raw text;
//   - personal data, with the detectors data-prep uses
//     (services/internal/pii), to block or redact;
//   - a learned stage: a small transformer trained by the mesh itself
//     through the trainer (Learn) and run in an accelerator plugin by the
//     service (Classifiers), for categories lists cannot capture.
//
// Every finding has a category, and the category's action (allow, redact,
// block) decides; the strongest action wins. Policies are JSON in the
// filter_policies KV bucket, one per model name plus "default", versioned
// by the KV revision and watched (Policies): a change applies without a
// restart, and a policy that does not parse or validate is rejected while
// the previous one stays. Blocks and redactions are audited as events on
// events.filter.audit with the rules and offsets that matched, never the
// text or the values found in it.
//
// Streaming: see Client. The rule stages run in the caller's process on a
// sliding window (Stream), so a violation stops the stream at the token
// that completes it; where a policy is required (or has a learned stage)
// the service confirms the output too and nothing unconfirmed is released,
// so a filter service that is down fails the request closed.
//
// Lifetimes: an Engine is immutable and safe for concurrent use; a Stream
// belongs to one generation; Service.Run and Client.Run return when their
// context is done.
package filter
