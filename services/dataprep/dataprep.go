package dataprep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/internal/corpus"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

// BuiltinDemo names the built-in synthetic legal corpus.
const BuiltinDemo = "demo"

// Spec is the spec of a dataprep job.
type Spec struct {
	// Builtin generates a built-in corpus ("demo") instead of reading Input.
	Builtin string `json:"builtin,omitempty"`
	// Documents is the number of documents a builtin corpus generates.
	Documents int `json:"documents,omitempty"`
	// Seed makes a builtin corpus reproducible.
	Seed uint64 `json:"seed,omitempty"`
	// Input is the name of a registered dataset.
	Input string `json:"input,omitempty"`
	// Output is the name the clean dataset is registered under.
	Output string `json:"output"`
	// MinChars drops documents shorter than this after normalisation.
	MinChars int `json:"min_chars,omitempty"`
}

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
	if s.MinChars == 0 {
		s.MinChars = 20
	}
	return nil
}

// Result is what a dataprep job reports.
type Result struct {
	Dataset          string `json:"dataset"`
	Ref              string `json:"ref"`
	Bytes            int64  `json:"bytes"`
	InputDocuments   int    `json:"input_documents"`
	Documents        int    `json:"documents"`
	DroppedShort     int    `json:"dropped_short"`
	DroppedDuplicate int    `json:"dropped_duplicate"`
	Millis           int64  `json:"millis"`
}

// Config configures the service.
type Config struct {
	Bus    *bus.Bus
	Logger *slog.Logger
}

// Service consumes jobs.dataprep.
type Service struct {
	bus *bus.Bus
	log *slog.Logger
}

// New validates cfg and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Bus == nil {
		return nil, errors.New("dataprep: config needs a bus")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{bus: cfg.Bus, log: log.With("service", "dataprep")}, nil
}

// Run serves jobs until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	return s.bus.ServeJobs(ctx, "dataprep", s.handle, bus.WorkerOptions{})
}

func (s *Service) handle(ctx context.Context, job *bus.Job) ([]byte, error) {
	var spec Spec
	if err := jobspec.Decode("dataprep", job.Spec, &spec); err != nil {
		return nil, err
	}
	start := time.Now()
	docs, err := s.read(ctx, job, &spec)
	if err != nil {
		return nil, err
	}
	res := Result{Dataset: spec.Output, InputDocuments: len(docs)}
	job.Progress("normalize", 0, int64(len(docs)), "normalising and deduplicating")
	seen := make(map[[32]byte]bool, len(docs))
	clean := docs[:0]
	for i, d := range docs {
		d = Normalize(d)
		switch {
		case utf8.RuneCountInString(d) < spec.MinChars:
			res.DroppedShort++
		case seen[sha256.Sum256([]byte(d))]:
			res.DroppedDuplicate++
		default:
			seen[sha256.Sum256([]byte(d))] = true
			clean = append(clean, d)
		}
		if (i+1)%1000 == 0 {
			job.Progress("normalize", int64(i+1), int64(len(docs)), "")
		}
	}
	job.Progress("normalize", int64(len(docs)), int64(len(docs)), "")
	if len(clean) == 0 {
		return nil, fmt.Errorf("dataprep: no document of %d survived cleaning (min_chars %d)", len(docs), spec.MinChars)
	}
	var buf bytes.Buffer
	if err := corpus.WriteJSONL(&buf, clean); err != nil {
		return nil, err
	}
	info, err := s.bus.PutBytes(ctx, buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("dataprep: store dataset %q: %w", spec.Output, err)
	}
	rec := &busv1.DatasetRecord{
		Name: spec.Output, Ref: info.Ref, Size: info.Size, Format: corpus.FormatJSONL,
		Documents: int64(len(clean)), CreatedAt: timestamppb.Now(),
	}
	if err := s.bus.PutDataset(ctx, rec); err != nil {
		return nil, err
	}
	job.Artifact("dataset", spec.Output, info.Ref, info.Size)
	res.Ref, res.Bytes, res.Documents = info.Ref, info.Size, len(clean)
	res.Millis = time.Since(start).Milliseconds()
	job.Log(fmt.Sprintf("dataset %s: %d documents, %d bytes (%d short, %d duplicate dropped)",
		spec.Output, res.Documents, res.Bytes, res.DroppedShort, res.DroppedDuplicate))
	s.log.Info("prepared dataset", "name", spec.Output, "documents", res.Documents, "bytes", res.Bytes)
	return json.Marshal(res)
}

func (s *Service) read(ctx context.Context, job *bus.Job, spec *Spec) ([]string, error) {
	if spec.Builtin == BuiltinDemo {
		job.Progress("read", 0, int64(spec.Documents), "generating the built-in demo corpus")
		gen := democorpus.Generate(spec.Seed, spec.Documents)
		docs := make([]string, len(gen))
		for i, d := range gen {
			docs[i] = d.Text
		}
		return docs, nil
	}
	rec, err := s.bus.GetDataset(ctx, spec.Input)
	if err != nil {
		return nil, err
	}
	job.Progress("read", 0, rec.Size, "reading dataset "+spec.Input)
	data, err := s.bus.GetObject(ctx, rec.Ref)
	if err != nil {
		return nil, fmt.Errorf("dataprep: read dataset %q: %w", spec.Input, err)
	}
	return corpus.Read(data, rec.Format)
}

// Normalize puts a document in Unicode NFC, drops control characters other
// than newline and tab, turns other line breaks into newlines, trims trailing
// spaces from lines and collapses runs of blank lines. Chinese punctuation is
// kept as it is: width folding is for matching keys, not training text.
func Normalize(s string) string {
	s = norm.NFC.String(strings.ToValidUTF8(s, "\uFFFD"))
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\r':
			continue
		case r == '\u2028' || r == '\u2029' || r == '\u0085' || r == '\v' || r == '\f':
			b.WriteByte('\n')
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case unicode.IsControl(r) || r == '\uFEFF':
			continue
		default:
			b.WriteRune(r)
		}
	}
	lines := strings.Split(b.String(), "\n")
	out := lines[:0]
	blank := 0
	for _, l := range lines {
		l = strings.TrimRightFunc(l, unicode.IsSpace)
		if l == "" {
			blank++
			if blank > 1 {
				continue
			}
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}
