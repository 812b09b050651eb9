package trainer

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// scrape GETs s's metrics in the text exposition format and parses them.
func scrape(t *testing.T, s *Service) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d, content type %q:\n%s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	return fams
}

// series is job's series of family name in fams, nil if there is none.
func series(fams map[string]*dto.MetricFamily, name, job string) *dto.Metric {
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "job" && l.GetValue() == job {
				return m
			}
		}
	}
	return nil
}

// sample is the value of job's gauge or counter name, failing the test if
// it is absent.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name, job string) float64 {
	t.Helper()
	m := series(fams, name, job)
	switch {
	case m == nil:
		t.Errorf("no %s{job=%q} in the exposition", name, job)
		return 0
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	t.Errorf("%s{job=%q} is neither a gauge nor a counter", name, job)
	return 0
}

// The exposition has every family with its help text and type, and job
// names that need escaping come back intact.
func TestMetricsExposition(t *testing.T) {
	var s Service
	if fams := scrape(t, &s); len(fams) != 0 {
		t.Errorf("metrics before any job: %v", fams)
	}
	jobs := []string{"plain-job_1", `quote"back\slash`, "new\nline", "中文 job", "{job=\"x\"} 1"}
	for i, job := range jobs {
		r := &reporter{g: &s.gauges, job: job}
		s.gauges.set(job, "loss", 2.5+float64(i))
		s.gauges.set(job, "step", float64(10*i))
		s.gauges.set(job, "no_such_metric", 1) // not exposed
		for range i + 1 {
			r.stepDone(64)
			r.allReduced(3 * time.Millisecond)
		}
		r.restarted()
	}
	fams := scrape(t, &s)
	var names []string
	for n := range fams {
		names = append(names, n)
	}
	want := []string{"llmesh_trainer_allreduce_seconds", "llmesh_trainer_loss", "llmesh_trainer_restarts_total",
		"llmesh_trainer_step", "llmesh_trainer_steps_total", "llmesh_trainer_tokens_total"}
	slices.Sort(names)
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("families (-want +got):\n%s", diff)
	}
	types := map[string]dto.MetricType{"llmesh_trainer_loss": dto.MetricType_GAUGE, "llmesh_trainer_steps_total": dto.MetricType_COUNTER,
		"llmesh_trainer_allreduce_seconds": dto.MetricType_HISTOGRAM}
	for name, typ := range types {
		if fams[name].GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, fams[name].GetType(), typ)
		}
	}
	if got := fams["llmesh_trainer_loss"].GetHelp(); got != metricHelp["loss"] {
		t.Errorf("help of llmesh_trainer_loss = %q, want %q", got, metricHelp["loss"])
	}
	for i, job := range jobs {
		if got, want := sample(t, fams, "llmesh_trainer_loss", job), 2.5+float64(i); got != want {
			t.Errorf("loss{job=%q} = %v, want %v", job, got, want)
		}
		if got, want := sample(t, fams, "llmesh_trainer_step", job), float64(10*i); got != want {
			t.Errorf("step{job=%q} = %v, want %v", job, got, want)
		}
		if got, want := sample(t, fams, "llmesh_trainer_steps_total", job), float64(i+1); got != want {
			t.Errorf("steps_total{job=%q} = %v, want %v", job, got, want)
		}
		if got, want := sample(t, fams, "llmesh_trainer_tokens_total", job), float64(64*(i+1)); got != want {
			t.Errorf("tokens_total{job=%q} = %v, want %v", job, got, want)
		}
		if got := sample(t, fams, "llmesh_trainer_restarts_total", job); got != 1 {
			t.Errorf("restarts_total{job=%q} = %v, want 1", job, got)
		}
		h := series(fams, "llmesh_trainer_allreduce_seconds", job).GetHistogram()
		if h.GetSampleCount() != uint64(i+1) || h.GetSampleSum() < 0.003*float64(i+1)-1e-9 || h.GetSampleSum() > 0.003*float64(i+1)+1e-9 {
			t.Errorf("allreduce_seconds{job=%q}: %d samples, sum %v; want %d of 0.003", job, h.GetSampleCount(), h.GetSampleSum(), i+1)
		}
		// 3 ms falls in the bucket bounded by 4 ms, not in the one by 2 ms.
		for _, b := range h.GetBucket() {
			if want := uint64(0); b.GetUpperBound() >= 0.004 {
				want = uint64(i + 1)
				if b.GetCumulativeCount() != want {
					t.Errorf("allreduce_seconds{job=%q,le=%v} = %d, want %d", job, b.GetUpperBound(), b.GetCumulativeCount(), want)
				}
			} else if b.GetCumulativeCount() != want {
				t.Errorf("allreduce_seconds{job=%q,le=%v} = %d, want %d", job, b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
	// Each service has metrics of its own.
	var other Service
	if fams := scrape(t, &other); len(fams) != 0 {
		t.Errorf("a second service exposes another's metrics: %v", fams)
	}
}

// checkGauges checks that every metric job's events report has a gauge in
// the exposition holding the last value reported.
func checkGauges(t *testing.T, e *env, fams map[string]*dto.MetricFamily, job string) {
	t.Helper()
	last := map[string]float64{}
	for _, ev := range e.events(t, job) {
		if m, ok := ev.Body.(*busv1.Event_Metric); ok {
			last[m.Metric.Name] = m.Metric.Value
		}
	}
	if len(last) == 0 {
		t.Errorf("job %s reported no metrics", job)
	}
	for name, v := range last {
		m := series(fams, "llmesh_trainer_"+name, job)
		if m.GetGauge() == nil {
			t.Errorf("no gauge llmesh_trainer_%s{job=%q} for the job's %s events: is %q in metricHelp?", name, job, name, name)
			continue
		}
		if got := m.GetGauge().GetValue(); got != v {
			t.Errorf("llmesh_trainer_%s{job=%q} = %v, want the last %s event's %v", name, job, got, name, v)
		}
	}
}
