package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/metrics"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// QueueStats reads the state of the queues a worker serves (Queues), for
// the metrics; a queue that never held a task reads as empty.
func (d *Pipeline) QueueStats(_ context.Context) ([]metrics.QueueStats, error) {
	// asynq's Inspector takes no context: its reads are bounded by the
	// client's timeouts.
	known, err := d.inspect.Queues()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(d.Queues()))
	for q := range d.Queues() {
		names = append(names, q)
	}
	slices.Sort(names)
	out := make([]metrics.QueueStats, 0, len(names))
	for _, q := range names {
		s := metrics.QueueStats{Name: strings.TrimPrefix(q, d.cfg.Prefix+":")}
		if slices.Contains(known, q) {
			info, err := d.inspect.GetQueueInfo(q)
			if err != nil {
				return nil, err
			}
			s.Pending, s.Active, s.Scheduled, s.Retry, s.Archived = info.Pending, info.Active, info.Scheduled, info.Retry, info.Archived
			s.Latency = info.Latency
		}
		out = append(out, s)
	}
	return out, nil
}

// countDecisions counts the gate's decisions ds.
func (d *Pipeline) countDecisions(ds []storepkg.Decision) {
	if d.m == nil {
		return
	}
	type key struct{ channel, reason string }
	n := map[key]int{}
	for _, dc := range ds {
		reason := dc.State // queued, deferred
		if dc.State == dispatcher.StateSuppressed {
			reason = dc.Reason
		}
		n[key{string(dc.Channel), reason}]++
	}
	for k, v := range n {
		d.m.Decisions(k.channel, k.reason, v)
	}
}

// outcome is the metrics' name of what t makes of a send, "" when t
// settles nothing (a send requeued as it was).
func outcome(t storepkg.Transition) string {
	switch t.To {
	case dispatcher.StateSent:
		return "sent"
	case dispatcher.StateFailed:
		if t.Reason == dispatcher.ReasonAmbiguous {
			return "ambiguous"
		}
		return "failed"
	case dispatcher.StateCancelled:
		return "cancelled"
	case dispatcher.StateSuppressed:
		return "suppressed"
	case dispatcher.StateQueued:
		if t.From == dispatcher.StateSending {
			return "retried"
		}
	}
	return ""
}

// countSettled counts the transitions of ts that applied (applied[i]), on
// channel k; k "" looks the channels up in the send records, which a
// settlement keeps.
func (d *Pipeline) countSettled(ctx context.Context, k channels.Kind, ts []storepkg.Transition, applied func(i int) bool) {
	if d.m == nil {
		return
	}
	var ids []string
	var idx []int
	for i, t := range ts {
		if applied(i) && outcome(t) != "" {
			if k != "" {
				d.m.Settled(string(k), outcome(t))
				continue
			}
			ids, idx = append(ids, t.Send), append(idx, i)
		}
	}
	if len(ids) == 0 {
		return
	}
	sends, err := d.Store.Sends(ctx, ids)
	if err != nil {
		return // the count is best effort; the settlement stands
	}
	for j, s := range sends {
		ch := ""
		if s != nil {
			ch = string(s.Channel)
		}
		d.m.Settled(ch, outcome(ts[idx[j]]))
	}
}

// statusCoder is a provider error that carries the protocol's status: an
// SMTP reply code (email.SMTPError) or an HTTP status (sms.APIError); 0
// when nothing answered.
type statusCoder interface{ StatusCode() int }

// errorClass sorts a provider error of channel k for the metrics.
func errorClass(k channels.Kind, err error) string {
	status := 0
	var sc statusCoder
	if errors.As(err, &sc) {
		status = sc.StatusCode()
	}
	switch {
	case status == 0 && channels.KindOf(err) == channels.Permanent:
		return "local" // refused before it left: it could not be built
	case status == 0:
		return "network"
	case k == channels.Email && status >= 500:
		return "smtp_5xx"
	case k == channels.Email:
		return "smtp_4xx"
	case status == 429:
		return "http_429"
	case status >= 500:
		return "http_5xx"
	}
	return "http_4xx"
}
