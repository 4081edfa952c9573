package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// replied stands for a provider's error carrying its protocol's status
// (email.SMTPError, sms.APIError).
type replied int

func (r replied) Error() string   { return "provider replied" }
func (r replied) StatusCode() int { return int(r) }

// Provider errors are sorted by what answered, from the status the
// channel's error carries.
func TestErrorClass(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		k    channels.Kind
		err  error
		want string
	}{
		{channels.Email, channels.NewError(channels.Temporary, "4.2.1", replied(451)), "smtp_4xx"},
		{channels.Email, channels.NewError(channels.Permanent, "5.1.1", replied(550)), "smtp_5xx"},
		{channels.Email, channels.NewError(channels.Ambiguous, "", replied(0)), "network"},
		{channels.Email, channels.NewError(channels.Permanent, "", errors.New("no From")), "local"},
		{channels.SMS, channels.NewError(channels.Temporary, "20429", replied(429)), "http_429"},
		{channels.SMS, channels.NewError(channels.Permanent, "21211", replied(400)), "http_4xx"},
		{channels.SMS, channels.NewError(channels.Temporary, "", replied(503)), "http_5xx"},
		{channels.SMS, channels.NewError(channels.Temporary, "", errors.New("connection refused")), "network"},
	} {
		if got := errorClass(c.k, c.err); got != c.want {
			t.Errorf("errorClass(%s, %v) = %s, want %s", c.k, c.err, got, c.want)
		}
	}
}

// What a settlement makes of a send, as the metrics count it.
func TestOutcome(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		t    storepkg.Transition
		want string
	}{
		{storepkg.Transition{From: dispatcher.StateSending, To: dispatcher.StateSent}, "sent"},
		{storepkg.Transition{From: dispatcher.StateSending, To: dispatcher.StateFailed, Reason: dispatcher.ReasonAmbiguous}, "ambiguous"},
		{storepkg.Transition{From: dispatcher.StateSending, To: dispatcher.StateFailed, Reason: dispatcher.ReasonRejected}, "failed"},
		{storepkg.Transition{From: InflightStates, To: dispatcher.StateCancelled, Reason: dispatcher.ReasonRunCancelled}, "cancelled"},
		{storepkg.Transition{From: dispatcher.StateSending, To: dispatcher.StateSuppressed, Reason: "no_consent"}, "suppressed"},
		{storepkg.Transition{From: dispatcher.StateSending, To: dispatcher.StateQueued}, "retried"},
		{storepkg.Transition{From: dispatcher.StateQueued, To: dispatcher.StateQueued}, ""},
	} {
		if got := outcome(c.t); got != c.want {
			t.Errorf("outcome(%+v) = %q, want %q", c.t, got, c.want)
		}
	}
}

// Pause, resume and cancel are logged with the campaign's or run's id and
// the action, nothing personal.
func TestStateChangesAreLogged(t *testing.T) {
	t.Parallel()
	d, _ := planSetup(t, 10, 1)
	var logs bytes.Buffer
	d.log = slog.New(slog.NewJSONHandler(&logs, nil))
	d.cfg.Now = time.Now
	ctx := context.Background()
	if err := d.Store.PutCampaign(ctx, &dispatcher.Campaign{ID: "spring", Topic: "news", Segment: "all",
		Channels: []channels.Kind{channels.Email}, State: dispatcher.Running}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetRunState(ctx, "r1", ActionPause); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetRunState(ctx, "r1", ActionResume); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetCampaignState(ctx, "spring", ActionCancel); err != nil {
		t.Fatal(err)
	}
	if err := d.Store.PutCampaign(ctx, &dispatcher.Campaign{ID: "autumn", Topic: "news", Segment: "all",
		Channels: []channels.Kind{channels.Email}, State: dispatcher.Draft}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ScheduleCampaign(ctx, "autumn", dispatcher.Schedule{Cron: "0 10 * * 1", TZ: "Europe/Paris"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["level"] != "INFO" {
			continue
		}
		got = append(got, fmt.Sprint(rec["msg"], " ", rec["run"], rec["campaign"], " ", rec["action"]))
	}
	want := []string{"run paused r1<nil> pause", "run resumed r1<nil> resume", "campaign cancelled <nil>spring cancel",
		"campaign scheduled <nil>autumn schedule"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("logs (-want +got):\n%s", diff)
	}
}
