package trainer

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/services/trainer/tbevents"
)

// metricHelp names the per-step metrics a shard reports, with their help
// text in the Prometheus exposition.
var metricHelp = map[string]string{
	"loss":           "training loss of the last step",
	"lr":             "learning rate of the last step",
	"grad_norm":      "global gradient norm of the last step, before clipping",
	"tokens_per_sec": "training tokens per second over the last logging window, all shards",
	"allreduce_ms":   "milliseconds of the last gradient allreduce",
	"val_loss":       "last validation loss",
	"step":           "last completed step",
	"shards":         "shards in the current ring",
}

// gauges holds the last value of every metric of every job this process
// trains, for the Prometheus exposition.
type gauges struct {
	mu   sync.Mutex
	jobs map[string]map[string]float64
}

func (g *gauges) set(job, name string, v float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.jobs == nil {
		g.jobs = map[string]map[string]float64{}
	}
	if g.jobs[job] == nil {
		g.jobs[job] = map[string]float64{}
	}
	g.jobs[job][name] = v
}

// MetricsHandler serves the trainer's metrics in the Prometheus text
// exposition format: one gauge family per metric
// (llmesh_trainer_<name>), one series per job, from the shards this
// process runs as rank 0.
func (s *Service) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.gauges.write(w)
	})
}

func (g *gauges) write(w io.Writer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := make([]string, 0, len(metricHelp))
	for n := range metricHelp {
		names = append(names, n)
	}
	slices.Sort(names)
	jobs := make([]string, 0, len(g.jobs))
	for j := range g.jobs {
		jobs = append(jobs, j)
	}
	slices.Sort(jobs)
	for _, n := range names {
		fam := "llmesh_trainer_" + n
		header := false
		for _, j := range jobs {
			v, ok := g.jobs[j][n]
			if !ok {
				continue
			}
			if !header {
				fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", fam, metricHelp[n], fam)
				header = true
			}
			// Job ids are [A-Za-z0-9_-]: nothing to escape.
			fmt.Fprintf(w, "%s{job=%q} %g\n", fam, j, v)
		}
	}
}

// reporter sends one shard's metrics to the job's events, its
// TensorBoard event file (when the service has a TensorBoard directory)
// and the Prometheus gauges.
type reporter struct {
	em  *bus.Emitter
	tb  *tbevents.Writer
	g   *gauges
	job string
}

func (s *Service) newReporter(job string, em *bus.Emitter) (*reporter, error) {
	r := &reporter{em: em, g: &s.gauges, job: job}
	if s.tbDir != "" {
		tb, err := tbevents.Create(filepath.Join(s.tbDir, job))
		if err != nil {
			return nil, fmt.Errorf("trainer: tensorboard: %w", err)
		}
		r.tb = tb
	}
	return r, nil
}

func (r *reporter) metric(name string, v float64, step int) {
	r.em.Metric(name, v, int64(step))
	r.g.set(r.job, name, v)
	if r.tb != nil {
		tag := name
		if strings.HasSuffix(name, "loss") {
			tag = "loss/" + name
		}
		_ = r.tb.Scalar(tag, int64(step), v, time.Now())
	}
}

// flush writes buffered TensorBoard events (after each logging window).
func (r *reporter) flush() {
	if r.tb != nil {
		_ = r.tb.Flush()
	}
}

func (r *reporter) close() {
	if r.tb != nil {
		_ = r.tb.Close()
	}
}
