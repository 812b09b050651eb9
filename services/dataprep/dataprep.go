package dataprep

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/tensor"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/internal/corpus"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

// Result is what a dataprep job reports.
type Result struct {
	Dataset          string                 `json:"dataset"`
	Ref              string                 `json:"ref"`
	Format           string                 `json:"format"`
	Bytes            int64                  `json:"bytes"`
	InputDocuments   int                    `json:"input_documents"`
	Documents        int                    `json:"documents"`
	Augmented        int                    `json:"augmented,omitempty"`
	DroppedShort     int                    `json:"dropped_short"`
	DroppedDuplicate int                    `json:"dropped_duplicate"`
	BadRecords       int                    `json:"bad_records"`
	BadSamples       []corpus.LineError     `json:"bad_samples,omitempty"`
	InvalidUTF8      int                    `json:"invalid_utf8_replaced"`
	Shards           int                    `json:"shards"`
	Stages           map[string]*StageStats `json:"stages"`
	Labels           *LabelReport           `json:"labels,omitempty"`
	ReportRef        string                 `json:"report_ref"`
	Millis           int64                  `json:"millis"`
}

// Config configures the service.
type Config struct {
	Bus    *bus.Bus
	Logger *slog.Logger
	// Concurrency is how many shard jobs this instance runs at once.
	Concurrency int
}

// Service consumes jobs.dataprep (coordinating) and jobs.dataprep-shard.
type Service struct {
	bus         *bus.Bus
	log         *slog.Logger
	concurrency int
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
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	return &Service{bus: cfg.Bus, log: log.With("service", "dataprep"), concurrency: cfg.Concurrency}, nil
}

// Run serves dataprep jobs and their shards until ctx is done. The two
// kinds have separate consumers, so a coordinating job waiting for its
// shards never holds the slot a shard needs.
func (s *Service) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() {
		errc <- s.bus.ServeJobs(ctx, bus.KindDataprep, s.coordinate, bus.WorkerOptions{AckWait: time.Minute, Concurrency: 4})
	}()
	go func() {
		// A short AckWait bounds how long a shard handed to an instance
		// that just stopped waits before another instance redoes it.
		errc <- s.bus.ServeJobs(ctx, bus.KindDataprepShard, s.shard, bus.WorkerOptions{AckWait: 15 * time.Second, Concurrency: s.concurrency})
	}()
	err := <-errc
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}

// shardSpec is the spec of one shard job: the parent's spec, the pinned
// input and the record range [Start, End) of the input it owns.
type shardSpec struct {
	Spec   Spec   `json:"spec"`
	Ref    string `json:"ref,omitempty"`
	Format string `json:"format,omitempty"`
	Start  int    `json:"start"`
	End    int    `json:"end"`
	Index  int    `json:"index"`
	Count  int    `json:"count"`
}

func (s *shardSpec) Validate() error {
	if err := s.Spec.Validate(); err != nil {
		return err
	}
	if s.Start < 0 || s.End < s.Start || s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("shard %d of %d with records [%d, %d) is not a valid range", s.Index, s.Count, s.Start, s.End)
	}
	if s.Spec.Input != "" {
		if err := bus.ValidRef(s.Ref); err != nil {
			return err
		}
	}
	return nil
}

// shardResult is what a shard job reports.
type shardResult struct {
	DocsRef     string                 `json:"docs_ref,omitempty"`
	FeaturesRef string                 `json:"features_ref,omitempty"`
	Input       int                    `json:"input"`
	Kept        int                    `json:"kept"`
	BadCount    int                    `json:"bad_count"`
	Bad         []corpus.LineError     `json:"bad,omitempty"`
	Invalid     int                    `json:"invalid_utf8"`
	Stages      map[string]*StageStats `json:"stages"`
}

// coordinate runs a dataprep job: it splits the input into shard jobs,
// waits for them, then runs the global stages and writes the dataset.
func (s *Service) coordinate(ctx context.Context, job *bus.Job) ([]byte, error) {
	var spec Spec
	if err := jobspec.Decode("dataprep", job.Spec, &spec); err != nil {
		return nil, err
	}
	p, err := buildPipeline(&spec)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	sh := shardSpec{Spec: spec}
	records, size := spec.Documents, int64(0)
	if spec.Input != "" {
		rec, err := s.bus.GetDataset(ctx, spec.Input)
		if err != nil {
			return nil, err
		}
		sh.Ref, sh.Format, size = rec.Ref, rec.Format, rec.Size
		if records, err = s.countRecords(ctx, rec); err != nil {
			return nil, err
		}
	}
	n := spec.Shards
	if n == 0 {
		n = int(min(max(size/(8<<20)+1, 1), 64))
	}
	n = max(min(n, records), 1)
	job.Progress("shards", 0, int64(n), fmt.Sprintf("%d records in %d shards", records, n))

	ids := make([]string, n)
	for i := range n {
		sh.Index, sh.Count = i, n
		sh.Start, sh.End = records*i/n, records*(i+1)/n
		b, err := json.Marshal(sh)
		if err != nil {
			return nil, err
		}
		ids[i] = fmt.Sprintf("%s-shard-%03d", job.ID, i)
		if _, err := s.bus.SubmitJob(ctx, bus.KindDataprepShard, b, bus.SubmitOptions{ID: ids[i], Parent: job.ID}); err != nil {
			return nil, fmt.Errorf("dataprep: submit shard %d: %w", i, err)
		}
	}
	results := make([]shardResult, n)
	for i, id := range ids {
		if err := s.await(ctx, job, id, &results[i]); err != nil {
			s.cancelShards(ctx, ids)
			return nil, err
		}
		job.Progress("shards", int64(i+1), int64(n), "")
	}

	// The global phase: features of every kept document, in input order.
	res := Result{Dataset: spec.Output, Format: spec.Format, Shards: n}
	st := stats{}
	var feats []feature
	orders := make([][]int, n) // per shard, the input order of each kept document
	for i, r := range results {
		st.merge(r.Stages)
		res.InputDocuments += r.Input
		res.BadRecords += r.BadCount
		res.InvalidUTF8 += r.Invalid
		if len(res.BadSamples) < corpus.MaxBadLines {
			res.BadSamples = append(res.BadSamples, r.Bad...)
		}
		if r.FeaturesRef == "" {
			continue
		}
		f, err := s.features(ctx, r.FeaturesRef)
		if err != nil {
			return nil, fmt.Errorf("dataprep: shard %d features: %w", i, err)
		}
		for _, x := range f {
			orders[i] = append(orders[i], x.order)
		}
		feats = append(feats, f...)
	}
	job.Progress("global", 0, int64(len(feats)), "deduplicating and labelling across shards")
	var claim claimFunc
	if raw, ok := spec.stage(StageExactDedup); ok {
		var c struct {
			Set string `json:"set"`
		}
		_ = decodeConfig(StageExactDedup, raw, &c)
		if c.Set != "" {
			claim = func(ctx context.Context, h [][32]byte) ([]bool, error) {
				return s.bus.ClaimHashes(ctx, c.Set, job.ID, h)
			}
		}
	}
	decisions, labels, err := p.global(ctx, feats, claim, st)
	if err != nil {
		return nil, err
	}
	res.Labels = labels
	job.Progress("global", int64(len(feats)), int64(len(feats)), "")

	// Write the dataset, streaming: one shard's documents at a time, with
	// the global verdicts, into the object store.
	info, kept, augmented, err := s.writeOutput(ctx, p, &spec, results, orders, decisions)
	if err != nil {
		return nil, err
	}
	res.Augmented = augmented
	if err := s.bus.PutDataset(ctx, &busv1.DatasetRecord{
		Name: spec.Output, Ref: info.Ref, Size: info.Size, Format: spec.Format,
		Documents: int64(kept), CreatedAt: timestamppb.Now(),
	}); err != nil {
		return nil, err
	}
	job.Artifact("dataset", spec.Output, info.Ref, info.Size)
	res.Ref, res.Bytes, res.Documents = info.Ref, info.Size, kept
	res.Stages = st
	if q := st[StageQuality]; q != nil {
		res.DroppedShort = q.Dropped["min_chars"]
	}
	if e := st[StageExactDedup]; e != nil {
		res.DroppedDuplicate = e.Dropped["duplicate"] + e.Dropped["seen_in_earlier_run"]
	}
	res.Millis = time.Since(start).Milliseconds()
	report, _ := json.MarshalIndent(res, "", "  ")
	if rinfo, err := s.bus.PutBytes(ctx, report); err == nil {
		res.ReportRef = rinfo.Ref
		job.Artifact("report", spec.Output+"/report.json", rinfo.Ref, rinfo.Size)
	}
	job.Log(fmt.Sprintf("dataset %s: %d of %d documents kept (%d bad records) in %d shards",
		spec.Output, res.Documents, res.InputDocuments, res.BadRecords, n))
	s.log.Info("prepared dataset", "name", spec.Output, "documents", res.Documents, "bytes", res.Bytes, "shards", n)
	return json.Marshal(res)
}

// writeOutput streams the shards' documents, filtered and labelled by the
// global phase and followed by their augmented copies, into one object.
func (s *Service) writeOutput(ctx context.Context, p *pipeline, spec *Spec, results []shardResult, orders [][]int, decisions map[int]decision) (bus.ObjectInfo, int, int, error) {
	pr, pw := io.Pipe()
	type counts struct{ kept, augmented int }
	done := make(chan counts, 1)
	go func() {
		var c counts
		err := func() error {
			var pq *corpus.ParquetWriter
			if spec.Format == corpus.FormatParquet {
				var err error
				if pq, err = corpus.NewParquetWriter(pw); err != nil {
					return err
				}
			}
			for i, r := range results {
				if r.DocsRef == "" {
					continue
				}
				data, err := s.bus.GetObject(ctx, r.DocsRef)
				if err != nil {
					return fmt.Errorf("dataprep: shard %d output: %w", i, err)
				}
				docs, _, _, err := corpus.ReadDocs(data, corpus.FormatParquet)
				if err != nil {
					return fmt.Errorf("dataprep: shard %d output: %w", i, err)
				}
				if len(docs) != len(orders[i]) {
					return fmt.Errorf("dataprep: shard %d wrote %d documents and %d feature rows", i, len(docs), len(orders[i]))
				}
				docs = p.apply(docs, orders[i], decisions)
				c.kept += len(docs)
				c.augmented += p.augmentAll(&docs)
				if pq != nil {
					err = pq.Write(docs)
				} else {
					err = corpus.WriteDocsJSONL(pw, docs)
				}
				if err != nil {
					return err
				}
			}
			if c.kept == 0 {
				return errNothingKept
			}
			if pq != nil {
				return pq.Close()
			}
			return nil
		}()
		done <- c
		pw.CloseWithError(err)
	}()
	info, err := s.bus.PutObject(ctx, pr)
	pr.CloseWithError(err)
	c := <-done
	if errors.Is(err, errNothingKept) {
		return bus.ObjectInfo{}, 0, 0, fmt.Errorf("dataprep: no document survived the stages")
	}
	if err != nil {
		return bus.ObjectInfo{}, 0, 0, fmt.Errorf("dataprep: store dataset %q: %w", spec.Output, err)
	}
	return info, c.kept + c.augmented, c.augmented, nil
}

var errNothingKept = errors.New("no document kept")

// apply keeps the documents the global phase did not drop and sets their
// labels; orders[i] is docs[i]'s position in the input.
func (p *pipeline) apply(docs []corpus.Doc, orders []int, decisions map[int]decision) []corpus.Doc {
	out := docs[:0]
	for i, d := range docs {
		dec := decisions[orders[i]]
		if dec.drop != "" {
			continue
		}
		d.Label = dec.label
		out = append(out, d)
	}
	return out
}

// augmentAll appends augmented copies of every document.
func (p *pipeline) augmentAll(docs *[]corpus.Doc) int {
	if p.augment == nil {
		return 0
	}
	n := len(*docs)
	for i := range n {
		d := (*docs)[i]
		for c := range p.copies {
			id := fmt.Sprintf("%s#aug%d", d.ID, c+1)
			text := p.augment.Apply(id, d.Text)
			if text == d.Text {
				continue
			}
			*docs = append(*docs, corpus.Doc{ID: id, Title: d.Title, Text: text, Label: d.Label, Date: d.Date})
		}
	}
	return len(*docs) - n
}

// await follows a shard job to its end, relaying its progress.
func (s *Service) await(ctx context.Context, job *bus.Job, id string, out *shardResult) error {
	events, err := s.bus.WatchEvents(ctx, id)
	if err != nil {
		return err
	}
	for ev := range events {
		if l, ok := ev.Body.(*busv1.Event_Log); ok {
			job.Log(l.Log)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	rec, err := s.bus.GetJob(ctx, id)
	if err != nil {
		return err
	}
	if rec.State != busv1.JobState_JOB_STATE_SUCCEEDED {
		return fmt.Errorf("dataprep: shard job %s %s: %s", id, rec.State, rec.Error)
	}
	return json.Unmarshal(rec.ResultJson, out)
}

func (s *Service) cancelShards(ctx context.Context, ids []string) {
	for _, id := range ids {
		_, _ = s.bus.CancelJob(context.WithoutCancel(ctx), id)
	}
}

// countRecords counts a dataset's records the way shards address them.
func (s *Service) countRecords(ctx context.Context, rec *busv1.DatasetRecord) (int, error) {
	if rec.Format == "" || rec.Format == corpus.FormatJSONL {
		rc, err := s.bus.OpenObject(ctx, rec.Ref)
		if err != nil {
			return 0, err
		}
		defer rc.Close()
		n := 0
		err = eachLine(rc, func([]byte) bool { n++; return true })
		return n, err
	}
	data, err := s.bus.GetObject(ctx, rec.Ref)
	if err != nil {
		return 0, err
	}
	docs, _, bad, err := corpus.ReadDocs(data, rec.Format)
	return len(docs) + bad, err
}

// eachLine calls fn for every non-blank line of a JSONL stream, gzip or
// not, until fn returns false.
func eachLine(r io.Reader, fn func([]byte) bool) error {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%w: gzip: %v", corpus.ErrMalformed, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 64<<10), corpus.MaxLine)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if !fn(sc.Bytes()) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %v", corpus.ErrMalformed, err)
	}
	return nil
}

// readRange reads records [start, end) of the shard's input.
func (s *Service) readRange(ctx context.Context, sh *shardSpec) ([]corpus.Doc, []corpus.LineError, int, error) {
	if sh.Spec.Builtin == BuiltinDemo {
		gen := democorpus.Generate(sh.Spec.Seed, sh.Spec.Documents)[sh.Start:sh.End]
		docs := make([]corpus.Doc, len(gen))
		for i, d := range gen {
			docs[i] = corpus.Doc{ID: d.ID, Title: d.Title, Text: d.Text}
		}
		return docs, nil, 0, nil
	}
	if sh.Format == "" || sh.Format == corpus.FormatJSONL {
		rc, err := s.bus.OpenObject(ctx, sh.Ref)
		if err != nil {
			return nil, nil, 0, err
		}
		defer rc.Close()
		var buf bytes.Buffer
		i := 0
		err = eachLine(rc, func(line []byte) bool {
			if i >= sh.Start {
				buf.Write(line)
				buf.WriteByte('\n')
			}
			i++
			return i < sh.End
		})
		if err != nil {
			return nil, nil, 0, err
		}
		docs, bad, n, err := corpus.ReadDocs(buf.Bytes(), corpus.FormatJSONL)
		for j := range bad {
			bad[j].Line += sh.Start // lines are counted among non-blank records
		}
		return docs, bad, n, err
	}
	data, err := s.bus.GetObject(ctx, sh.Ref)
	if err != nil {
		return nil, nil, 0, err
	}
	docs, bad, n, err := corpus.ReadDocs(data, sh.Format)
	if err != nil {
		return nil, nil, 0, err
	}
	return docs[min(sh.Start, len(docs)):min(sh.End, len(docs))], bad, n, nil
}

// shard runs one shard job: the per-document stages over its records.
func (s *Service) shard(ctx context.Context, job *bus.Job) ([]byte, error) {
	var sh shardSpec
	if err := jobspec.Decode("dataprep shard", job.Spec, &sh); err != nil {
		return nil, err
	}
	p, err := buildPipeline(&sh.Spec)
	if err != nil {
		return nil, err
	}
	docs, bad, badCount, err := s.readRange(ctx, &sh)
	if err != nil {
		return nil, fmt.Errorf("dataprep: shard %d: %w", sh.Index, err)
	}
	items, st := p.process(docs)
	res := shardResult{Input: len(docs), BadCount: badCount, Bad: bad, Stages: st}
	var kept []corpus.Doc
	var feats []feature
	for i, it := range items {
		res.Invalid += it.invalid
		if it.drop != "" {
			continue
		}
		kept = append(kept, it.doc)
		feats = append(feats, feature{order: sh.Start + i, hash: it.hash, sig: it.sig, votes: it.votes, date: it.doc.Date})
	}
	res.Kept = len(kept)
	if len(kept) > 0 {
		var buf bytes.Buffer
		if err := corpus.WriteParquet(&buf, kept); err != nil {
			return nil, err
		}
		info, err := s.bus.PutBytes(ctx, buf.Bytes())
		if err != nil {
			return nil, err
		}
		res.DocsRef = info.Ref
		fb, err := encodeFeatures(feats)
		if err != nil {
			return nil, err
		}
		if info, err = s.bus.PutBytes(ctx, fb); err != nil {
			return nil, err
		}
		res.FeaturesRef = info.Ref
	}
	job.Log(fmt.Sprintf("shard %d of %d: %d of %d records kept, %d bad", sh.Index+1, sh.Count, res.Kept, res.Input+badCount, badCount))
	return json.Marshal(res)
}

// encodeFeatures packs features as Arrow tensors: order [n] int64, hash
// [n 32] uint8, sig [n perms] uint32, votes [n functions] int8.
func encodeFeatures(feats []feature) ([]byte, error) {
	n := len(feats)
	order := make([]int64, n)
	hash := make([]uint8, 0, n*32)
	var sig []uint32
	var votes []int8
	dates := make([]string, n)
	for i, f := range feats {
		order[i] = int64(f.order)
		hash = append(hash, f.hash[:]...)
		sig = append(sig, f.sig...)
		votes = append(votes, f.votes...)
		dates[i] = f.date
	}
	ts := []tensor.Tensor{tensor.FromInt64("order", []int{n}, order), tensor.FromUint8("hash", []int{n, 32}, hash)}
	if len(sig) > 0 {
		ts = append(ts, tensor.FromUint32("sig", []int{n, len(sig) / n}, sig))
	}
	if len(votes) > 0 {
		ts = append(ts, tensor.FromInt8("votes", []int{n, len(votes) / n}, votes))
	}
	dj, err := json.Marshal(dates)
	if err != nil {
		return nil, err
	}
	return tensor.Encode(ts, map[string]string{"dates": string(dj)})
}

func (s *Service) features(ctx context.Context, ref string) ([]feature, error) {
	set, err := s.bus.GetTensors(ctx, ref)
	if err != nil {
		return nil, err
	}
	ot, ok := set.Get("order")
	if !ok {
		return nil, errors.New("no order tensor")
	}
	order, err := tensor.Int64s(ot)
	if err != nil {
		return nil, err
	}
	n := len(order)
	var dates []string
	if err := json.Unmarshal([]byte(set.Meta["dates"]), &dates); err != nil || len(dates) != n {
		return nil, fmt.Errorf("features: %d dates for %d documents", len(dates), n)
	}
	feats := make([]feature, n)
	for i := range feats {
		feats[i].order, feats[i].date = int(order[i]), dates[i]
	}
	if ht, ok := set.Get("hash"); ok {
		h, err := tensor.Uint8s(ht)
		if err != nil || len(h) != 32*n {
			return nil, fmt.Errorf("features: hash tensor of %d bytes for %d documents", len(h), n)
		}
		for i := range feats {
			copy(feats[i].hash[:], h[32*i:])
		}
	}
	if st, ok := set.Get("sig"); ok {
		sg, err := tensor.Uint32s(st)
		if err != nil || len(st.Shape) != 2 || st.Shape[0] != n {
			return nil, fmt.Errorf("features: sig tensor of shape %v for %d documents", st.Shape, n)
		}
		w := st.Shape[1]
		for i := range feats {
			feats[i].sig = append([]uint32(nil), sg[w*i:w*(i+1)]...)
		}
	}
	if vt, ok := set.Get("votes"); ok {
		v, err := tensor.Int8s(vt)
		if err != nil || len(vt.Shape) != 2 || vt.Shape[0] != n {
			return nil, fmt.Errorf("features: votes tensor of shape %v for %d documents", vt.Shape, n)
		}
		w := vt.Shape[1]
		for i := range feats {
			feats[i].votes = append([]int8(nil), v[w*i:w*(i+1)]...)
		}
	}
	return feats, nil
}
