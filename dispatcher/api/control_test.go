package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/throttle"
)

// shipped runs the pipeline as `missive serve` does: its task size and
// concurrency, with email paced at rate (MISSIVE_RATE_EMAIL).
func shipped(rate string) option {
	return withConfig(func(c *app.Config) {
		r, err := throttle.ParseRate(rate)
		if err != nil {
			panic(err)
		}
		c.Tuning = pipeline.Tuning{ReconcileEvery: c.ReconcileEvery}
		c.ProviderRates = map[channels.Kind]throttle.Rate{channels.Email: r}
	})
}

// A pause holds from its answer on: the messages that leave afterwards are
// at most those already handed to the provider when it answered, whatever
// the task size and the pace.
func TestPauseHoldsFromItsAnswer(t *testing.T) {
	t.Parallel()
	const n = 1000
	b := setup(t, shipped("200/s"))
	seedMailing(t, b, n)
	ctx := context.Background()
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
	b.smtp.Wait(50, 20*time.Second)
	_, err = b.d.Pipeline.SetCampaignState(ctx, "mailing", "pause")
	must(t, err)
	r, err := b.d.Store.Run(ctx, run)
	must(t, err)
	gone := r.Counters["sent"] + r.Counters["sending"]
	b.waitParked(t, 20*time.Second)
	if got := int64(len(b.smtp.Messages())); got > gone {
		t.Fatalf("%d messages left after the pause answered (%d were sent or sending then)", got-gone, gone)
	}
	if gone >= n {
		t.Fatal("the run finished before the pause; the test proves nothing")
	}
	_, err = b.d.Pipeline.SetCampaignState(ctx, "mailing", "resume")
	must(t, err)
	r = b.waitRun(t, run, 60*time.Second)
	assertEachOnce(t, b, n)
	if !r.Balanced || r.Counters["sent"] != n {
		t.Errorf("counters %v", r.Counters)
	}
}

// An opt-out recorded while a message waits wins, for every message not
// yet handed to the provider, even in a task that started before it: by
// the one-click link of an earlier message, by the consents API and by
// the suppression API.
func TestOptOutDuringSendingWins(t *testing.T) {
	t.Parallel()
	const n = 300
	b := setup(t, shipped("50/s"))
	seedMailing(t, b, n)
	ctx := context.Background()
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
	b.smtp.Wait(10, 20*time.Second)

	// The last contact of each send task goes last.
	leaving := []string{"m0099", "m0199", "m0299"}
	link, err := b.d.Pipeline.UnsubscribeURL(leaving[0], channels.Email, "newsletter", dispatcher.SendID(run, leaving[0], channels.Email))
	must(t, err)
	res, err := http.Post(b.srv.URL+strings.TrimPrefix(link, b.cfg.PublicURL), "application/x-www-form-urlencoded",
		strings.NewReader(url.Values{"List-Unsubscribe": {"One-Click"}}.Encode()))
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("one-click answered %d", res.StatusCode)
	}
	if r := b.api.do("POST", "/v1/contacts/"+leaving[1]+"/consents", `{"channel":"email","topic":"newsletter","state":"withdrawn"}`); r.status != http.StatusCreated {
		t.Fatalf("withdrawing consent: %d %s", r.status, r.body)
	}
	if r := b.api.do("POST", "/v1/suppressions", `{"channel":"email","address":"`+leaving[2]+`@example.com","reason":"unsubscribe"}`); r.status != http.StatusCreated {
		t.Fatalf("suppressing: %d %s", r.status, r.body)
	}
	for _, c := range leaving {
		s, err := b.d.Store.Send(ctx, dispatcher.SendID(run, c, channels.Email))
		must(t, err)
		if s.State == dispatcher.StateSent || s.State == dispatcher.StateSending {
			t.Fatalf("%s was %s before its opt-out; the test proves nothing", c, s.State)
		}
	}

	r := b.waitRun(t, run, 60*time.Second)
	for _, m := range b.smtp.Messages() {
		for _, c := range leaving {
			if m.To[0] == c+"@example.com" {
				t.Errorf("%s got the message after opting out", c)
			}
		}
	}
	want := map[string]int64{"planned": n, "sent": n - 3, "no_consent": 2, "suppressed_unsubscribe": 1}
	for k, v := range want {
		if r.Counters[k] != v {
			t.Errorf("%s = %d, want %d (counters %v)", k, r.Counters[k], v, r.Counters)
		}
	}
	if !r.Balanced {
		t.Errorf("run not balanced: %v", r.Counters)
	}
	for i, c := range leaving {
		s, err := b.d.Store.Send(ctx, dispatcher.SendID(run, c, channels.Email))
		must(t, err)
		wantReason := []string{"no_consent", "no_consent", "suppressed_unsubscribe"}[i]
		if s.State != dispatcher.StateSuppressed || s.Reason != wantReason {
			t.Errorf("%s: send %s (%s), want suppressed (%s)", c, s.State, s.Reason, wantReason)
		}
	}
}
