package metrics_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/gate"
	"github.com/missive-dev/missive/dispatcher/metrics"
)

// A nil *Metrics records nothing and never panics.
func TestNilMetrics(t *testing.T) {
	var m *metrics.Metrics
	m.Decisions("email", "queued", 3)
	m.Settled("email", "sent")
	m.ProviderCall("sms", time.Millisecond)
	m.ProviderError("sms", "http_429")
	m.Feedback("email", "delivered")
	m.RateWait("sms", time.Second)
	m.Leading(true)
	m.LeaseLost()
	m.RedisError("timeout")
	m.WatchQueues(nil, 0)
	if fams, err := m.Gatherer().Gather(); err != nil || len(fams) != 0 {
		t.Errorf("nil metrics gathered %d families, %v", len(fams), err)
	}
}

// scrape returns the text the handler serves.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// A label value outside its closed set is recorded as "other": an
// address or an id passed by mistake never becomes a label.
func TestLabelsAreClosed(t *testing.T) {
	m := metrics.New()
	m.Decisions("ana@shop.example", "queued", 1)
	m.Decisions("email", "run-42", 2)
	m.Settled("sms", "+33612345678")
	m.Feedback("email", "c-1042")
	m.ProviderError("email", "550 5.1.1 <ana@shop.example>")
	m.RedisError("ERR ana@shop.example")
	m.WatchQueues(func(context.Context) ([]metrics.QueueStats, error) {
		return []metrics.QueueStats{{Name: "send:3", Pending: 2}, {Name: "tenant-ana:send", Pending: 1}}, nil
	}, time.Minute)
	body := scrape(t, m)
	// Label values only: a runtime metric's value may hold any digits.
	var labels strings.Builder
	for _, line := range strings.Split(body, "\n") {
		if i, j := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}'); !strings.HasPrefix(line, "#") && i >= 0 && j > i {
			labels.WriteString(line[i:j+1] + "\n")
		}
	}
	for _, leak := range []string{"ana", "run-42", "+336", "c-1042", "550"} {
		if strings.Contains(labels.String(), leak) {
			t.Errorf("metric labels contain %q", leak)
		}
	}
	for _, want := range []string{
		`missive_gate_decisions_total{channel="other",reason="queued"} 1`,
		`missive_gate_decisions_total{channel="email",reason="other"} 2`,
		`missive_sends_total{channel="sms",outcome="other"} 1`,
		`missive_queue_tasks{queue="send:3",state="pending"} 2`,
		`missive_queue_tasks{queue="other",state="pending"} 1`,
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}

// The queues are read at most once per period, and a failed reading
// leaves the other metrics served.
func TestQueuesReadAtScrapeTime(t *testing.T) {
	m := metrics.New()
	m.Settled("email", "sent")
	reads := 0
	m.WatchQueues(func(context.Context) ([]metrics.QueueStats, error) {
		reads++
		return []metrics.QueueStats{{Name: "plan", Latency: 1500 * time.Millisecond}}, nil
	}, time.Hour)
	for range 3 {
		if body := scrape(t, m); !strings.Contains(body, `missive_queue_latency_seconds{queue="plan"} 1.5`) {
			t.Fatalf("no queue latency:\n%s", body)
		}
	}
	if reads != 1 {
		t.Errorf("three scrapes read the queues %d times, want 1", reads)
	}
	m.WatchQueues(func(context.Context) ([]metrics.QueueStats, error) { return nil, errors.New("redis down") }, time.Hour)
	body := scrape(t, m)
	if strings.Contains(body, "missive_queue_tasks") || !strings.Contains(body, `missive_sends_total{channel="email",outcome="sent"} 1`) {
		t.Errorf("with the queues unreadable:\n%s", body)
	}
}

// The closed sets hold every value the parts of Missive record.
func TestClosedSetsHoldMissiveValues(t *testing.T) {
	for _, r := range []string{dispatcher.StateQueued, dispatcher.StateDeferred, gate.ReasonNoAddress, gate.ReasonInvalidAddress,
		gate.ReasonNoConsent, gate.ReasonReachedBefore, gate.ReasonCapped, gate.ReasonPausedByRecipient, gate.ReasonRecipientFrequency,
		gate.SuppressedReason(dispatcher.SuppressBounce), gate.SuppressedReason(dispatcher.SuppressComplaint),
		gate.SuppressedReason(dispatcher.SuppressStop), gate.SuppressedReason(dispatcher.SuppressUnsubscribe)} {
		if !slices.Contains(metrics.Reasons, r) {
			t.Errorf("reason %q is not in metrics.Reasons", r)
		}
	}
	for _, k := range channels.Kinds {
		if !slices.Contains(metrics.Channels, string(k)) {
			t.Errorf("channel %q is not in metrics.Channels", k)
		}
	}
	for _, k := range []channels.FeedbackKind{channels.Delivered, channels.HardBounce, channels.SoftBounce, channels.Complaint,
		channels.OptedOut, channels.Unsubscribed, channels.Undelivered} {
		if !slices.Contains(metrics.FeedbackKinds, string(k)) {
			t.Errorf("feedback kind %q is not in metrics.FeedbackKinds", k)
		}
	}
}
