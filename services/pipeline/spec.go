package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

// Spec is a pipeline: dataset → tokenizer → train → [quantize] →
// [distill] → [prune] → generate. Each optional compression stage starts
// from the model of the stage before it (or of the stage its From names),
// and generate samples from the last model.
type Spec struct {
	Name      string         `json:"name"`
	Dataset   DatasetStage   `json:"dataset"`
	Tokenizer TokenizerStage `json:"tokenizer"`
	Train     TrainStage     `json:"train"`
	Quantize  *CompressStage `json:"quantize,omitempty"`
	Distill   *CompressStage `json:"distill,omitempty"`
	Prune     *CompressStage `json:"prune,omitempty"`
	Generate  GenerateStage  `json:"generate"`
}

// CompressStage is a quantize, distill or prune stage: the fields of its
// job's spec (services/quantizer and services/distiller) other than the
// source model and the token shards, which the pipeline fills in. From
// names the stage whose model it starts from ("train", "quantize",
// "distill"; default: the stage before it).
type CompressStage struct {
	From   string         `json:"from,omitempty"`
	Output string         `json:"output,omitempty"`
	Job    map[string]any `json:"-"`
}

// compressStages are the optional stages in pipeline order.
var compressStages = []string{"quantize", "distill", "prune"}

// UnmarshalJSON keeps every field but from and output for the job.
func (c *CompressStage) UnmarshalJSON(data []byte) error {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	if m == nil {
		return errors.New("a stage must be a mapping")
	}
	for _, k := range []string{"from", "output"} {
		if v, ok := m[k]; ok {
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("%s must be a string", k)
			}
			if k == "from" {
				c.From = s
			} else {
				c.Output = s
			}
			delete(m, k)
		}
	}
	for _, k := range []string{"model", "teacher", "teacher_checkpoint", "checkpoint", "train_refs", "val_ref", "train_ref"} {
		if _, ok := m[k]; ok {
			return fmt.Errorf("%s is set by the pipeline (use from to pick the stage whose model it starts from)", k)
		}
	}
	c.Job = m
	return nil
}

// MarshalJSON writes the stage back as one mapping.
func (c CompressStage) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for k, v := range c.Job {
		m[k] = v
	}
	if c.From != "" {
		m["from"] = c.From
	}
	if c.Output != "" {
		m["output"] = c.Output
	}
	return json.Marshal(m)
}

// stage returns the optional stage called name.
func (s *Spec) stage(name string) *CompressStage {
	switch name {
	case "quantize":
		return s.Quantize
	case "distill":
		return s.Distill
	case "prune":
		return s.Prune
	}
	return nil
}

// validateCompress fills each optional stage's From and Output and checks
// the chain: a stage starts from train or an earlier stage that runs, and
// distill and prune need an FP32 model where they train it.
func (s *Spec) validateCompress() error {
	prev := "train"
	models := map[string]string{"train": s.Train.Model}
	for _, name := range compressStages {
		c := s.stage(name)
		if c == nil {
			continue
		}
		if c.From == "" {
			c.From = prev
		}
		from, ok := models[c.From]
		if !ok {
			return fmt.Errorf("%s.from %q: want train or an earlier stage that runs (%v)", name, c.From, slices.Sorted(maps.Keys(models)))
		}
		if name == "prune" && c.From == "quantize" {
			return errors.New("prune.from quantize: pruning fine-tunes an FP32 model; start it from train or distill (and quantize last)")
		}
		if c.Output == "" {
			suffix := map[string]string{"quantize": "-int8", "distill": "-student", "prune": "-pruned"}[name]
			c.Output = from + suffix
		}
		if err := bus.ValidName(c.Output); err != nil {
			return fmt.Errorf("%s.output: %w", name, err)
		}
		for other, m := range models {
			if m == c.Output {
				return fmt.Errorf("%s.output %q is the model of stage %s", name, c.Output, other)
			}
		}
		if name == "distill" {
			if _, ok := c.Job["student"]; !ok {
				return errors.New("distill.student (the student's transformer config) is required")
			}
		}
		models[name] = c.Output
		prev = name
	}
	if g := s.Generate.Model; g != "" {
		if _, ok := models[g]; !ok {
			return fmt.Errorf("generate.model %q: want train or a stage that runs (%v)", g, slices.Sorted(maps.Keys(models)))
		}
	} else {
		s.Generate.Model = prev
	}
	return nil
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

// GenerateStage samples text from the last model (or the model of the
// stage Model names: train, quantize, distill or prune).
type GenerateStage struct {
	Model       string   `json:"model,omitempty"`
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
	return s.validateCompress()
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
