package tokbench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// Options configures Run.
type Options struct {
	// Texts, if non-nil, are the documents to measure on (cut to MB);
	// otherwise Run reads MB of whole documents from DataDir.
	Texts []string
	// TextNote, if set, is added to every result's note (say where Texts
	// came from when it is not the shared corpora).
	TextNote string
	// DataDir holds Corpora; used when Texts is nil.
	DataDir string
	// MB is the text size in megabytes (10^6 bytes); 0 means 10.
	MB float64
	// Vocab is the vocabulary trained; 0 means 32000.
	Vocab int
	// SkipEncode and SkipTrain leave out those measurements.
	SkipEncode, SkipTrain bool

	// TrainCommand, if set, returns the command that runs TrainChild on
	// textFile in a child process (so that its peak RSS is the trainer's
	// alone). Nil trains in this process and notes that the RSS includes
	// the harness.
	TrainCommand func(ctx context.Context, textFile string, vocab int) *exec.Cmd
	// RepoRoot is the checkout holding HFScript; "" looks for it from the
	// working directory upwards.
	RepoRoot string
	// Node is the Node.js binary; "" means "node" on PATH.
	Node string
	// InstallPartners runs npm ci for the HF partner when its package is
	// missing; otherwise a missing partner is reported with a note.
	InstallPartners bool
	// Log, if set, receives a line per step.
	Log io.Writer
}

// Limits on Options.
const (
	MaxMB    = 1024
	MinVocab = 512
)

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// Run measures encoding and training next to their partners and returns the
// results in a fixed order: per encoding one core then all cores, then
// training seconds and peak RSS. It fails only on errors of ours (bad
// options, unreadable text, our trainer failing); a partner that cannot run
// gives a result with a nil PartnerValue and a note.
func Run(ctx context.Context, opts Options) ([]Result, error) {
	o := opts
	if o.MB == 0 {
		o.MB = 10
	}
	if o.Vocab == 0 {
		o.Vocab = 32000
	}
	switch {
	case o.MB < 0 || o.MB > MaxMB:
		return nil, fmt.Errorf("tokbench: text size %g MB is outside 0..%d", o.MB, MaxMB)
	case o.Vocab < MinVocab:
		return nil, fmt.Errorf("tokbench: vocab %d is below the minimum of %d", o.Vocab, MinVocab)
	}
	limit := int(o.MB * 1e6)
	texts := o.Texts
	if texts == nil {
		if o.DataDir == "" {
			return nil, fmt.Errorf("tokbench: no texts and no data folder given")
		}
		var err error
		if texts, err = LoadCorpora(o.DataDir, limit); err != nil {
			return nil, err
		}
	} else {
		texts = cut(texts, limit)
	}
	if totalBytes(texts) == 0 {
		return nil, fmt.Errorf("tokbench: no text to measure (limit %d bytes)", limit)
	}
	o.logf("text: %d documents, %.1f MB", len(texts), float64(totalBytes(texts))/1e6)

	var out []Result
	if !o.SkipEncode {
		for _, name := range Encodings {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			rs, err := o.encodeResults(name, texts)
			if err != nil {
				return nil, err
			}
			out = append(out, rs...)
		}
	}
	if !o.SkipTrain {
		rs, err := o.trainResults(ctx, texts)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	for i := range out {
		out[i].AddNote(o.TextNote)
	}
	return out, nil
}

// cut returns whole documents of texts, in order, skipping any that would
// take the total over limit bytes.
func cut(texts []string, limit int) []string {
	var out []string
	n := 0
	for _, s := range texts {
		if n+len(s) > limit {
			continue
		}
		out = append(out, s)
		n += len(s)
	}
	return out
}

func (o *Options) trainResults(ctx context.Context, texts []string) ([]Result, error) {
	dir, err := os.MkdirTemp("", "tokbench-")
	if err != nil {
		return nil, fmt.Errorf("tokbench: %w", err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "text.txt")
	if err := writeText(file, texts); err != nil {
		return nil, err
	}
	mb := float64(totalBytes(texts)) / 1e6
	tag := fmt.Sprintf("vocab=%d/mb=%s", o.Vocab, strconv.FormatFloat(o.MB, 'g', -1, 64))
	secs := Result{Name: "train/" + tag, Unit: "s"}
	rss := Result{Name: "train-peak-rss/" + tag, Unit: "MB"}

	o.logf("train: ours, vocab %d on %.1f MB", o.Vocab, mb)
	var ours TrainReport
	if o.TrainCommand != nil {
		ours, err = runChild(o.TrainCommand(ctx, file, o.Vocab), "our training child")
	} else {
		var buf bytes.Buffer
		if err = TrainChild(ctx, file, o.Vocab, &buf); err == nil {
			ours, err = parseReport(buf.String(), "our in-process training")
		}
		rss.Note = "trained in the harness's own process: peak RSS includes the harness"
	}
	if err != nil {
		return nil, err
	}
	secs.Value = ours.Seconds
	rss.Value = float64(ours.RSSBytes) / 1e6

	o.logf("train: HF tokenizers")
	cmd, why := o.hfCommand(ctx, file)
	if cmd == nil {
		secs.Missing(hfPartnerName, why)
		rss.Missing(hfPartnerName, why)
		return []Result{secs, rss}, nil
	}
	hf, err := runChild(cmd, "HF training child ("+HFScript+")")
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		secs.Missing(hfPartnerName, err.Error())
		rss.Missing(hfPartnerName, err.Error())
		return []Result{secs, rss}, nil
	}
	secs.Compare(hfPartnerName, hf.Seconds, false)
	rss.Compare(hfPartnerName, float64(hf.RSSBytes)/1e6, false)
	note := "both: train call only, same text file read line by line, same pre-tokenizer (bpe.PreTokenizerPattern)"
	if hf.TrainerVocabSize != 0 && hf.TrainerVocabSize != o.Vocab {
		note += fmt.Sprintf("; the npm binding trains with BpeTrainer defaults (vocab %d, min_frequency 0), ours vocab %d, min_frequency 2", hf.TrainerVocabSize, o.Vocab)
	}
	secs.AddNote(note)
	rss.AddNote("peak RSS of each whole child process (getrusage / process.resourceUsage)")
	return []Result{secs, rss}, nil
}
