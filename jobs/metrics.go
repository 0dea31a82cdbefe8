package jobs

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/servicedesk/servicedesk/ticket"
)

// Metrics are the pipeline's own counters, on an injected registry. A nil
// *Metrics records nothing.
type Metrics struct {
	fetchRuns     *prometheus.CounterVec
	fetchFailures *prometheus.CounterVec
	fetchSeconds  *prometheus.HistogramVec
	lastSuccess   *prometheus.GaugeVec
	fetchedMsgs   *prometheus.CounterVec
	outcomes      *prometheus.CounterVec
	latencies     *prometheus.HistogramVec
	sends         *prometheus.CounterVec
	smtpAuth      *prometheus.GaugeVec
	suppressed    *prometheus.CounterVec
	oauth2Errors  *prometheus.CounterVec
	graphWaits    *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		fetchRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "servicedesk_fetch_runs_total",
			Help: "Fetch runs per mailbox."}, []string{"project"}),
		fetchFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "servicedesk_fetch_failures_total",
			Help: "Fetch runs that failed, per mailbox."}, []string{"project"}),
		fetchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "servicedesk_fetch_duration_seconds",
			Help: "Duration of fetch runs.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}, []string{"project"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "servicedesk_mailbox_last_success_timestamp_seconds",
			Help: "Unix time of the mailbox's last successful fetch (alert on time() - this)."}, []string{"project"}),
		fetchedMsgs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "servicedesk_fetched_messages_total",
			Help: "Messages listed by fetch runs."}, []string{"project"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "servicedesk_inbound_messages_total",
			Help: "Inbound messages by outcome."}, []string{"project", "outcome"}),
		latencies: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "servicedesk_ingest_latency_seconds",
			Help: "Fetched to ticket committed.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 16)}, []string{"project"}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "servicedesk_notifications_sent_total",
			Help: "Send attempts by result: ok, temporary, permanent."}, []string{"result"}),
	}
	m.smtpAuth = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "servicedesk_smtp_broken",
		Help: "1 while the project's SMTP server refuses our credentials (set by a failed send, cleared by a good one)."}, []string{"project"})
	m.suppressed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "servicedesk_notifications_suppressed_total",
		Help: "Notifications not mailed on purpose, by project and cause: unmailable, bouncing, recipient_cap, project_ceiling."},
		[]string{"project", "cause"})
	m.oauth2Errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "servicedesk_oauth2_token_errors_total",
		Help: "OAuth2 mailbox token failures by project and step: token_endpoint (unreachable, 5xx), grant (refused: new consent or config fix needed), token_store, login (a server refused an access token)."},
		[]string{"project", "step"})
	m.graphWaits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "servicedesk_graph_throttled_total",
		Help: "Microsoft Graph answers that asked a request to wait, by project and status: 429 (throttled), 503, 504 or another 5xx (busy). Each is waited out as Retry-After says, or ends the fetch as temporary."},
		[]string{"project", "status"})
	reg.MustRegister(m.smtpAuth, m.suppressed, m.oauth2Errors, m.graphWaits)
	reg.MustRegister(m.fetchRuns, m.fetchFailures, m.fetchSeconds, m.lastSuccess, m.fetchedMsgs, m.outcomes, m.latencies, m.sends)
	return m
}

// InitProjects makes every per-project series exist at zero from the start,
// so that an alert on failures or staleness sees the project before its
// first failure.
func (m *Metrics) InitProjects(keys []string) {
	if m == nil {
		return
	}
	for _, k := range keys {
		m.fetchRuns.WithLabelValues(k)
		m.fetchFailures.WithLabelValues(k)
		m.fetchedMsgs.WithLabelValues(k)
		m.smtpAuth.WithLabelValues(k)
		m.suppressed.WithLabelValues(k, "project_ceiling")
	}
}

func (m *Metrics) fetchDone(project string, start, end time.Time, err error) {
	if m == nil {
		return
	}
	m.fetchRuns.WithLabelValues(project).Inc()
	m.fetchSeconds.WithLabelValues(project).Observe(end.Sub(start).Seconds())
	if err != nil {
		m.fetchFailures.WithLabelValues(project).Inc()
	}
}

func (m *Metrics) fetchSucceeded(project string, at time.Time) {
	if m != nil {
		m.lastSuccess.WithLabelValues(project).Set(float64(at.Unix()))
	}
}

func (m *Metrics) fetched(project string, n int) {
	if m != nil {
		m.fetchedMsgs.WithLabelValues(project).Add(float64(n))
	}
}

func (m *Metrics) outcome(project string, o ticket.Outcome) {
	if m != nil {
		m.outcomes.WithLabelValues(project, string(o)).Inc()
	}
}

func (m *Metrics) latency(project string, d time.Duration) {
	if m != nil {
		m.latencies.WithLabelValues(project).Observe(d.Seconds())
	}
}

func (m *Metrics) sent(result string) {
	if m != nil {
		m.sends.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) smtpBroken(project string, broken bool) {
	if m == nil || project == "" {
		return
	}
	v := 0.0
	if broken {
		v = 1
	}
	m.smtpAuth.WithLabelValues(project).Set(v)
}

// Suppressed counts a notification of project that was not mailed on
// purpose, by cause (notify.Cause); a project_ceiling count that grows
// means the project's hourly ceiling on automatic mail holds mail back.
func (m *Metrics) Suppressed(project, cause string) {
	if m != nil && project != "" {
		m.suppressed.WithLabelValues(project, cause).Inc()
	}
}

// OAuth2TokenError counts a failed step of a project's OAuth2 login
// (oauth.Step*: token_endpoint, grant, token_store, login).
func (m *Metrics) OAuth2TokenError(project, step string) {
	if m != nil {
		m.oauth2Errors.WithLabelValues(project, step).Inc()
	}
}

// GraphThrottled counts a Microsoft Graph answer that asked a request of
// the project's mailbox to wait (graph.Options.Throttled).
func (m *Metrics) GraphThrottled(project string, status int) {
	if m != nil {
		m.graphWaits.WithLabelValues(project, strconv.Itoa(status)).Inc()
	}
}
