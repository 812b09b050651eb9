package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

// Spec is a pipeline: dataset → tokenizer → train → generate.
type Spec struct {
	Name      string         `json:"name"`
	Dataset   DatasetStage   `json:"dataset"`
	Tokenizer TokenizerStage `json:"tokenizer"`
	Train     TrainStage     `json:"train"`
	Generate  GenerateStage  `json:"generate"`
}

// DatasetStage prepares the corpus (a dataprep job).
type DatasetStage struct {
	Builtin   string `json:"builtin,omitempty"`
	Documents int    `json:"documents,omitempty"`
	Seed      uint64 `json:"seed,omitempty"`
	Input     string `json:"input,omitempty"`
	Output    string `json:"output,omitempty"`
	MinChars  int    `json:"min_chars,omitempty"`
	// Stages and Shards are passed to the dataprep job as they are.
	Stages []map[string]any `json:"stages,omitempty"`
	Shards int              `json:"shards,omitempty"`
	Format string           `json:"format,omitempty"`
}

// TokenizerStage trains the tokenizer and encodes the corpus.
type TokenizerStage struct {
	Name         string  `json:"name,omitempty"`
	VocabSize    int     `json:"vocab_size,omitempty"`
	MinFrequency int     `json:"min_frequency,omitempty"`
	ValFraction  float64 `json:"val_fraction,omitempty"`
}

// TrainStage trains the model; its fields are the train job's, except
// that the token refs and vocabulary come from the tokenizer stage.
type TrainStage struct {
	Model           string         `json:"model"`
	Config          map[string]any `json:"config"`
	Backend         string         `json:"backend,omitempty"`
	Steps           int            `json:"steps,omitempty"`
	Batch           int            `json:"batch,omitempty"`
	SeqLen          int            `json:"seq_len,omitempty"`
	LR              float64        `json:"lr,omitempty"`
	MinLR           float64        `json:"min_lr,omitempty"`
	Warmup          int            `json:"warmup,omitempty"`
	WeightDecay     float64        `json:"weight_decay,omitempty"`
	GradClip        float64        `json:"grad_clip,omitempty"`
	EvalEvery       int            `json:"eval_every,omitempty"`
	EvalBatches     int            `json:"eval_batches,omitempty"`
	CheckpointEvery int            `json:"checkpoint_every,omitempty"`
	LogEvery        int            `json:"log_every,omitempty"`
	Seed            uint64         `json:"seed,omitempty"`
	MaxRestarts     int            `json:"max_restarts,omitempty"`
}

// GenerateStage samples text from the trained model.
type GenerateStage struct {
	Prompts     []string `json:"prompts,omitempty"`
	MaxTokens   int32    `json:"max_tokens,omitempty"`
	Temperature float32  `json:"temperature,omitempty"`
	TopK        int32    `json:"top_k,omitempty"`
	Seed        uint64   `json:"seed,omitempty"`
}

// Validate checks the spec and fills in defaults.
func (s *Spec) Validate() error {
	if s.Name == "" {
		s.Name = "pipeline"
	}
	if err := bus.ValidName(s.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	d := &s.Dataset
	if d.Builtin == "" && d.Input == "" {
		return errors.New("dataset: set builtin (\"demo\") or input (a registered dataset)")
	}
	if d.Input != "" {
		if err := bus.ValidName(d.Input); err != nil {
			return fmt.Errorf("dataset.input: %w", err)
		}
	}
	if d.Output == "" {
		d.Output = s.Name + "-clean"
	}
	if err := bus.ValidName(d.Output); err != nil {
		return fmt.Errorf("dataset.output: %w", err)
	}
	if s.Tokenizer.Name == "" {
		s.Tokenizer.Name = s.Name
	}
	if err := bus.ValidName(s.Tokenizer.Name); err != nil {
		return fmt.Errorf("tokenizer.name: %w", err)
	}
	if s.Train.Model == "" {
		s.Train.Model = s.Name
	}
	if err := bus.ValidName(s.Train.Model); err != nil {
		return fmt.Errorf("train.model: %w", err)
	}
	if s.Train.Config == nil {
		return errors.New("train.config (n_ctx, n_embd, n_layer, n_head) is required")
	}
	g := &s.Generate
	if len(g.Prompts) > 16 {
		return fmt.Errorf("generate.prompts: %d prompts; the limit is 16", len(g.Prompts))
	}
	for i, p := range g.Prompts {
		if !utf8.ValidString(p) || len(p) > 4096 {
			return fmt.Errorf("generate.prompts[%d]: not valid UTF-8 or longer than 4096 bytes", i)
		}
	}
	if g.MaxTokens == 0 {
		g.MaxTokens = 64
	}
	return nil
}

// ParseSpec decodes and validates a JSON pipeline spec.
func ParseSpec(data []byte) (*Spec, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: pipeline: spec is not valid UTF-8", jobspec.ErrInvalid)
	}
	var s Spec
	if err := jobspec.Decode("pipeline", data, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// MaxYAML is the largest pipeline file accepted.
const MaxYAML = 1 << 20

// ParseYAML reads a pipeline file and returns its spec as JSON (what a
// pipeline job carries), checked as strictly as the service will check it.
func ParseYAML(data []byte) ([]byte, *Spec, error) {
	if len(data) > MaxYAML {
		return nil, nil, fmt.Errorf("%w: pipeline file of %d bytes exceeds %d", jobspec.ErrInvalid, len(data), MaxYAML)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("%w: pipeline YAML: %v", jobspec.ErrInvalid, err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, nil, fmt.Errorf("%w: pipeline YAML must be a mapping at the top level, got %T", jobspec.ErrInvalid, doc)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: pipeline YAML: %v", jobspec.ErrInvalid, err)
	}
	spec, err := ParseSpec(js)
	if err != nil {
		return nil, nil, err
	}
	return js, spec, nil
}
