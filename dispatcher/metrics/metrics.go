package metrics

import (
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The closed sets of label values. A value outside its set is recorded as
// Other.
var (
	// Channels are the delivery channels (channels.Kinds).
	Channels = []string{"email", "sms"}
	// Reasons are the gate's decisions: a send queued or deferred, or the
	// reason it was not made (gate.Reason..., suppressed_<reason> for
	// each dispatcher.Suppress... reason).
	Reasons = []string{"queued", "deferred", "no_address", "invalid_address", "suppressed_bounce",
		"suppressed_complaint", "suppressed_stop", "suppressed_unsubscribe", "no_consent", "reached_before", "capped",
		"paused_by_recipient", "recipient_frequency"}
	// Outcomes are what the pipeline settles a send as: it left (sent),
	// the provider refused it or it could not be built (failed), the
	// provider may have taken it (ambiguous), it was cancelled (run
	// cancelled, contact erased, nothing left to answer), an opt-out or a
	// cap recorded while it waited stopped it (suppressed), or it went
	// back to the queue after a temporary failure (retried).
	Outcomes = []string{"sent", "failed", "ambiguous", "cancelled", "suppressed", "retried"}
	// ErrorClasses sort provider errors by what answered: an SMTP relay's
	// 4xx or 5xx reply, an HTTP API's 429, other 4xx or 5xx status, no
	// answer at all (network: refused, reset, timed out), or a message
	// refused before it left (local).
	ErrorClasses = []string{"smtp_4xx", "smtp_5xx", "http_429", "http_4xx", "http_5xx", "network", "local"}
	// FeedbackKinds are the kinds of provider feedback (channels.FeedbackKind).
	FeedbackKinds = []string{"delivered", "hard_bounce", "soft_bounce", "complaint", "opted_out", "unsubscribed", "undelivered"}
	// RedisErrorKinds sort failed Redis commands: no answer in time
	// (timeout), no connection (network), or an error reply (server).
	RedisErrorKinds = []string{"timeout", "network", "server"}
	// QueueStates are the states of tasks in a queue, as asynq counts them.
	QueueStates = []string{"pending", "active", "scheduled", "retry", "archived"}
)

// Other is the label value of anything outside its closed set.
const Other = "other"

// queueName is a queue's name without Missive's prefix: plan, batch, send
// or send:N.
var queueName = regexp.MustCompile(`^(plan|batch|send(:[0-9]{1,3})?)$`)

// closed returns v if set holds it, else Other.
func closed(set []string, v string) string {
	if slices.Contains(set, v) {
		return v
	}
	return Other
}

// Metrics holds Missive's collectors and their registry. A nil *Metrics
// records nothing. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	decisions        *prometheus.CounterVec
	sends            *prometheus.CounterVec
	providerDuration *prometheus.HistogramVec
	providerErrors   *prometheus.CounterVec
	feedback         *prometheus.CounterVec
	rateWaits        *prometheus.CounterVec
	rateWaitSeconds  *prometheus.CounterVec
	leader           prometheus.Gauge
	leaseLosses      prometheus.Counter
	redisErrors      *prometheus.CounterVec
	queues           *queueCollector
}

// New returns Metrics on a registry of their own, with the Go and process
// collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), queues: newQueueCollector()}
	m.decisions = counterVec("missive_gate_decisions_total",
		"Gate decisions, per channel and reason: queued, deferred (quiet hours) or why no send was made.",
		"channel", "reason")
	m.sends = counterVec("missive_sends_total",
		"Sends settled by the pipeline, per channel and outcome.",
		"channel", "outcome")
	m.providerDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "missive_provider_call_duration_seconds",
		Help:    "Time of one call handing a chunk of messages (up to 8) to the provider, claims included, per channel.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"channel"})
	m.providerErrors = counterVec("missive_provider_errors_total",
		"Messages the provider did not take, per channel and error class.",
		"channel", "class")
	m.feedback = counterVec("missive_feedback_events_total",
		"Provider feedback applied (delivery reports, bounces, complaints, opt-outs), per channel and kind; duplicates are not counted.",
		"channel", "kind")
	m.rateWaits = counterVec("missive_rate_limit_waits_total",
		"Times a send task waited for a provider or campaign rate, per channel.",
		"channel")
	m.rateWaitSeconds = counterVec("missive_rate_limit_wait_seconds_total",
		"Time send tasks waited for a provider or campaign rate, per channel.",
		"channel")
	m.leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "missive_scheduler_leader",
		Help: "1 while this process's scheduler holds the lease and fires due runs, else 0.",
	})
	m.leaseLosses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "missive_scheduler_lease_losses_total",
		Help: "Times this process's scheduler lost the lead it held.",
	})
	m.redisErrors = counterVec("missive_redis_errors_total",
		"Failed Redis commands, per kind: timeout, network, server (an error reply); a missing key is not an error.",
		"kind")
	m.reg.MustRegister(m.decisions, m.sends, m.providerDuration, m.providerErrors, m.feedback,
		m.rateWaits, m.rateWaitSeconds, m.leader, m.leaseLosses, m.redisErrors, m.queues,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// counterVec is a counter named name, with help and labels.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// Handler serves the metrics in the Prometheus text format; a nil
// *Metrics serves none.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A collector that fails (Redis down for the queues) leaves the
		// others served.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	})
}

// Gatherer is the registry, for tests and for more collectors.
func (m *Metrics) Gatherer() prometheus.Gatherer {
	if m == nil {
		return prometheus.Gatherers{}
	}
	return m.reg
}

// Decisions counts n gate decisions of one reason ("queued", "deferred"
// or a gate reason) on channel.
func (m *Metrics) Decisions(channel, reason string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.decisions.WithLabelValues(closed(Channels, channel), closed(Reasons, reason)).Add(float64(n))
}

// Settled counts a send settled with outcome (see Outcomes) on channel.
func (m *Metrics) Settled(channel, outcome string) {
	if m == nil {
		return
	}
	m.sends.WithLabelValues(closed(Channels, channel), closed(Outcomes, outcome)).Inc()
}

// ProviderCall records the time of one call to channel's provider.
func (m *Metrics) ProviderCall(channel string, d time.Duration) {
	if m == nil {
		return
	}
	m.providerDuration.WithLabelValues(closed(Channels, channel)).Observe(d.Seconds())
}

// ProviderError counts a message channel's provider did not take, by
// error class (see ErrorClasses).
func (m *Metrics) ProviderError(channel, class string) {
	if m == nil {
		return
	}
	m.providerErrors.WithLabelValues(closed(Channels, channel), closed(ErrorClasses, class)).Inc()
}

// Feedback counts a piece of provider feedback applied.
func (m *Metrics) Feedback(channel, kind string) {
	if m == nil {
		return
	}
	m.feedback.WithLabelValues(closed(Channels, channel), closed(FeedbackKinds, kind)).Inc()
}

// RateWait records a wait of d for a rate on channel.
func (m *Metrics) RateWait(channel string, d time.Duration) {
	if m == nil || d <= 0 {
		return
	}
	ch := closed(Channels, channel)
	m.rateWaits.WithLabelValues(ch).Inc()
	m.rateWaitSeconds.WithLabelValues(ch).Add(d.Seconds())
}

// Leading sets whether this process's scheduler leads.
func (m *Metrics) Leading(lead bool) {
	if m == nil {
		return
	}
	if lead {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

// LeaseLost counts a lead lost.
func (m *Metrics) LeaseLost() {
	if m == nil {
		return
	}
	m.leaseLosses.Inc()
}

// RedisError counts a failed Redis command of kind (see RedisErrorKinds).
func (m *Metrics) RedisError(kind string) {
	if m == nil {
		return
	}
	m.redisErrors.WithLabelValues(closed(RedisErrorKinds, kind)).Inc()
}
