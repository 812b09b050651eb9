package tokenizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/tensor"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/bpe"
	"github.com/llmesh/llmesh/services/internal/corpus"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

// EndOfText separates documents in token shards.
const EndOfText = "<|endoftext|>"

// MaxShards bounds the training shards of one tokenize job.
const MaxShards = 1024

// Limits on online requests.
const (
	MaxRequestTexts = 1024
	MaxRequestBytes = 4 << 20
)

// Spec is the spec of a tokenize job.
type Spec struct {
	// Dataset is the registered dataset to train on and encode.
	Dataset string `json:"dataset"`
	// Tokenizer names the trained tokenizer; default: the dataset's name.
	Tokenizer string `json:"tokenizer,omitempty"`
	// Use encodes with this registered tokenizer instead of training one.
	Use string `json:"use,omitempty"`
	// VocabSize is the target vocabulary size, special tokens included.
	VocabSize int `json:"vocab_size,omitempty"`
	// MinFrequency is the least count a pair needs to be merged.
	MinFrequency int `json:"min_frequency,omitempty"`
	// ValFraction of the documents (chosen by content hash) go to validation.
	ValFraction float64 `json:"val_fraction,omitempty"`
	// Shards splits the training tokens into this many objects, at
	// document boundaries and of about equal size, one per trainer shard.
	Shards int `json:"shards,omitempty"`
}

// Validate checks the spec and fills in defaults.
func (s *Spec) Validate() error {
	if err := bus.ValidName(s.Dataset); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	if s.Tokenizer == "" {
		s.Tokenizer = s.Dataset
	}
	if err := bus.ValidName(s.Tokenizer); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	if s.Use != "" {
		if _, _, err := bus.ParseTokenizerRef(s.Use); err != nil {
			return fmt.Errorf("use: %w", err)
		}
	}
	if s.Shards == 0 {
		s.Shards = 1
	}
	if s.Shards < 1 || s.Shards > MaxShards {
		return fmt.Errorf("shards %d out of range [1, %d]", s.Shards, MaxShards)
	}
	if s.VocabSize == 0 {
		s.VocabSize = 1024
	}
	if s.VocabSize < 257 || s.VocabSize > 1<<20 {
		return fmt.Errorf("vocab_size %d out of range [257, 1048576]", s.VocabSize)
	}
	if s.MinFrequency == 0 {
		s.MinFrequency = 2
	}
	if s.MinFrequency < 1 {
		return fmt.Errorf("min_frequency %d must be at least 1", s.MinFrequency)
	}
	if s.ValFraction == 0 {
		s.ValFraction = 0.05
	}
	if s.ValFraction < 0 || s.ValFraction >= 0.5 {
		return fmt.Errorf("val_fraction %g out of range (0, 0.5)", s.ValFraction)
	}
	return nil
}

// Result is what a tokenize job reports.
type Result struct {
	Tokenizer        string `json:"tokenizer"`
	TokenizerVersion int32  `json:"tokenizer_version"`
	TokenizerRef     string `json:"tokenizer_ref"`
	VocabSize        int    `json:"vocab_size"`
	Documents        int    `json:"documents"`
	Bytes            int64  `json:"bytes"`
	// TrainRef is the training shard when there is one; TrainRefs lists
	// every training shard, in order.
	TrainRef     string   `json:"train_ref,omitempty"`
	TrainRefs    []string `json:"train_refs"`
	ValRef       string   `json:"val_ref"`
	TrainTokens  int      `json:"train_tokens"`
	ValTokens    int      `json:"val_tokens"`
	TrainSeconds float64  `json:"train_seconds"`
	EncodeMBps   float64  `json:"encode_mb_per_s"`
}

// Config configures the service.
type Config struct {
	Bus    *bus.Bus
	Logger *slog.Logger
}

// Service trains and runs tokenizers.
type Service struct {
	bus *bus.Bus
	log *slog.Logger

	mu    sync.Mutex
	cache map[string]*bpe.Tokenizer // by object ref
}

// New validates cfg and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Bus == nil {
		return nil, errors.New("tokenizer: config needs a bus")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{bus: cfg.Bus, log: log.With("service", "tokenizer"), cache: map[string]*bpe.Tokenizer{}}, nil
}

// Run serves tokenize jobs and online encode/decode requests until ctx is
// done.
func (s *Service) Run(ctx context.Context) error {
	nc := s.bus.Conn()
	enc, err := nc.QueueSubscribe(bus.TokenizerEncodeSubject, "tokenizer", s.onEncode)
	if err != nil {
		return fmt.Errorf("tokenizer: subscribe %s: %w", bus.TokenizerEncodeSubject, err)
	}
	defer enc.Unsubscribe()
	dec, err := nc.QueueSubscribe(bus.TokenizerDecodeSubject, "tokenizer", s.onDecode)
	if err != nil {
		return fmt.Errorf("tokenizer: subscribe %s: %w", bus.TokenizerDecodeSubject, err)
	}
	defer dec.Unsubscribe()
	return s.bus.ServeJobs(ctx, "tokenize", s.handle, bus.WorkerOptions{})
}

func (s *Service) handle(ctx context.Context, job *bus.Job) ([]byte, error) {
	var spec Spec
	if err := jobspec.Decode("tokenize", job.Spec, &spec); err != nil {
		return nil, err
	}
	rec, err := s.bus.GetDataset(ctx, spec.Dataset)
	if err != nil {
		return nil, err
	}
	data, err := s.bus.GetObject(ctx, rec.Ref)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: read dataset %q: %w", spec.Dataset, err)
	}
	docs, err := corpus.Read(data, rec.Format)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: dataset %q: %w", spec.Dataset, err)
	}
	if len(docs) < 2 {
		return nil, fmt.Errorf("tokenizer: dataset %q has %d documents; need at least 2 for a train/validation split", spec.Dataset, len(docs))
	}
	res := Result{Documents: len(docs), Bytes: rec.Size}

	var tok *bpe.Tokenizer
	start := time.Now()
	if spec.Use != "" {
		rec, err := s.bus.GetTokenizer(ctx, spec.Use)
		if err != nil {
			return nil, err
		}
		if tok, err = s.load(ctx, rec.Ref); err != nil {
			return nil, err
		}
		res.Tokenizer, res.TokenizerVersion, res.TokenizerRef = rec.Name, rec.Version, rec.Ref
	} else {
		job.Progress("train-tokenizer", 0, int64(spec.VocabSize), fmt.Sprintf("training a %d-token BPE vocabulary", spec.VocabSize))
		last := time.Now()
		tok, err = bpe.Train(ctx, docs, bpe.TrainOptions{
			VocabSize:     spec.VocabSize,
			MinFrequency:  spec.MinFrequency,
			SpecialTokens: []string{EndOfText},
			Progress: func(done, total int) {
				if time.Since(last) > 250*time.Millisecond {
					last = time.Now()
					job.Progress("train-tokenizer", int64(done), int64(total), "")
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("tokenizer: train: %w", err)
		}
		res.TrainSeconds = time.Since(start).Seconds()
		job.Progress("train-tokenizer", int64(tok.VocabSize()), int64(tok.VocabSize()), "")
		js, err := tok.MarshalJSON()
		if err != nil {
			return nil, err
		}
		info, err := s.bus.PutBytes(ctx, js)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: store tokenizer %q: %w", spec.Tokenizer, err)
		}
		rec := &busv1.TokenizerRecord{Name: spec.Tokenizer, Ref: info.Ref, VocabSize: int32(tok.VocabSize()), Dataset: spec.Dataset}
		if err := s.bus.PutTokenizer(ctx, rec); err != nil {
			return nil, err
		}
		res.TokenizerVersion = rec.Version
		job.Artifact("tokenizer", spec.Tokenizer, info.Ref, info.Size)
		res.Tokenizer, res.TokenizerRef = spec.Tokenizer, info.Ref
	}
	res.VocabSize = tok.VocabSize()
	eot, ok := tok.TokenID(EndOfText)
	if !ok {
		return nil, fmt.Errorf("tokenizer: %q has no %s token", res.Tokenizer, EndOfText)
	}

	// Split by content hash so the split does not depend on document order.
	var train, val []string
	cut := uint64(spec.ValFraction * 10000)
	for _, d := range docs {
		h := fnv.New64a()
		h.Write([]byte(d))
		if h.Sum64()%10000 < cut {
			val = append(val, d)
		} else {
			train = append(train, d)
		}
	}
	if len(val) == 0 {
		val, train = train[len(train)-1:], train[:len(train)-1]
	}
	if len(train) == 0 {
		train, val = val[1:], val[:1]
	}

	encStart := time.Now()
	job.Progress("encode", 0, int64(len(docs)), "encoding the dataset")
	trainDocs := tok.EncodeBatch(train)
	job.Progress("encode", int64(len(train)), int64(len(docs)), "")
	valIDs := concat(tok.EncodeBatch(val), eot)
	job.Progress("encode", int64(len(docs)), int64(len(docs)), "")
	res.EncodeMBps = float64(rec.Size) / 1e6 / time.Since(encStart).Seconds()

	store := func(split string, shard int, ids []uint32) (string, error) {
		meta := map[string]string{"split": split, "tokenizer": res.Tokenizer, "tokenizer_ref": res.TokenizerRef, "dataset": spec.Dataset}
		name := spec.Dataset + "/" + split
		if split == "train" {
			meta["shard"], meta["shards"] = fmt.Sprint(shard), fmt.Sprint(spec.Shards)
			name = fmt.Sprintf("%s/train-%04d-of-%04d", spec.Dataset, shard, spec.Shards)
		}
		payload, err := EncodeShard(ids, tok.VocabSize(), meta)
		if err != nil {
			return "", err
		}
		info, err := s.bus.PutBytes(ctx, payload)
		if err != nil {
			return "", fmt.Errorf("tokenizer: store %s: %w", name, err)
		}
		job.Artifact("tokens", name, info.Ref, info.Size)
		return info.Ref, nil
	}
	for i, part := range splitShards(trainDocs, spec.Shards) {
		ids := concat(part, eot)
		ref, err := store("train", i, ids)
		if err != nil {
			return nil, err
		}
		res.TrainRefs = append(res.TrainRefs, ref)
		res.TrainTokens += len(ids)
	}
	if len(res.TrainRefs) == 1 {
		res.TrainRef = res.TrainRefs[0]
	}
	if res.ValRef, err = store("val", 0, valIDs); err != nil {
		return nil, err
	}
	res.ValTokens = len(valIDs)
	job.Log(fmt.Sprintf("tokenized %d documents: vocab %d, %d train and %d validation tokens (%.2f bytes/token)",
		len(docs), res.VocabSize, res.TrainTokens, res.ValTokens, float64(rec.Size)/float64(res.TrainTokens+res.ValTokens)))
	return json.Marshal(res)
}

// concat joins encoded documents, each followed by the end-of-text token.
func concat(docs [][]uint32, eot uint32) []uint32 {
	n := 0
	for _, d := range docs {
		n += len(d) + 1
	}
	ids := make([]uint32, 0, n)
	for _, d := range docs {
		ids = append(ids, d...)
		ids = append(ids, eot)
	}
	return ids
}

// splitShards cuts encoded documents into n contiguous groups of about
// equal token counts, each holding at least one document when there are
// enough.
func splitShards(docs [][]uint32, n int) [][][]uint32 {
	n = max(min(n, len(docs)), 1)
	total := 0
	for _, d := range docs {
		total += len(d) + 1
	}
	out := make([][][]uint32, 0, n)
	start, acc := 0, 0
	for i, d := range docs {
		acc += len(d) + 1
		left := n - len(out) - 1 // groups still to fill after this one
		if left > 0 && (acc*n >= total*(len(out)+1) || len(docs)-i-1 == left) {
			out = append(out, docs[start:i+1])
			start = i + 1
		}
	}
	return append(out, docs[start:])
}

// EncodeShard packs token ids as an Arrow tensor named "tokens": uint16 when
// the vocabulary fits, uint32 otherwise.
func EncodeShard(ids []uint32, vocab int, meta map[string]string) ([]byte, error) {
	shape := []int{len(ids)}
	if vocab <= 1<<16 {
		u := make([]uint16, len(ids))
		for i, id := range ids {
			u[i] = uint16(id)
		}
		return tensor.Encode([]tensor.Tensor{tensor.FromUint16("tokens", shape, u)}, meta)
	}
	return tensor.Encode([]tensor.Tensor{tensor.FromUint32("tokens", shape, ids)}, meta)
}

func (s *Service) load(ctx context.Context, ref string) (*bpe.Tokenizer, error) {
	s.mu.Lock()
	tok := s.cache[ref]
	s.mu.Unlock()
	if tok != nil {
		return tok, nil
	}
	data, err := s.bus.GetObject(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: read %s: %w", ref, err)
	}
	tok, err = bpe.Load(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: load %s: %w", ref, err)
	}
	s.mu.Lock()
	s.cache[ref] = tok
	s.mu.Unlock()
	return tok, nil
}

func (s *Service) byName(name string) (*bpe.Tokenizer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := s.bus.GetTokenizer(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.load(ctx, rec.Ref)
}

func (s *Service) onEncode(m *nats.Msg) {
	var req busv1.EncodeRequest
	reply := &busv1.EncodeReply{}
	switch {
	case len(m.Data) > MaxRequestBytes:
		reply.Error = fmt.Sprintf("encode request of %d bytes exceeds %d", len(m.Data), MaxRequestBytes)
	case proto.Unmarshal(m.Data, &req) != nil:
		reply.Error = "malformed encode request"
	case len(req.Texts) > MaxRequestTexts:
		reply.Error = fmt.Sprintf("encode request has %d texts; the limit is %d", len(req.Texts), MaxRequestTexts)
	default:
		tok, err := s.byName(req.Tokenizer)
		if err != nil {
			reply.Error = err.Error()
			break
		}
		for _, ids := range tok.EncodeBatch(req.Texts) {
			reply.Tokens = append(reply.Tokens, &busv1.TokenIDs{Ids: ids})
		}
	}
	s.respond(m, reply)
}

func (s *Service) onDecode(m *nats.Msg) {
	var req busv1.DecodeRequest
	reply := &busv1.DecodeReply{}
	switch {
	case len(m.Data) > MaxRequestBytes:
		reply.Error = fmt.Sprintf("decode request of %d bytes exceeds %d", len(m.Data), MaxRequestBytes)
	case proto.Unmarshal(m.Data, &req) != nil:
		reply.Error = "malformed decode request"
	case len(req.Tokens) > MaxRequestTexts:
		reply.Error = fmt.Sprintf("decode request has %d sequences; the limit is %d", len(req.Tokens), MaxRequestTexts)
	default:
		tok, err := s.byName(req.Tokenizer)
		if err != nil {
			reply.Error = err.Error()
			break
		}
		for _, t := range req.Tokens {
			text, err := tok.Decode(t.Ids)
			if err != nil {
				reply.Error, reply.Texts = err.Error(), nil
				break
			}
			reply.Texts = append(reply.Texts, text)
		}
	}
	s.respond(m, reply)
}

func (s *Service) respond(m *nats.Msg, reply proto.Message) {
	if err := bus.Respond(m, reply); err != nil {
		s.log.Warn("respond", "subject", m.Subject, "err", err)
	}
}
