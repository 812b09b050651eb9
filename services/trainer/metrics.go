package trainer

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/services/trainer/tbevents"
)

// metricHelp names the per-step metrics a shard reports, with their help
// text in the Prometheus exposition: each is a gauge
// llmesh_trainer_<name> holding the last value reported.
var metricHelp = map[string]string{
	"loss":              "training loss of the last step",
	"lr":                "learning rate of the last step",
	"grad_norm":         "global gradient norm of the last step, before clipping",
	"tokens_per_sec":    "training tokens per second over the last logging window, all shards",
	"allreduce_ms":      "milliseconds of the last step's allreduces in all, overlapped with computation or not",
	"allreduce_wait_ms": "milliseconds of the last step's allreduces that the computation waited for",
	"val_loss":          "last validation loss",
	"step":              "last completed step",
	"shards":            "shards in the current ring",
}

// allReduceBuckets are the bounds, in seconds, of the allreduce histogram:
// 1 ms to about 33 s, doubling.
var allReduceBuckets = prometheus.ExponentialBuckets(0.001, 2, 16)

// gauges holds the Prometheus metrics of every job this process trains
// (as rank 0 of its ring, for sharded jobs), in a registry of the
// Service's own — not the process-wide default one, since one process may
// run several services (and tests run many). Its zero value is ready to
// use; the metrics are made on first use.
type gauges struct {
	once      sync.Once
	reg       *prometheus.Registry
	last      map[string]*prometheus.GaugeVec // by metricHelp name
	steps     *prometheus.CounterVec
	tokens    *prometheus.CounterVec
	restarts  *prometheus.CounterVec
	allreduce *prometheus.HistogramVec
}

func (g *gauges) init() {
	g.once.Do(func() {
		g.reg = prometheus.NewRegistry()
		g.last = make(map[string]*prometheus.GaugeVec, len(metricHelp))
		for name, help := range metricHelp {
			g.last[name] = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "llmesh_trainer_" + name, Help: help}, []string{"job"})
			g.reg.MustRegister(g.last[name])
		}
		g.steps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llmesh_trainer_steps_total",
			Help: "training steps completed; steps trained again after a restart count again"}, []string{"job"})
		g.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llmesh_trainer_tokens_total",
			Help: "training tokens consumed by completed steps, all shards; tokens trained again after a restart count again"}, []string{"job"})
		g.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llmesh_trainer_restarts_total",
			Help: "restarts from a checkpoint: after a plugin died, or after a ring of shards failed (counted by each of this process's shards)"}, []string{"job"})
		g.allreduce = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "llmesh_trainer_allreduce_seconds",
			Help: "seconds of each training step's allreduces (gradients of data-parallel jobs; activations and gradient norm of tensor-parallel jobs)", Buckets: allReduceBuckets}, []string{"job"})
		g.reg.MustRegister(g.steps, g.tokens, g.restarts, g.allreduce)
	})
}

// set sets job's gauge for the metric name; names not in metricHelp have
// no gauge and are ignored.
func (g *gauges) set(job, name string, v float64) {
	g.init()
	if gv, ok := g.last[name]; ok {
		gv.WithLabelValues(job).Set(v)
	}
}

// restart counts one restart of job from a checkpoint.
func (g *gauges) restart(job string) {
	g.init()
	g.restarts.WithLabelValues(job).Inc()
}

// MetricsHandler serves the trainer's metrics in the Prometheus exposition
// formats, labelled by job, for the jobs this process trains (as rank 0 of
// the ring, for sharded jobs): a gauge per metric of metricHelp
// (llmesh_trainer_<name>, its last value), the counters
// llmesh_trainer_steps_total, llmesh_trainer_tokens_total and
// llmesh_trainer_restarts_total, and the histogram
// llmesh_trainer_allreduce_seconds.
func (s *Service) MetricsHandler() http.Handler {
	s.gauges.init()
	return promhttp.HandlerFor(s.gauges.reg, promhttp.HandlerOpts{})
}

// reporter sends one shard's metrics to the job's events, its
// TensorBoard event file (when the service has a TensorBoard directory)
// and the Prometheus metrics.
type reporter struct {
	em  *bus.Emitter
	tb  *tbevents.Writer
	g   *gauges
	job string
}

func (s *Service) newReporter(job string, em *bus.Emitter) (*reporter, error) {
	s.gauges.init()
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

// stepDone counts one completed training step of tokens tokens (of all
// shards).
func (r *reporter) stepDone(tokens int64) {
	r.g.steps.WithLabelValues(r.job).Inc()
	r.g.tokens.WithLabelValues(r.job).Add(float64(tokens))
}

// allReduced records the allreduce time of one step.
func (r *reporter) allReduced(d time.Duration) {
	r.g.allreduce.WithLabelValues(r.job).Observe(d.Seconds())
}

// restarted counts one restart of the job from a checkpoint.
func (r *reporter) restarted() { r.g.restart(r.job) }

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
