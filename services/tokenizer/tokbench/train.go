package tokbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/llmesh/llmesh/services/internal/bpe"
)

// TrainReport is what a training child prints, one JSON object.
type TrainReport struct {
	Seconds   float64 `json:"seconds"`
	RSSBytes  int64   `json:"rss_bytes"`
	VocabSize int     `json:"vocab_size,omitempty"`
	// RequestedVocabSize and TrainerVocabSize are set by the HF script,
	// whose npm binding trains with fixed defaults.
	RequestedVocabSize int `json:"requested_vocab_size,omitempty"`
	TrainerVocabSize   int `json:"trainer_vocab_size,omitempty"`
}

// TrainChild is the body of the training child process: it trains a vocab
// vocabulary on the lines of textFile (each line, with its newline, one
// text — as HF reads a file) and writes a TrainReport as JSON to w. Only
// the Train call is timed; the peak RSS is the whole process's.
func TrainChild(ctx context.Context, textFile string, vocab int, w io.Writer) error {
	data, err := os.ReadFile(textFile)
	if err != nil {
		return fmt.Errorf("tokbench: train child: %w", err)
	}
	texts := strings.SplitAfter(string(data), "\n")
	start := time.Now()
	tok, err := bpe.Train(ctx, texts, bpe.TrainOptions{VocabSize: vocab})
	if err != nil {
		return fmt.Errorf("tokbench: train child: %w", err)
	}
	rep := TrainReport{Seconds: time.Since(start).Seconds(), RSSBytes: peakRSS(), VocabSize: tok.VocabSize()}
	return json.NewEncoder(w).Encode(rep)
}

// runChild runs cmd and decodes the TrainReport on the last line of its
// standard output.
func runChild(cmd *exec.Cmd, what string) (TrainReport, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return TrainReport{}, fmt.Errorf("tokbench: %s: %w: %s", what, err, lastLine(stderr.String(), 400))
	}
	return parseReport(stdout.String(), what)
}

// parseReport decodes the TrainReport on the last line of out.
func parseReport(out, what string) (TrainReport, error) {
	line := lastLine(out, 1<<16)
	var rep TrainReport
	if err := json.Unmarshal([]byte(line), &rep); err != nil {
		return TrainReport{}, fmt.Errorf("tokbench: %s printed %.200q, not a JSON report: %w", what, line, err)
	}
	if rep.Seconds <= 0 {
		return TrainReport{}, fmt.Errorf("tokbench: %s reported %g seconds", what, rep.Seconds)
	}
	return rep, nil
}

// lastLine returns the last non-empty line of s, cut to at most max bytes.
func lastLine(s string, max int) string {
	s = strings.TrimRight(s, "\n\r ")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > max {
		s = s[len(s)-max:]
	}
	return s
}
