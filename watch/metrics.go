package watch

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the watchers' gauges and counters, on an injected registry.
// A nil *Metrics records nothing.
type Metrics struct {
	up         *prometheus.GaugeVec
	lastEvent  *prometheus.GaugeVec
	reconnects *prometheus.CounterVec
	wakeups    *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "servicedesk_idle_watchers_up",
			Help: "1 while this process holds the mailbox's IDLE watcher and its connection is in the folder; summed over replicas, 1 per idle mailbox."},
			[]string{"project"}),
		lastEvent: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "servicedesk_idle_last_event_timestamp_seconds",
			Help: "Unix time the IDLE connection last reported new mail (time() - this: seconds since the last IDLE event)."},
			[]string{"project"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "servicedesk_idle_reconnects_total",
			Help: "IDLE connections that failed (dial, or a dead connection noticed) and are dialled again after a backoff."},
			[]string{"project"}),
		wakeups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "servicedesk_idle_fetches_queued_total",
			Help: "Fetches queued by IDLE watchers (new mail reported, or a (re)connect)."},
			[]string{"project"}),
	}
	reg.MustRegister(m.up, m.lastEvent, m.reconnects, m.wakeups)
	return m
}

func (m *Metrics) init(project string) {
	if m != nil {
		m.up.WithLabelValues(project).Set(0)
		m.reconnects.WithLabelValues(project)
		m.wakeups.WithLabelValues(project)
	}
}

func (m *Metrics) setUp(project string, up bool) {
	if m != nil {
		v := 0.0
		if up {
			v = 1
		}
		m.up.WithLabelValues(project).Set(v)
	}
}

func (m *Metrics) event(project string, at time.Time) {
	if m != nil {
		m.lastEvent.WithLabelValues(project).Set(float64(at.UnixNano()) / 1e9)
	}
}

func (m *Metrics) reconnect(project string) {
	if m != nil {
		m.reconnects.WithLabelValues(project).Inc()
	}
}

func (m *Metrics) queued(project string) {
	if m != nil {
		m.wakeups.WithLabelValues(project).Inc()
	}
}
