// Package label assigns document types to unlabeled text by weak
// supervision, after Snorkel: many cheap, noisy labeling functions vote, and a
// generative label model learns how far to trust each one without any ground
// truth.
//
// The flow is
//
//	cfg, err := label.ParseConfig(data)      // or label.DefaultConfig()
//	m := label.Apply(cfg, docs)               // n_docs × n_functions votes
//	lm, err := label.FitLabelModel(m, len(cfg.LabelNames()), label.FitOptions{})
//	labels, probs := lm.Predict(m)
//	report := lm.Report(m)                    // label.Analyze(m) plus accuracies
//
// Labeling functions are declared in JSON (see [FunctionSpec]): keyword
// functions over the text or the title (all keywords of a configuration are
// matched in one Aho–Corasick pass per document), regular expressions (Go
// RE2 syntax, compiled once) and a few built-in heuristics. Each function
// votes one label or abstains ([Abstain], -1). The default configuration
// ([DefaultConfig]) covers Chinese and English contracts, judgments,
// statutes, regulations and "other", and includes some deliberately noisy
// functions.
//
// Two aggregators turn votes into labels: [MajorityVote], and the label model
// of [FitLabelModel], which is Dawid–Skene's model fitted by EM (labeling
// functions conditionally independent given the true class; class prior plus,
// per function, either a full confusion over {abstain, labels} or a single
// accuracy), initialised from the majority vote.
//
// Ownership and lifetimes: a [Config] is immutable once validated and may be
// shared by goroutines; [Apply] runs across GOMAXPROCS goroutines and returns
// a [Matrix] that the caller owns. A [LabelModel] is immutable after fitting
// and safe for concurrent Predict calls.
package label
