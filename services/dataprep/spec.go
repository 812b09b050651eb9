package dataprep

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/services/internal/corpus"
)

// BuiltinDemo names the built-in synthetic legal corpus.
const BuiltinDemo = "demo"

// Stage names, in the order they run when listed.
const (
	StageNormalize  = "normalize"   // NFC text, folded matching key; config: {"simplified": bool}
	StageQuality    = "quality"     // quality filters; config: quality.Config
	StagePII        = "pii"         // PII scrubbing; config: {"types": [...], "action": "redact"|"drop"}
	StageExactDedup = "exact_dedup" // content hash; config: {"set": "name"} to dedup across runs
	StageNearDedup  = "near_dedup"  // MinHash LSH; config: dedup.Config plus {"keep": "first"|"newest"}
	StageLabel      = "label"       // weak supervision; config: label config (default functions if empty)
	StageAugment    = "augment"     // augmented copies; config: augment config plus {"copies": n}
)

// stageNames lists the known stages in their fixed run order.
var stageNames = []string{StageNormalize, StageQuality, StagePII, StageExactDedup, StageNearDedup, StageLabel, StageAugment}

// DefaultStages is the pipeline a spec without "stages" runs.
var DefaultStages = []string{StageNormalize, StageQuality, StagePII, StageExactDedup, StageNearDedup, StageLabel}

// StageSpec names a stage and its optional JSON config.
type StageSpec struct {
	Name   string          `json:"name"`
	Config json.RawMessage `json:"config,omitempty"`
}

// Spec is the spec of a dataprep job.
type Spec struct {
	// Builtin generates a built-in corpus ("demo") instead of reading Input.
	Builtin string `json:"builtin,omitempty"`
	// Documents is the number of documents a builtin corpus generates.
	Documents int `json:"documents,omitempty"`
	// Seed makes a builtin corpus (and augmentation) reproducible.
	Seed uint64 `json:"seed,omitempty"`
	// Input is the name of a registered dataset.
	Input string `json:"input,omitempty"`
	// Output is the name the clean dataset is registered under.
	Output string `json:"output"`
	// MinChars is a shorthand for the quality stage's minimum length.
	MinChars int `json:"min_chars,omitempty"`
	// Stages is the pipeline, run in the fixed order normalize, quality,
	// pii, exact_dedup, near_dedup, label, augment; default DefaultStages.
	Stages []StageSpec `json:"stages,omitempty"`
	// Shards splits the documents into this many shard jobs that any
	// dataprep instance may take; 0 picks one per 8 MiB of input.
	Shards int `json:"shards,omitempty"`
	// Format of the output dataset: parquet (default) or jsonl.
	Format string `json:"format,omitempty"`
}

// MaxShards bounds the shard jobs of one dataprep job.
const MaxShards = 256

// Validate checks the spec and fills in defaults.
func (s *Spec) Validate() error {
	switch {
	case s.Builtin != "" && s.Input != "":
		return errors.New("set either builtin or input, not both")
	case s.Builtin == "" && s.Input == "":
		return errors.New("set builtin (\"demo\") or input (a dataset name)")
	case s.Builtin != "" && s.Builtin != BuiltinDemo:
		return fmt.Errorf("unknown builtin corpus %q (want %q)", s.Builtin, BuiltinDemo)
	}
	if s.Input != "" {
		if err := bus.ValidName(s.Input); err != nil {
			return err
		}
	}
	if err := bus.ValidName(s.Output); err != nil {
		return err
	}
	if s.Documents < 0 || s.Documents > 1_000_000 {
		return fmt.Errorf("documents %d out of range [0, 1000000]", s.Documents)
	}
	if s.Documents == 0 {
		s.Documents = 2000
	}
	if s.MinChars < 0 {
		return fmt.Errorf("min_chars %d must not be negative", s.MinChars)
	}
	if s.Shards < 0 || s.Shards > MaxShards {
		return fmt.Errorf("shards %d out of range [0, %d]", s.Shards, MaxShards)
	}
	switch s.Format {
	case "":
		s.Format = corpus.FormatParquet
	case corpus.FormatParquet, corpus.FormatJSONL:
	default:
		return fmt.Errorf("format %q: want parquet or jsonl", s.Format)
	}
	if s.Stages == nil {
		for _, n := range DefaultStages {
			s.Stages = append(s.Stages, StageSpec{Name: n})
		}
	}
	seen := map[string]bool{}
	for _, st := range s.Stages {
		known := false
		for _, n := range stageNames {
			known = known || n == st.Name
		}
		if !known {
			return fmt.Errorf("unknown stage %q (want one of %s)", st.Name, strings.Join(stageNames, ", "))
		}
		if seen[st.Name] {
			return fmt.Errorf("stage %q is listed twice", st.Name)
		}
		seen[st.Name] = true
	}
	_, err := buildPipeline(s)
	return err
}

// stage returns the config of a listed stage.
func (s *Spec) stage(name string) (json.RawMessage, bool) {
	for _, st := range s.Stages {
		if st.Name == name {
			return st.Config, true
		}
	}
	return nil, false
}
