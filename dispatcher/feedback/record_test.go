package feedback_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/feedback"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
)

// A report of each kind, in order and out of order, on one send: the
// send's state moves forward only, the suppression list and the ledger
// follow the policy, and the run's counters move once per send and kind.
func TestRecordDelivery(t *testing.T) {
	t.Parallel()
	report := func(k channels.FeedbackKind, code string) channels.Feedback {
		return channels.Feedback{Kind: k, Code: code, Source: "ses"}
	}
	permanent := func(reason string) *dispatcher.Suppression {
		return &dispatcher.Suppression{Reason: reason, At: start}
	}
	tests := []struct {
		name    string
		channel channels.Kind
		reports []channels.Feedback
		want    outcome
	}{
		{
			name:    "delivered",
			reports: []channels.Feedback{report(channels.Delivered, "")},
			want:    outcome{State: dispatcher.StateDelivered, Feedback: map[string]int64{feedback.FeedbackDelivered: 1}, Consents: consentsOf()},
		},
		{
			name:    "a delivery report sent twice counts once",
			reports: []channels.Feedback{report(channels.Delivered, ""), report(channels.Delivered, "")},
			want:    outcome{State: dispatcher.StateDelivered, Feedback: map[string]int64{feedback.FeedbackDelivered: 1}, Consents: consentsOf()},
		},
		{
			name:    "hard bounce: bounced, the address suppressed for good",
			reports: []channels.Feedback{report(channels.HardBounce, "5.1.1")},
			want: outcome{State: dispatcher.StateBounced, Reason: string(channels.HardBounce), ErrorCode: "5.1.1",
				Feedback: map[string]int64{feedback.FeedbackHardBounces: 1}, Suppression: permanent(dispatcher.SuppressBounce), Consents: consentsOf()},
		},
		{
			name:    "a bounce after the delivery report moves the send on",
			reports: []channels.Feedback{report(channels.Delivered, ""), report(channels.HardBounce, "5.1.1")},
			want: outcome{State: dispatcher.StateBounced, Reason: string(channels.HardBounce), ErrorCode: "5.1.1",
				Feedback:    map[string]int64{feedback.FeedbackDelivered: 1, feedback.FeedbackHardBounces: 1},
				Suppression: permanent(dispatcher.SuppressBounce), Consents: consentsOf()},
		},
		{
			name:    "a delivery report after a bounce changes nothing",
			reports: []channels.Feedback{report(channels.HardBounce, "5.1.1"), report(channels.Delivered, "")},
			want: outcome{State: dispatcher.StateBounced, Reason: string(channels.HardBounce), ErrorCode: "5.1.1",
				Feedback: map[string]int64{feedback.FeedbackHardBounces: 1}, Suppression: permanent(dispatcher.SuppressBounce), Consents: consentsOf()},
		},
		{
			name:    "undelivered: failed, without blaming the address",
			reports: []channels.Feedback{report(channels.Undelivered, "30007")},
			want: outcome{State: dispatcher.StateFailed, Reason: string(channels.Undelivered), ErrorCode: "30007",
				Feedback: map[string]int64{feedback.FeedbackFailed: 1}, Consents: consentsOf()},
		},
		{
			name:    "a delivery report after a failure changes nothing",
			reports: []channels.Feedback{report(channels.Undelivered, "30007"), report(channels.Delivered, "")},
			want: outcome{State: dispatcher.StateFailed, Reason: string(channels.Undelivered), ErrorCode: "30007",
				Feedback: map[string]int64{feedback.FeedbackFailed: 1}, Consents: consentsOf()},
		},
		{
			name:    "complaint: suppressed, marketing on the channel withdrawn, the state kept",
			reports: []channels.Feedback{report(channels.Delivered, ""), {Kind: channels.Complaint, Source: "arf"}},
			want: outcome{State: dispatcher.StateDelivered, Feedback: map[string]int64{feedback.FeedbackDelivered: 1, feedback.FeedbackComplaints: 1},
				Suppression: permanent(dispatcher.SuppressComplaint), Consents: consentsOf("email/news")},
		},
		{
			name:    "a complaint reported twice counts once",
			reports: []channels.Feedback{{Kind: channels.Complaint, Source: "arf"}, {Kind: channels.Complaint, Source: "ses"}},
			want: outcome{State: dispatcher.StateSent, Feedback: map[string]int64{feedback.FeedbackComplaints: 1},
				Suppression: permanent(dispatcher.SuppressComplaint), Consents: consentsOf("email/news")},
		},
		{
			name:    "unsubscribed through the mailbox provider: the message's topic withdrawn, no suppression, no complaint",
			reports: []channels.Feedback{{Kind: channels.Unsubscribed, Source: "arf"}, {Kind: channels.Unsubscribed, Source: "arf"}},
			want: outcome{State: dispatcher.StateSent, Feedback: map[string]int64{storepkg.FeedbackUnsubscribes: 1},
				Consents: consentsOf("email/news")},
		},
		{
			name:    "one soft bounce: counted, below the threshold",
			reports: []channels.Feedback{report(channels.SoftBounce, "4.2.2")},
			want:    outcome{State: dispatcher.StateSent, Feedback: map[string]int64{feedback.FeedbackSoftBounces: 1}, Consents: consentsOf()},
		},
		{
			name:    "opted out by the carrier: bounced, the number stopped",
			channel: channels.SMS,
			reports: []channels.Feedback{{Kind: channels.OptedOut, Code: "21610", Source: "twilio"}},
			want: outcome{State: dispatcher.StateBounced, Reason: string(channels.OptedOut), ErrorCode: "21610",
				Feedback: map[string]int64{feedback.FeedbackHardBounces: 1}, Suppression: permanent(dispatcher.SuppressStop), Consents: consentsOf()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, send := setupSent(t, tt.channel)
			for _, ev := range tt.reports {
				ev.Send = send
				mustRecord(t, b.h, ev)
			}
			if diff := cmp.Diff(tt.want, b.outcome(t, send)); diff != "" {
				t.Errorf("after %d reports (-want +got):\n%s", len(tt.reports), diff)
			}
		})
	}
}

// A report may come before the settlement of the chunk its message left
// in: it moves the send on from "sending", and the settlement, coming
// after, leaves it so.
func TestReportBeforeTheSettlement(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		kind  channels.FeedbackKind
		state string
	}{{channels.HardBounce, dispatcher.StateBounced}, {channels.Delivered, dispatcher.StateDelivered}, {channels.Undelivered, dispatcher.StateFailed}} {
		t.Run(string(tt.kind), func(t *testing.T) {
			t.Parallel()
			b := setup(t, feedback.Policy{})
			b.putContact(t)
			send := storetest.Send(t, b.st, b.clock.Now(), "spring", "r1", "c1", channels.Email, dispatcher.StateSending)
			mustRecord(t, b.h, channels.Feedback{Kind: tt.kind, Code: "5.1.1", Source: "ses", Send: send})
			ctx := context.Background()
			rs, err := b.st.TransitionSends(ctx, []storepkg.Transition{{Send: send, From: dispatcher.StateSending, To: dispatcher.StateSent}})
			if err != nil {
				t.Fatal(err)
			}
			if rs[0].Applied {
				t.Error("the settlement moved the send back to sent")
			}
			o := b.outcome(t, send)
			if o.State != tt.state {
				t.Errorf("send %s, want %s", o.State, tt.state)
			}
			if tt.kind == channels.HardBounce && (o.Suppression == nil || o.Suppression.Reason != dispatcher.SuppressBounce) {
				t.Errorf("suppression %+v, want the address suppressed for the bounce", o.Suppression)
			}
		})
	}
}

// Feedback that names no send Missive holds applies to the address it
// names, if any.
func TestRecordDeliveryWithoutASend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		ev              channels.Feedback
		wantErr         error
		wantSuppression *dispatcher.Suppression
		wantConsents    map[string]dispatcher.ConsentState
	}{
		{
			name:         "an expired send, no address",
			ev:           channels.Feedback{Send: dispatcher.SendID("r1", "c1", channels.Email), Kind: channels.HardBounce},
			wantErr:      feedback.ErrUnknownSend,
			wantConsents: consentsOf(),
		},
		{
			name:         "not a send id",
			ev:           channels.Feedback{Send: "no-such-shape", Kind: channels.Complaint},
			wantErr:      feedback.ErrUnknownSend,
			wantConsents: consentsOf(),
		},
		{
			name:         "nothing at all",
			ev:           channels.Feedback{Kind: channels.HardBounce},
			wantErr:      feedback.ErrUnknownSend,
			wantConsents: consentsOf(),
		},
		{
			name:            "an expired send with the address: the address is suppressed",
			ev:              channels.Feedback{Send: dispatcher.SendID("r1", "c1", channels.Email), Channel: channels.Email, Address: email, Kind: channels.HardBounce},
			wantSuppression: &dispatcher.Suppression{Reason: dispatcher.SuppressBounce, At: start},
			wantConsents:    consentsOf(),
		},
		{
			name:            "a complaint by address finds the contact and withdraws its marketing",
			ev:              channels.Feedback{Channel: channels.Email, Address: "ANA@example.com", Kind: channels.Complaint, Source: "arf"},
			wantSuppression: &dispatcher.Suppression{Reason: dispatcher.SuppressComplaint, At: start},
			wantConsents:    consentsOf("email/news"),
		},
		{
			name:         "an address without a channel says nothing",
			ev:           channels.Feedback{Address: email, Kind: channels.HardBounce},
			wantConsents: consentsOf(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, feedback.Policy{})
			b.putContact(t)
			err := b.h.RecordDelivery(context.Background(), tt.ev)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("RecordDelivery: %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantSuppression, b.suppression(t, channels.Email)); diff != "" {
				t.Errorf("suppression (-want +got):\n%s", diff)
			}
			got, err := b.st.Consents(context.Background(), "c1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantConsents, got); diff != "" {
				t.Errorf("consents (-want +got):\n%s", diff)
			}
		})
	}
}

// Soft bounces suppress an address for SoftSuspend once SoftBounces of
// them fall within SoftWindow; each send counts once.
func TestSoftBounceThreshold(t *testing.T) {
	t.Parallel()
	policy := feedback.Policy{SoftBounces: 3, SoftWindow: 7 * 24 * time.Hour, SoftSuspend: 30 * 24 * time.Hour}
	type report struct {
		after time.Duration // on the clock, since the report before
		run   string        // the send of c1 in that run; "": the report names no send
		kind  channels.FeedbackKind
	}
	soft := func(after time.Duration, run string) report { return report{after, run, channels.SoftBounce} }
	tests := []struct {
		name    string
		reports []report
		// wantSuppression is the entry after the reports, with its times
		// as offsets from start.
		wantSuppression *dispatcher.Suppression
	}{
		{
			name:            "three sends within the window: suspended from the third",
			reports:         []report{soft(0, "r1"), soft(24*time.Hour, "r2"), soft(48*time.Hour, "r3")},
			wantSuppression: &dispatcher.Suppression{Reason: dispatcher.SuppressBounce, At: start.Add(72 * time.Hour), Until: start.Add(72*time.Hour + policy.SoftSuspend)},
		},
		{
			name:    "two: below the threshold",
			reports: []report{soft(0, "r1"), soft(time.Hour, "r2")},
		},
		{
			name:    "three, the first out of the window",
			reports: []report{soft(0, "r1"), soft(7*24*time.Hour, "r2"), soft(time.Hour, "r3")},
		},
		{
			name:    "one send reported three times counts once",
			reports: []report{soft(0, "r1"), soft(time.Hour, "r1"), soft(time.Hour, "r1")},
		},
		{
			name:            "three reports that name no send",
			reports:         []report{soft(0, ""), soft(time.Minute, ""), soft(time.Minute, "")},
			wantSuppression: &dispatcher.Suppression{Reason: dispatcher.SuppressBounce, At: start.Add(2 * time.Minute), Until: start.Add(2*time.Minute + policy.SoftSuspend)},
		},
		{
			name:            "a hard bounce stays for good past the threshold",
			reports:         []report{{0, "r1", channels.HardBounce}, soft(time.Hour, "r2"), soft(time.Hour, "r3"), soft(time.Hour, "r4")},
			wantSuppression: &dispatcher.Suppression{Reason: dispatcher.SuppressBounce, At: start},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, policy)
			b.putContact(t)
			sends := map[string]string{}
			for _, r := range tt.reports {
				if r.run != "" && sends[r.run] == "" {
					sends[r.run] = b.sentTo(t, "spring", r.run, "c1", channels.Email)
				}
			}
			for _, r := range tt.reports {
				b.clock.Add(r.after)
				ev := channels.Feedback{Send: sends[r.run], Kind: r.kind, Code: "4.2.2", Source: "dsn"}
				if r.run == "" {
					ev.Channel, ev.Address = channels.Email, email
				}
				mustRecord(t, b.h, ev)
			}
			if diff := cmp.Diff(tt.wantSuppression, b.suppression(t, channels.Email)); diff != "" {
				t.Errorf("suppression (-want +got):\n%s", diff)
			}
		})
	}
}

// A run pauses its campaign, once, when its bounce or complaint rate
// passes the policy after MinSample messages left.
func TestRunPausesPastItsRates(t *testing.T) {
	t.Parallel()
	type report struct {
		send    int // of the run's five
		kind    channels.FeedbackKind
		wantErr bool
	}
	hard := func(i int) report { return report{send: i, kind: channels.HardBounce} }
	tests := []struct {
		name       string
		campaign   string
		minSample  int64
		stateErrs  []error
		reports    []report
		wantReason string
		wantStates []string
	}{
		{
			name:    "one bounce in five: at the rate, not past it",
			reports: []report{hard(0)},
		},
		{
			name:       "two bounces in five",
			reports:    []report{hard(0), hard(1)},
			wantReason: "bounce rate 40.0% passed 20.0%",
			wantStates: []string{"spring:pause"},
		},
		{
			name:       "soft bounces count as bounces",
			reports:    []report{{send: 0, kind: channels.SoftBounce}, {send: 1, kind: channels.SoftBounce}},
			wantReason: "bounce rate 40.0% passed 20.0%",
			wantStates: []string{"spring:pause"},
		},
		{
			name:       "two complaints in five",
			reports:    []report{{send: 0, kind: channels.Complaint}, {send: 1, kind: channels.Complaint}},
			wantReason: "complaint rate 40.00% passed 20.00%",
			wantStates: []string{"spring:pause"},
		},
		{
			name:      "below the sample, no rate is judged",
			minSample: 6,
			reports:   []report{hard(0), hard(1), hard(2), hard(3)},
		},
		{
			name:       "paused once",
			reports:    []report{hard(0), hard(1), hard(2), hard(3)},
			wantReason: "bounce rate 40.0% passed 20.0%",
			wantStates: []string{"spring:pause"},
		},
		{
			name:       "a one-at-a-time run records why and pauses no campaign",
			campaign:   dispatcher.APICampaign,
			reports:    []report{hard(0), hard(1)},
			wantReason: "bounce rate 40.0% passed 20.0%",
		},
		{
			name:       "a campaign that cannot be paused (already paused by hand) is no error",
			stateErrs:  []error{dispatcher.Conflict("cannot pause a paused campaign")},
			reports:    []report{hard(0), hard(1)},
			wantReason: "bounce rate 40.0% passed 20.0%",
			wantStates: []string{"spring:pause"},
		},
		{
			name:       "a pause that failed is tried again by the next report",
			stateErrs:  []error{errors.New("campaign record kept changing")},
			reports:    []report{hard(0), {send: 1, kind: channels.HardBounce, wantErr: true}, hard(2)},
			wantReason: "bounce rate 60.0% passed 20.0%",
			wantStates: []string{"spring:pause", "spring:pause"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, feedback.Policy{MinSample: max(tt.minSample, 4), MaxBounceRate: 0.2, MaxComplaintRate: 0.2})
			b.runs.StateErrs = tt.stateErrs
			campaign := tt.campaign
			if campaign == "" {
				campaign = "spring"
			}
			var sends []string
			for i := range 5 {
				c := fmt.Sprintf("c%d", i)
				if err := b.st.UpsertContact(context.Background(), &dispatcher.Contact{ID: c, Email: c + "@example.com"}, "UTC"); err != nil {
					t.Fatal(err)
				}
				sends = append(sends, b.sentTo(t, campaign, "r1", c, channels.Email))
			}
			for i, r := range tt.reports {
				err := b.h.RecordDelivery(context.Background(), channels.Feedback{Send: sends[r.send], Kind: r.kind, Source: "dsn"})
				if (err != nil) != r.wantErr {
					t.Fatalf("report %d: RecordDelivery: %v, want an error: %v", i, err, r.wantErr)
				}
			}
			run, err := b.st.Run(context.Background(), "r1")
			if err != nil {
				t.Fatal(err)
			}
			if run.PausedReason != tt.wantReason {
				t.Errorf("paused reason %q, want %q", run.PausedReason, tt.wantReason)
			}
			states := b.runs.States()
			if diff := cmp.Diff(tt.wantStates, states); diff != "" {
				t.Errorf("campaign state changes (-want +got):\n%s", diff)
			}
		})
	}
}

// A report that settles the last send of a run whose planning is over
// completes the run; one that moves no state does not.
func TestRecordDeliveryCompletesTheRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		planned       bool
		kind          channels.FeedbackKind
		wantCompleted []string
	}{
		{"planning over, delivered", true, channels.Delivered, []string{"r1"}},
		{"planning over, bounced", true, channels.HardBounce, []string{"r1"}},
		{"planning over, a complaint moves no state", true, channels.Complaint, nil},
		{"still planning", false, channels.Delivered, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, send := setupSent(t, channels.Email)
			ctx := context.Background()
			if tt.planned {
				if err := b.st.FinishPlan(ctx, "r1", 0); err != nil {
					t.Fatal(err)
				}
				if _, err := b.st.FinishBatch(ctx, "r1", ""); err != nil {
					t.Fatal(err)
				}
			}
			mustRecord(t, b.h, channels.Feedback{Send: send, Kind: tt.kind, Source: "ses"})
			completed := b.runs.Completed()
			if diff := cmp.Diff(tt.wantCompleted, completed); diff != "" {
				t.Errorf("runs completed (-want +got):\n%s", diff)
			}
		})
	}
}

// A refusal at send time is applied as the same report would be later:
// to the suppression list and the run's counters.
func TestRefused(t *testing.T) {
	t.Parallel()
	refusal := func(kind channels.FeedbackKind, code string) error {
		return &channels.Error{Kind: channels.Permanent, Code: code, Feedback: kind, Err: errors.New("refused")}
	}
	tests := []struct {
		name            string
		channel         channels.Kind
		err             error
		wantFeedback    map[string]int64
		wantSuppression *dispatcher.Suppression
	}{
		{
			name:            "no such mailbox",
			err:             refusal(channels.HardBounce, "5.1.1"),
			wantFeedback:    map[string]int64{feedback.FeedbackHardBounces: 1},
			wantSuppression: &dispatcher.Suppression{Reason: dispatcher.SuppressBounce, At: start},
		},
		{
			name:            "wrapped",
			err:             fmt.Errorf("send: %w", refusal(channels.HardBounce, "5.1.1")),
			wantFeedback:    map[string]int64{feedback.FeedbackHardBounces: 1},
			wantSuppression: &dispatcher.Suppression{Reason: dispatcher.SuppressBounce, At: start},
		},
		{
			name:            "a number that replied STOP",
			channel:         channels.SMS,
			err:             refusal(channels.OptedOut, "21610"),
			wantFeedback:    map[string]int64{feedback.FeedbackHardBounces: 1},
			wantSuppression: &dispatcher.Suppression{Reason: dispatcher.SuppressStop, At: start},
		},
		{
			name:         "a full mailbox counts as a soft bounce",
			err:          refusal(channels.SoftBounce, "5.2.2"),
			wantFeedback: map[string]int64{feedback.FeedbackSoftBounces: 1},
		},
		{
			name:         "a refusal that says nothing of the recipient",
			err:          refusal("", "5.7.1"),
			wantFeedback: map[string]int64{},
		},
		{
			name:         "not a channel's error",
			err:          errors.New("connection reset"),
			wantFeedback: map[string]int64{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, id := setupSent(t, tt.channel)
			ctx := context.Background()
			sd, err := b.st.Send(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			c, err := b.st.Contact(ctx, "c1")
			if err != nil {
				t.Fatal(err)
			}
			if err := b.h.Refused(ctx, sd, c, tt.err); err != nil {
				t.Fatalf("Refused: %v", err)
			}
			run, err := b.st.Run(ctx, "r1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantFeedback, run.Feedback); diff != "" {
				t.Errorf("run feedback (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSuppression, b.suppression(t, sd.Channel)); diff != "" {
				t.Errorf("suppression (-want +got):\n%s", diff)
			}
		})
	}
}

// A full mailbox refused at send time is a soft bounce of that moment: it
// counts towards the threshold with the soft bounces reported after it,
// and the export shows when it happened.
func TestRefusedSoftBounceCountsInTheWindow(t *testing.T) {
	t.Parallel()
	b := setup(t, feedback.Policy{SoftBounces: 3, SoftWindow: 7 * 24 * time.Hour, SoftSuspend: 30 * 24 * time.Hour})
	b.putContact(t)
	ctx := context.Background()
	var sends []string
	for _, run := range []string{"r1", "r2", "r3"} {
		sends = append(sends, b.sentTo(t, "spring", run, "c1", channels.Email))
	}
	sd, err := b.st.Send(ctx, sends[0])
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.st.Contact(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	full := &channels.Error{Kind: channels.Permanent, Code: "5.2.2", Feedback: channels.SoftBounce, Err: errors.New("mailbox full")}
	if err := b.h.Refused(ctx, sd, c, full); err != nil {
		t.Fatal(err)
	}
	for _, send := range sends[1:] {
		b.clock.Add(time.Hour)
		mustRecord(t, b.h, channels.Feedback{Send: send, Kind: channels.SoftBounce, Code: "4.2.2", Source: "dsn"})
	}
	times, err := b.st.SoftBounceTimes(ctx, channels.Email, email)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]time.Time{start, start.Add(time.Hour), start.Add(2 * time.Hour)}, times); diff != "" {
		t.Errorf("soft bounces held (-want +got):\n%s", diff)
	}
	want := &dispatcher.Suppression{Reason: dispatcher.SuppressBounce, At: start.Add(2 * time.Hour), Until: start.Add(2*time.Hour + 30*24*time.Hour)}
	if diff := cmp.Diff(want, b.suppression(t, channels.Email)); diff != "" {
		t.Errorf("suppression after three soft bounces (-want +got):\n%s", diff)
	}
}

// A report whose first try moved the send and then failed (here, the run
// could not be completed) is finished by the provider's retry: the send
// is not taken for past it, the address is suppressed, the run completed
// and the bounce counted once.
func TestRetryFinishesWhatAFailedTryStarted(t *testing.T) {
	t.Parallel()
	b, send := setupSent(t, channels.Email)
	ctx := context.Background()
	if err := b.st.FinishPlan(ctx, "r1", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.FinishBatch(ctx, "r1", ""); err != nil {
		t.Fatal(err)
	}
	b.runs.CompleteErrs = []error{errors.New("redis down")}
	ev := channels.Feedback{Send: send, Kind: channels.HardBounce, Code: "5.1.1", Source: "ses"}
	if err := b.h.RecordDelivery(ctx, ev); err == nil {
		t.Fatal("the first try did not fail")
	}
	mustRecord(t, b.h, ev) // the provider's retry
	mustRecord(t, b.h, ev) // and a duplicate: changes nothing
	got := b.outcome(t, send)
	if got.State != dispatcher.StateBounced || got.Suppression == nil || got.Suppression.Reason != dispatcher.SuppressBounce ||
		got.Feedback[feedback.FeedbackHardBounces] != 1 {
		t.Errorf("after the retry: %+v; want bounced, suppressed for bounce, counted once", got)
	}
	if completed := b.runs.Completed(); !slices.Equal(completed, []string{"r1"}) {
		t.Errorf("runs completed %v, want [r1]", completed)
	}
}
