package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueStats is the state of one of Missive's queues at a moment.
type QueueStats struct {
	// Name is the queue's name without Missive's prefix: plan, batch,
	// send or send:N.
	Name string
	// Tasks in each state.
	Pending, Active, Scheduled, Retry, Archived int
	// Latency is how long the oldest pending task has waited.
	Latency time.Duration
}

// QueueReader reads the state of Missive's queues
// (pipeline.Pipeline.QueueStats).
type QueueReader func(ctx context.Context) ([]QueueStats, error)

// queueReadTimeout bounds one reading of the queues at scrape time.
const queueReadTimeout = 5 * time.Second

// queueCollector reads the queues at scrape time, at most once per maxAge:
// the scrapes in between are answered from the last reading, so that many
// scrapers cost Redis one reading.
type queueCollector struct {
	tasks, latency *prometheus.Desc

	mu     sync.Mutex
	read   QueueReader
	maxAge time.Duration
	at     time.Time
	last   []QueueStats
	err    error
}

func newQueueCollector() *queueCollector {
	return &queueCollector{
		tasks: prometheus.NewDesc("missive_queue_tasks",
			"Tasks in each of Missive's queues, per state, read at scrape time (shared by every process on the same Redis).",
			[]string{"queue", "state"}, nil),
		latency: prometheus.NewDesc("missive_queue_latency_seconds",
			"How long the oldest pending task of each of Missive's queues has waited.",
			[]string{"queue"}, nil),
	}
}

// WatchQueues makes the metrics read the queues through read at scrape
// time, at most once per maxAge (default 5 s). A later call replaces the
// reader.
func (m *Metrics) WatchQueues(read QueueReader, maxAge time.Duration) {
	if m == nil {
		return
	}
	if maxAge <= 0 {
		maxAge = 5 * time.Second
	}
	q := m.queues
	q.mu.Lock()
	defer q.mu.Unlock()
	q.read, q.maxAge, q.at, q.last, q.err = read, maxAge, time.Time{}, nil, nil
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.tasks
	ch <- q.latency
}

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.read == nil {
		return
	}
	if now := time.Now(); now.Sub(q.at) >= q.maxAge {
		ctx, cancel := context.WithTimeout(context.Background(), queueReadTimeout)
		q.last, q.err = q.read(ctx)
		cancel()
		q.at = now
	}
	if q.err != nil {
		// The other collectors are still served (ContinueOnError).
		ch <- prometheus.NewInvalidMetric(q.tasks, q.err)
		return
	}
	for _, s := range q.last {
		name := Other
		if queueName.MatchString(s.Name) {
			name = s.Name
		}
		for i, n := range []int{s.Pending, s.Active, s.Scheduled, s.Retry, s.Archived} {
			ch <- prometheus.MustNewConstMetric(q.tasks, prometheus.GaugeValue, float64(n), name, QueueStates[i])
		}
		ch <- prometheus.MustNewConstMetric(q.latency, prometheus.GaugeValue, s.Latency.Seconds(), name)
	}
}
