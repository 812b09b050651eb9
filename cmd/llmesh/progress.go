package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// progress shows a job's events: a progress bar per stage on a terminal,
// plain throttled lines otherwise (CI logs, pipes).
type progress struct {
	w     io.Writer
	tty   bool
	bar   *progressbar.ProgressBar
	stage string
	total int64
	last  time.Time
	// onEvent, when set, sees every event first (tests).
	onEvent func(*busv1.Event)
}

func newProgress(w io.Writer, _ bool) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb" {
			p.tty = true
		}
	}
	return p
}

func (p *progress) log(format string, args ...any) {
	if p.bar != nil {
		p.bar.Clear()
	}
	fmt.Fprintf(p.w, format+"\n", args...)
	if p.bar != nil {
		p.bar.RenderBlank()
	}
}

func (p *progress) event(ev *busv1.Event) {
	if p.onEvent != nil {
		p.onEvent(ev)
	}
	switch b := ev.Body.(type) {
	case *busv1.Event_Progress:
		p.progress(b.Progress)
	case *busv1.Event_Metric:
		if b.Metric.Name == "val_loss" {
			p.log("  validation loss %.4f at step %d", b.Metric.Value, b.Metric.Step)
		}
	case *busv1.Event_Log:
		p.log("  %s", b.Log)
	case *busv1.Event_Artifact:
		if b.Artifact.Kind != "checkpoint" {
			p.log("  %s %s stored as %s (%s)", b.Artifact.Kind, b.Artifact.Name, short(b.Artifact.Ref), humanBytes(b.Artifact.Size))
		}
	case *busv1.Event_Error:
		p.log("  failed: %s", b.Error)
	}
}

func short(ref string) string {
	if len(ref) > 19 {
		return ref[:19]
	}
	return ref
}

func (p *progress) progress(pr *busv1.Progress) {
	if pr.Stage != p.stage {
		p.finish()
		p.stage, p.total = pr.Stage, pr.Total
		p.log("%s", pr.Stage)
	}
	if !p.tty {
		if pr.Total > 0 && (time.Since(p.last) > 3*time.Second || pr.Done == pr.Total) {
			p.last = time.Now()
			msg := ""
			if pr.Message != "" {
				msg = "  " + pr.Message
			}
			fmt.Fprintf(p.w, "  [%s] %d/%d (%.0f%%)%s\n", pr.Stage, pr.Done, pr.Total, 100*float64(pr.Done)/float64(pr.Total), msg)
		} else if pr.Total == 0 && pr.Message != "" {
			fmt.Fprintf(p.w, "  [%s] %s\n", pr.Stage, pr.Message)
		}
		return
	}
	if pr.Total <= 0 {
		if pr.Message != "" {
			p.log("  %s", pr.Message)
		}
		return
	}
	if p.bar == nil || pr.Total != p.total {
		if p.bar != nil {
			p.bar.Finish()
		}
		p.total = pr.Total
		p.bar = progressbar.NewOptions64(pr.Total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription("  "+pr.Stage),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
		)
	}
	if pr.Message != "" {
		p.bar.Describe(fmt.Sprintf("  %s: %s", pr.Stage, pr.Message))
	}
	_ = p.bar.Set64(pr.Done)
}

func (p *progress) finish() {
	if p.bar != nil {
		if !p.bar.IsFinished() {
			_ = p.bar.Finish()
		}
		p.bar = nil
	}
}
