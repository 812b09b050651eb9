package bus

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Streams, buckets and the object store.
const (
	StreamJobs   = "JOBS"
	StreamEvents = "EVENTS"

	BucketJobs       = "jobs"
	BucketModels     = "models"
	BucketDatasets   = "datasets"
	BucketTokenizers = "tokenizers"
	BucketPlugins    = "plugins"
	BucketShards     = "shards"
	// BucketDedup is the set of content hashes exact dedup has seen, across
	// runs (keys "<set>.<hex hash>").
	BucketDedup = "dedup"
	// BucketFilterPolicies holds the filter policies as JSON, one per model
	// name and "default"; the revision is the policy's version.
	BucketFilterPolicies = "filter_policies"

	ObjectStoreArtifacts = "artifacts"

	// JobsDuplicateWindow is how long JOBS remembers a Nats-Msg-Id.
	JobsDuplicateWindow = 10 * time.Minute
	// EventsMaxAge is how long EVENTS keeps an event.
	EventsMaxAge = 7 * 24 * time.Hour
	// ShardsTTL is how long a shards entry lives without being rewritten.
	ShardsTTL = 30 * time.Second
)

// Online (request-reply) subjects.
const (
	TokenizerEncodeSubject = "tokenizer.encode"
	TokenizerDecodeSubject = "tokenizer.decode"
	FilterCheckSubject     = "filter.check"
)

// Job kinds.
const (
	KindPipeline = "pipeline"
	KindDataprep = "dataprep"
	KindTokenize = "tokenize"
	KindTrain    = "train"
	KindQuantize = "quantize"
	KindDistill  = "distill"
	KindPrune    = "prune"
	KindEval     = "eval"
	// KindDataprepShard is one shard of a dataprep job, submitted by the
	// dataprep job that coordinates it.
	KindDataprepShard = "dataprep-shard"
	// KindTrainShard is one extra shard of a data-parallel train job,
	// submitted by the train job that it joins.
	KindTrainShard = "train-shard"
)

var kinds = []string{KindPipeline, KindDataprep, KindDataprepShard, KindTokenize, KindTrain, KindTrainShard, KindQuantize, KindDistill, KindPrune, KindEval}

// Kinds returns every job kind.
func Kinds() []string { return slices.Clone(kinds) }

// Event types (the last token of an event subject).
const (
	EventProgress = "progress"
	EventMetric   = "metric"
	EventLog      = "log"
	EventArtifact = "artifact"
	EventDone     = "done"
	EventFailed   = "failed"
)

// ValidKind returns nil for a known job kind and an error wrapping
// ErrUnknownKind, naming the kind and the valid ones, otherwise.
func ValidKind(kind string) error {
	if slices.Contains(kinds, kind) {
		return nil
	}
	return fmt.Errorf("job kind %q (want one of %s): %w", kind, strings.Join(kinds, ", "), ErrUnknownKind)
}

// MaxNameLen is the longest name ValidName accepts.
const MaxNameLen = 64

// ValidName checks a user-supplied name (dataset, model, tokenizer): 1 to
// 64 characters of [A-Za-z0-9._-], starting with a letter or digit, with no
// "..". So "../x", "a/b", "" and "." are refused. A name with dots is still
// one KV key, but in InferSubject it spans several subject tokens.
func ValidName(name string) error { return validName("name", name, true) }

// ValidJobID checks a job id: like ValidName but without dots, because the
// id is one token of the event subjects events.<id>.<type>.
func ValidJobID(id string) error { return validName("job id", id, false) }

func validName(what, name string, dots bool) error {
	switch {
	case name == "":
		return fmt.Errorf("%s is empty: %w", what, ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%s %.20q... is %d characters, longer than %d: %w", what, name, len(name), MaxNameLen, ErrInvalidName)
	case !isAlnum(name[0]):
		return fmt.Errorf("%s %q must start with a letter or digit: %w", what, name, ErrInvalidName)
	case strings.Contains(name, ".."):
		return fmt.Errorf("%s %q contains \"..\": %w", what, name, ErrInvalidName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isAlnum(c) || c == '_' || c == '-' || (dots && c == '.') {
			continue
		}
		allowed := "[A-Za-z0-9._-]"
		if !dots {
			allowed = "[A-Za-z0-9_-]"
		}
		return fmt.Errorf("%s %q has %q at %d; allowed are %s: %w", what, name, c, i, allowed, ErrInvalidName)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// RefPrefix starts every object reference.
const RefPrefix = "sha256-"

// ValidRef checks an object reference: "sha256-" and 64 lower-case hex
// digits.
func ValidRef(ref string) error {
	h, ok := strings.CutPrefix(ref, RefPrefix)
	if !ok || len(h) != 64 || strings.ToLower(h) != h {
		return fmt.Errorf("object ref %.80q is not sha256-<64 lower-case hex digits>: %w", ref, ErrInvalidRef)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return fmt.Errorf("object ref %.80q is not sha256-<64 lower-case hex digits>: %w", ref, ErrInvalidRef)
	}
	return nil
}

// JobSubject is the subject jobs of kind are published on: jobs.<kind>.
func JobSubject(kind string) string { return "jobs." + kind }

// EventSubject is the subject of a job's events of one type:
// events.<job>.<type>.
func EventSubject(jobID, typ string) string { return "events." + jobID + "." + typ }

// EventsFilter matches every event of a job: events.<job>.>.
func EventsFilter(jobID string) string { return "events." + jobID + ".>" }

// InferSubject is the request subject of a served model:
// infer.<model>.generate.
func InferSubject(model string) string { return "infer." + model + ".generate" }

// ShardKey is the shards bucket key of one trainer shard of a job.
func ShardKey(jobID string, rank int) string { return fmt.Sprintf("%s.%d", jobID, rank) }
