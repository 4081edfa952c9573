package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/gate"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/throttle"
)

// startShipped runs "mailing" to n contacts as `missive serve` does, with
// its task size and concurrency and email paced at rate
// (MISSIVE_RATE_EMAIL), until the first k messages arrived.
func startShipped(t *testing.T, rate string, n, k int) (*testBundle, string) {
	t.Helper()
	r, err := throttle.ParseRate(rate)
	must(t, err)
	b := setup(t, withConfig(func(c *app.Config) {
		c.Tuning = pipeline.Tuning{ReconcileEvery: c.ReconcileEvery}
		c.ProviderRates = map[channels.Kind]throttle.Rate{channels.Email: r}
	}))
	run := startMailing(t, b, n)
	b.smtp.Wait(k, 20*time.Second)
	b.waitDecided(t, run, n)
	return b, run
}

// A pause holds from its answer on: the messages that leave afterwards are
// at most those already handed to the provider when it answered, whatever
// the task size and the pace.
func TestPauseHoldsFromItsAnswer(t *testing.T) {
	t.Parallel()
	const n = 1000
	b, run := startShipped(t, "200/s", n, 50)
	ctx := context.Background()
	_, err := b.d.Pipeline.SetCampaignState(ctx, "mailing", "pause")
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
	resumeToTheEnd(t, b, run, n)
}

// resumeToTheEnd resumes the paused "mailing" and checks that its run
// sends the n messages, each once.
func resumeToTheEnd(t *testing.T, b *testBundle, run string, n int64) {
	t.Helper()
	_, err := b.d.Pipeline.SetCampaignState(context.Background(), "mailing", "resume")
	must(t, err)
	r := b.waitRun(t, run, 60*time.Second)
	assertEachOnce(t, b, int(n))
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
	b, run := startShipped(t, "50/s", n, 10)

	// The last contact of each send task goes last.
	leaving := []string{"m0099", "m0199", "m0299"}
	link, err := b.d.Pipeline.UnsubscribeURL(leaving[0], channels.Email, "newsletter", dispatcher.SendID(run, leaving[0], channels.Email))
	must(t, err)
	if code := b.oneClick(t, b.srv.URL, link); code != http.StatusOK {
		t.Fatalf("one-click answered %d", code)
	}
	if r := b.api.do("POST", "/v1/contacts/"+leaving[1]+"/consents", `{"channel":"email","topic":"newsletter","state":"withdrawn"}`); r.status != http.StatusCreated {
		t.Fatalf("withdrawing consent: %d %s", r.status, r.body)
	}
	if r := b.api.do("POST", "/v1/suppressions", `{"channel":"email","address":"`+leaving[2]+`@example.com","reason":"unsubscribe"}`); r.status != http.StatusCreated {
		t.Fatalf("suppressing: %d %s", r.status, r.body)
	}
	b.checkHeldWhileSending(t, run, "its opt-out", map[string]string{
		leaving[0]: "no_consent", leaving[1]: "no_consent", leaving[2]: "suppressed_unsubscribe",
	}, map[string]int64{"planned": n, "sent": n - 3, "no_consent": 2, "suppressed_unsubscribe": 1})
}

// checkHeldWhileSending checks a run in which the contacts of held, not
// sent yet, asked after it started to get nothing more (what names how):
// none of them has been sent to yet (else the test proves nothing), the
// run ends with the counters want, balanced, none got the message, and
// each one's send was suppressed with the reason held gives.
func (b *testBundle) checkHeldWhileSending(t *testing.T, run, what string, held map[string]string, want map[string]int64) {
	t.Helper()
	ctx := context.Background()
	for c := range held {
		s, err := b.d.Store.Send(ctx, dispatcher.SendID(run, c, channels.Email))
		must(t, err)
		if s.State == dispatcher.StateSent || s.State == dispatcher.StateSending {
			t.Fatalf("%s was %s before %s; the test proves nothing", c, s.State, what)
		}
	}

	r := b.waitRun(t, run, 60*time.Second)
	for _, m := range b.smtp.Messages() {
		if _, ok := held[strings.TrimSuffix(m.To[0], "@example.com")]; ok {
			t.Errorf("%s got the message after %s", m.To[0], what)
		}
	}
	for k, v := range want {
		if r.Counters[k] != v {
			t.Errorf("%s = %d, want %d (counters %v)", k, r.Counters[k], v, r.Counters)
		}
	}
	if !r.Balanced {
		t.Errorf("run not balanced: %v", r.Counters)
	}
	for c, reason := range held {
		s, err := b.d.Store.Send(ctx, dispatcher.SendID(run, c, channels.Email))
		must(t, err)
		if s.State != dispatcher.StateSuppressed || s.Reason != reason {
			t.Errorf("%s: send %s (%s), want suppressed (%s)", c, s.State, s.Reason, reason)
		}
	}
}

// Starting is idempotent: one key makes one run however often it is
// sent, a campaign with a run under way refuses a second start unless a
// new run is asked for, and a one-shot campaign reaches each contact once
// across its runs.
func TestStartIsIdempotent(t *testing.T) {
	t.Parallel()
	const n = 100
	r, err := throttle.ParseRate("50/s")
	must(t, err)
	b := setup(t, withConfig(func(c *app.Config) {
		c.ProviderRates = map[channels.Kind]throttle.Rate{channels.Email: r}
	}))
	seedMailing(t, b, n)
	b.startWorker(t)

	var wg sync.WaitGroup
	var first [2]resp
	for i := range first {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first[i] = b.api.do("POST", "/v1/campaigns/mailing/start", "", "Idempotency-Key", "launch-1")
		}()
	}
	wg.Wait()
	var run string
	for _, r := range first {
		switch r.status {
		case http.StatusAccepted, http.StatusOK:
			v := r.json(t)
			if run != "" && v["run"] != run {
				t.Fatalf("one key made runs %s and %v", run, v["run"])
			}
			run = v["run"].(string)
		case http.StatusConflict: // the other start was under way
		default:
			t.Fatalf("start: %d %s", r.status, r.body)
		}
	}
	if first[0].status == first[1].status {
		t.Fatalf("two starts with one key both answered %d", first[0].status)
	}
	again := b.api.do("POST", "/v1/campaigns/mailing/start", "", "Idempotency-Key", "launch-1")
	if diff := cmp.Diff(map[string]any{"run": run, "created": false}, again.json(t)); again.status != http.StatusOK || diff != "" {
		t.Errorf("the same start again: %d (-want +got):\n%s", again.status, diff)
	}
	busy := b.api.do("POST", "/v1/campaigns/mailing/start", "")
	if diff := cmp.Diff(apiErr(dispatcher.CodeConflict, ""), errorShape(busy.json(t))); busy.status != http.StatusConflict || diff != "" {
		t.Errorf("a start while a run is under way: %d (-want +got):\n%s", busy.status, diff)
	}
	if !strings.Contains(string(busy.body), run) {
		t.Errorf("the refusal does not name the run under way: %s", busy.body)
	}
	second := b.api.do("POST", "/v1/campaigns/mailing/start", `{"new_run": true}`)
	if second.status != http.StatusAccepted {
		t.Fatalf("a new run asked for: %d %s", second.status, second.body)
	}
	run2 := second.json(t)["run"].(string)

	ctx := context.Background()
	r1, r2 := b.waitRun(t, run, 60*time.Second), b.waitRun(t, run2, 60*time.Second)
	assertEachOnce(t, b, n)
	if r1.Counters["sent"] != n || r2.Counters[gate.ReasonReachedBefore] != n || !r2.Balanced {
		t.Errorf("first run %v, second %v; want %d sent, then %d reached before", r1.Counters, r2.Counters, n, n)
	}
	// The campaign settles right after its last run.
	var c *dispatcher.Campaign
	waitFor(t, "the campaign to complete", 10*time.Second, func() bool {
		var err error
		c, err = b.d.Store.Campaign(ctx, "mailing")
		must(t, err)
		return c.State == dispatcher.Completed
	})
	if c.LastRun != run2 {
		t.Errorf("last run %s, want %s", c.LastRun, run2)
	}
}

// A campaign is not completed while one of its runs holds work, and one
// run can be paused and cancelled by itself.
func TestRunsHoldTheirCampaign(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedMailing(t, b, 5)
	b.startWorker(t)
	ctx := context.Background()
	// Each message of the first run waits for a local time 23 hours away.
	loc, err := time.LoadLocation("Europe/Paris")
	must(t, err)
	paris := time.Now().In(loc).Add(-time.Hour)
	sched := fmt.Sprintf(`{"at":%q,"local_time":"%02d:%02d"}`, time.Now().Add(time.Hour).Format(time.RFC3339), paris.Hour(), paris.Minute())
	if r := b.api.do("POST", "/v1/campaigns/mailing/schedule", sched); r.status != http.StatusOK {
		t.Fatalf("schedule: %d %s", r.status, r.body)
	}
	first, err := b.d.Pipeline.Start(ctx, "mailing", pipeline.StartOptions{})
	must(t, err)
	waitFor(t, "the first run's sends to be deferred", 10*time.Second, func() bool {
		r, err := b.d.Store.Run(ctx, first.Run)
		must(t, err)
		return r.Counters[dispatcher.StateDeferred] == 5
	})
	second, err := b.d.Pipeline.Start(ctx, "mailing", pipeline.StartOptions{NewRun: true})
	must(t, err)
	b.waitRun(t, second.Run, 10*time.Second)
	state := func() dispatcher.CampaignState {
		c, err := b.d.Store.Campaign(ctx, "mailing")
		must(t, err)
		return c.State
	}
	if s := state(); s != dispatcher.Running {
		t.Fatalf("campaign %s while its first run holds deferred sends, want running", s)
	}
	steps := []struct {
		path   string
		status int
		run    string // the run's state after
		camp   dispatcher.CampaignState
	}{
		{"/v1/runs/" + first.Run + "/pause", http.StatusOK, dispatcher.RunPaused, dispatcher.Running},
		{"/v1/runs/" + first.Run + "/pause", http.StatusConflict, dispatcher.RunPaused, dispatcher.Running},
		{"/v1/runs/" + second.Run + "/cancel", http.StatusConflict, dispatcher.RunPaused, dispatcher.Running},
		{"/v1/runs/" + first.Run + "/resume", http.StatusOK, dispatcher.RunSending, dispatcher.Running},
		{"/v1/runs/" + first.Run + "/cancel", http.StatusOK, dispatcher.RunCancelled, dispatcher.Completed},
		{"/v1/runs/nope/cancel", http.StatusNotFound, dispatcher.RunCancelled, dispatcher.Completed},
	}
	for _, st := range steps {
		if r := b.api.do("POST", st.path, ""); r.status != st.status {
			t.Fatalf("POST %s: %d %s, want %d", st.path, r.status, r.body, st.status)
		}
		r, err := b.d.Store.Run(ctx, first.Run)
		must(t, err)
		if r.State != st.run || state() != st.camp {
			t.Fatalf("after POST %s: run %s, campaign %s; want %s, %s", st.path, r.State, state(), st.run, st.camp)
		}
	}
	r, err := b.d.Store.Run(ctx, first.Run)
	must(t, err)
	if r.Counters[dispatcher.StateCancelled] != 5 || !r.Balanced {
		t.Errorf("cancelled run %v, want its 5 deferred sends cancelled", r.Counters)
	}
	if got := len(b.smtp.Messages()); got != 0 {
		t.Errorf("%d messages left", got)
	}
}

// A schedule in the past is refused; the answer shows when a schedule
// fires next.
func TestScheduleShowsNextFires(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC) // a Tuesday
	b := setup(t, withClock(now))
	seedMailing(t, b, 1)
	for _, body := range []string{`{"at":"2020-01-01T10:00:00Z"}`, `{"at":"2026-12-01T08:59:59Z"}`} {
		r := b.api.do("POST", "/v1/campaigns/mailing/schedule", body)
		if diff := cmp.Diff(apiErr(dispatcher.CodeInvalid, "at"), errorShape(r.json(t))); r.status != http.StatusUnprocessableEntity || diff != "" {
			t.Errorf("schedule %s: %d (-want +got):\n%s", body, r.status, diff)
		}
	}
	r := b.api.do("POST", "/v1/campaigns", `{"id":"late","topic":"newsletter","segment":"all","channels":["email"],
		"templates":{"email":"news-mail"},"schedule":{"at":"2020-01-01T10:00:00Z"}}`)
	if diff := cmp.Diff(apiErr(dispatcher.CodeInvalid, "schedule.at"), errorShape(r.json(t))); r.status != http.StatusUnprocessableEntity || diff != "" {
		t.Errorf("create with a past schedule: %d (-want +got):\n%s", r.status, diff)
	}
	// Mondays at 10:00 in Paris are 09:00 UTC in winter.
	want := []any{"2026-12-07T09:00:00Z", "2026-12-14T09:00:00Z", "2026-12-21T09:00:00Z", "2026-12-28T09:00:00Z", "2027-01-04T09:00:00Z"}
	for _, step := range []struct{ method, path, body string }{
		{"POST", "/v1/campaigns/mailing/schedule", `{"cron":"0 10 * * 1","tz":"Europe/Paris"}`},
		{"GET", "/v1/campaigns/mailing", ""},
	} {
		r := b.api.do(step.method, step.path, step.body)
		if r.status != http.StatusOK {
			t.Fatalf("%s %s: %d %s", step.method, step.path, r.status, r.body)
		}
		if diff := cmp.Diff(want, r.json(t)["next_fires"]); diff != "" {
			t.Errorf("%s %s: next fires (-want +got):\n%s", step.method, step.path, diff)
		}
	}
	r = b.api.do("POST", "/v1/campaigns/mailing/schedule", `{"at":"2026-12-01T09:30:00Z"}`)
	if diff := cmp.Diff([]any{"2026-12-01T09:30:00Z"}, r.json(t)["next_fires"]); r.status != http.StatusOK || diff != "" {
		t.Errorf("a one-time schedule: %d %s (-want +got):\n%s", r.status, r.body, diff)
	}
}

// A deferred send takes its frequency-cap slot when it leaves, not when it
// was planned: an SMS waiting for Monday does not hold back Saturday's
// message of another campaign, and still no two messages pass a cap of
// one.
func TestDeferredSendCapsWhenItLeaves(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	must(t, err)
	saturday := time.Date(2027, 1, 2, 10, 0, 0, 0, paris)
	b := setup(t, withClock(saturday), withBasics(), withConfig(func(c *app.Config) {
		c.Quiet = map[channels.Kind]throttle.Calendar{channels.SMS: throttle.DefaultSMSCalendar(2027)}
		c.Caps = []throttle.CapRule{{Channel: "sms", MarketingOnly: true, Limit: 1, Window: 24 * time.Hour}}
	}))
	ctx := context.Background()
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "a", Phone: "+33612345671"}, "Europe/Paris"))
	grantConsent(t, b, "a", channels.SMS)
	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "all"}))
	start := func(id string, sched *dispatcher.Schedule) string {
		t.Helper()
		must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: id, Topic: "newsletter", Segment: "all", Schedule: sched,
			Channels: []channels.Kind{channels.SMS}, Templates: map[channels.Kind]string{channels.SMS: "news-sms"}}))
		s, err := b.d.Pipeline.Start(ctx, id, pipeline.StartOptions{})
		must(t, err)
		return s.Run
	}
	counted := func(run, outcome string) func() bool {
		return func() bool {
			r, err := b.d.Store.Run(ctx, run)
			must(t, err)
			return r.Counters[outcome] == 1
		}
	}
	b.startWorker(t)

	// At 09:00 in the recipient's zone: Sunday morning, when SMS rest, so
	// Monday 08:00.
	monday := start("monday", &dispatcher.Schedule{At: saturday.Add(time.Hour), LocalTime: "09:00"})
	waitFor(t, "the Monday SMS to be deferred", 10*time.Second, counted(monday, dispatcher.StateDeferred))
	now := start("now", nil)
	waitFor(t, "Saturday's SMS to be sent", 10*time.Second, counted(now, dispatcher.StateSent))

	// Monday 08:30: the deferred SMS leaves, a day after Saturday's; a
	// third campaign then finds the cap taken.
	b.clock.Set(time.Date(2027, 1, 4, 8, 30, 0, 0, paris))
	insp := asynq.NewInspectorFromRedisClient(b.redis.Client)
	if n, err := insp.RunAllScheduledTasks(b.d.Pipeline.Queue("send")); err != nil || n == 0 {
		t.Fatalf("%d deferred tasks run (%v), want some", n, err)
	}
	waitFor(t, "the Monday SMS to be sent", 10*time.Second, counted(monday, dispatcher.StateSent))
	third := start("third", nil)
	waitFor(t, "the third campaign to be capped", 10*time.Second, counted(third, gate.ReasonCapped))
	if got := len(b.twilio.Messages()); got != 2 {
		t.Errorf("%d SMS sent, want 2", got)
	}
}

// Two runs of a campaign completing at once each see the other open and
// leave the campaign running with no run under way: the reconciler
// settles it.
func TestReconcilerSettlesAnOrphanedCampaign(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run := runMailing(t, b, 2)
	ctx := context.Background()
	_, err := b.d.Store.UpdateCampaign(ctx, "mailing", func(c *dispatcher.Campaign) (bool, error) {
		c.State = dispatcher.Running // as the two runs left it
		return true, nil
	})
	must(t, err)
	_, err = b.d.Pipeline.Reconcile(ctx)
	must(t, err)
	c, err := b.d.Store.Campaign(ctx, "mailing")
	must(t, err)
	if c.State != dispatcher.Completed || c.LastRun != run {
		t.Errorf("campaign %s (last run %s), want completed after %s", c.State, c.LastRun, run)
	}
}

// Two API processes asked to start one campaign at the same moment, with
// no key: one run, and the other answer is a conflict.
func TestConcurrentStartsMakeOneRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedMailing(t, b, 5)
	// A second dispatcher on the same Redis, with its own connections and
	// HTTP server, stands for another API process.
	opts := *b.redis.Options
	rdb2 := redis.NewClient(&opts)
	t.Cleanup(func() { rdb2.Close() })
	cfg2 := b.cfg
	cfg2.Redis = rdb2
	d2, err := app.New(cfg2)
	must(t, err)
	srv2 := httptest.NewServer(Handler(d2, testKeys))
	t.Cleanup(srv2.Close)
	clients := []*apiClient{b.api, {t: t, srv: srv2}}
	var wg sync.WaitGroup
	got := make([]int, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = c.do("POST", "/v1/campaigns/mailing/start", "").status
		}()
	}
	wg.Wait()
	slices.Sort(got)
	if !slices.Equal(got, []int{http.StatusAccepted, http.StatusConflict}) {
		t.Errorf("two starts answered %v, want one 202 and one 409", got)
	}
	runs, err := b.d.Store.Runs(context.Background(), "mailing")
	must(t, err)
	if len(runs) != 1 {
		t.Errorf("%d runs, want 1", len(runs))
	}
}
