package feedback_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/feedback"
	"github.com/missive-dev/missive/dispatcher/store"
)

// Feedback counts in the analytics of the send's run and topic, under the
// provider group recorded when the message left: the contact may have
// changed address since, or be gone.
func TestFeedbackCountsUnderTheDomainOfTheSend(t *testing.T) {
	t.Parallel()
	b := setup(t, feedback.Policy{})
	b.putContact(t)
	ctx := context.Background()
	send := b.sentTo(t, "spring", "r1", "c1", channels.Email)
	// As the send path leaves it: the group of the address it went to.
	if err := b.st.Redis.HSet(ctx, b.st.SendKey(send), store.SendDomainField, "gmail").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.st.UpsertContact(ctx, &dispatcher.Contact{ID: "c1", Email: "ana@orange.fr", Phone: phone}, "Europe/Paris"); err != nil {
		t.Fatal(err)
	}
	mustRecord(t, b.h, channels.Feedback{Send: send, Kind: channels.Delivered, Source: "ses"})
	mustRecord(t, b.h, channels.Feedback{Send: send, Kind: channels.Complaint, Source: "arf"})
	mustRecord(t, b.h, channels.Feedback{Send: send, Kind: channels.Complaint, Source: "arf"}) // resent: counted once
	// A send that left before groups were recorded: the address's.
	old := b.sentTo(t, "spring", "r1", "c2", channels.Email)
	if err := b.st.UpsertContact(ctx, &dispatcher.Contact{ID: "c2", Email: "bea@Example.com"}, "Europe/Paris"); err != nil {
		t.Fatal(err)
	}
	mustRecord(t, b.h, channels.Feedback{Send: old, Kind: channels.HardBounce, Code: "5.1.1", Source: "dsn"})
	// The two messages, as the send path counted them when they left.
	if err := b.st.CountEvents(ctx, store.Event{Run: "r1", Topic: "news", Metric: store.MetricEmailSent, Domain: "gmail"},
		store.Event{Run: "r1", Topic: "news", Metric: store.MetricEmailSent, Domain: "example.com"}); err != nil {
		t.Fatal(err)
	}

	rep, err := b.st.RunAnalytics(ctx, "r1", 1)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][4]int64{}
	for _, d := range rep.Domains {
		got[d.Domain] = [4]int64{d.Sent, d.Delivered, d.Complained, d.BouncedHard}
	}
	if diff := cmp.Diff(map[string][4]int64{"gmail": {1, 1, 1, 0}, "example.com": {1, 0, 0, 1}}, got); diff != "" {
		t.Errorf("domains: sent, delivered, complained, bounced (-want +got):\n%s", diff)
	}
	want := store.Counts{Email: store.EmailCounts{Sent: 2, Delivered: 1, Complained: 1, BouncedHard: 1}}
	if diff := cmp.Diff(want, rep.Totals); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	top, err := b.st.TopicAnalytics(ctx, "news", start, start, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, top.Totals); diff != "" {
		t.Errorf("topic totals (-want +got):\n%s", diff)
	}
}

// Each kind of feedback counts in its channel's analytics metric, once.
func TestFeedbackAnalyticsMetrics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		channel channels.Kind
		kind    channels.FeedbackKind
		want    store.Counts
	}{
		{channels.Email, channels.Delivered, store.Counts{Email: store.EmailCounts{Delivered: 1}}},
		{channels.Email, channels.HardBounce, store.Counts{Email: store.EmailCounts{BouncedHard: 1}}},
		{channels.Email, channels.SoftBounce, store.Counts{Email: store.EmailCounts{BouncedSoft: 1}}},
		{channels.Email, channels.Complaint, store.Counts{Email: store.EmailCounts{Complained: 1}}},
		{channels.Email, channels.Unsubscribed, store.Counts{Unsubscribed: 1}},
		{channels.SMS, channels.Delivered, store.Counts{SMS: store.SMSCounts{Delivered: 1}}},
		{channels.SMS, channels.HardBounce, store.Counts{SMS: store.SMSCounts{Undelivered: 1}}},
		{channels.SMS, channels.SoftBounce, store.Counts{SMS: store.SMSCounts{Undelivered: 1}}},
		{channels.SMS, channels.Undelivered, store.Counts{SMS: store.SMSCounts{Undelivered: 1}}},
		{channels.SMS, channels.OptedOut, store.Counts{SMS: store.SMSCounts{OptedOut: 1}}},
	}
	for _, tt := range tests {
		t.Run(string(tt.channel)+" "+string(tt.kind), func(t *testing.T) {
			t.Parallel()
			b, send := setupSent(t, tt.channel)
			for range 2 {
				mustRecord(t, b.h, channels.Feedback{Send: send, Kind: tt.kind, Source: "test"})
			}
			rep, err := b.st.RunAnalytics(context.Background(), "r1", 0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, rep.Totals); diff != "" {
				t.Errorf("totals (-want +got):\n%s", diff)
			}
		})
	}
}
