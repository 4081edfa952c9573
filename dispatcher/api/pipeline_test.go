package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/channels/sms"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/app/apptest"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
	"github.com/missive-dev/missive/dispatcher/testkit"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle"
	"github.com/missive-dev/missive/throttle/redistest"
)

// testBundle is a dispatcher wired to a real Redis, a real SMTP server and
// the Twilio API double, with its HTTP handler on a real server.
type testBundle struct {
	d      *app.Dispatcher
	cfg    app.Config
	redis  *redistest.Redis
	smtp   *smtptest.Server
	twilio *twiliotest.Server
	logs   *testkit.LogBuffer
	// srv serves the Dispatcher's handler (the API with every test key, and
	// the public pages); api calls it with testSecret.
	srv *httptest.Server
	api *apiClient
	// clock is the Dispatcher's clock with withClock, else nil (time.Now).
	clock *storetest.Clock
	// worker makes setup start a worker (withWorker).
	worker bool
	// basics makes setup seed the topics and templates (withBasics).
	basics bool
	// loops counts the turns of the reconciler and the scheduler.
	loops *loopCounter
}

// An option changes what setup builds, before the Dispatcher is made from
// b.cfg.
type option func(*testBundle)

// withConfig changes the Dispatcher's configuration.
func withConfig(f func(*app.Config)) option { return func(b *testBundle) { f(&b.cfg) } }

// withClock gives the Dispatcher a clock that stands at start until the
// test moves it (b.clock).
func withClock(start time.Time) option {
	return func(b *testBundle) {
		b.clock = storetest.NewClock(start)
		b.cfg.Now = b.clock.Now
	}
}

// withWorker runs a worker for the whole test.
func withWorker() option { return func(b *testBundle) { b.worker = true } }

// withBasics seeds the topics and templates the tests use (seedBasics).
func withBasics() option { return func(b *testBundle) { b.basics = true } }

// withoutLogs discards the logs, for fuzzing, where they would pile up.
func withoutLogs() option {
	return func(b *testBundle) { b.cfg.Logger = slog.New(slog.DiscardHandler) }
}

// withPublicURL makes b.srv the PublicURL, so that the links in messages
// lead to it.
func withPublicURL() option {
	return func(b *testBundle) { b.cfg.PublicURL = "http://" + b.srv.Listener.Addr().String() }
}

// setup builds a Dispatcher for one test: its own Redis key prefix, SMTP
// server, Twilio double and HTTP server, so that tests run in parallel.
func setup(t testing.TB, opts ...option) *testBundle {
	t.Helper()
	b := &testBundle{redis: redistest.New(t), smtp: smtptest.New(t), twilio: twiliotest.NewServer(t), logs: &testkit.LogBuffer{}}
	mailer, err := email.New(email.Config{URL: b.smtp.URL(), From: "Missive <news@example.com>", Connections: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mailer.Close() })
	texter, err := sms.New(sms.Config{AccountSID: twiliotest.AccountSID, AuthToken: twiliotest.AuthToken,
		From: "+33757000000", APIURL: b.twilio.URL()})
	if err != nil {
		t.Fatal(err)
	}
	// Listening already, so that options can name its URL; it serves once
	// the Dispatcher exists.
	b.srv = httptest.NewUnstartedServer(nil)
	t.Cleanup(b.srv.Close)
	b.loops = countLoops(b.redis.Client, b.redis.Prefix)
	b.cfg = apptest.Config(b.redis, "https://missive.example",
		map[channels.Kind]channels.Channel{channels.Email: mailer, channels.SMS: texter}, 8, b.logs)
	for _, o := range opts {
		o(b)
	}
	b.d, err = app.New(b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.srv.Config.Handler = Handler(b.d, slices.Concat(testKeys, scopedKeys))
	b.srv.Start()
	b.api = &apiClient{t: t, srv: b.srv}
	if b.basics {
		b.seedBasics(t)
	}
	if b.worker {
		b.startWorker(t)
	}
	return b
}

// startWorker runs a worker until the returned stop is called.
func (b *testBundle) startWorker(t testing.TB) (stop func()) { return apptest.StartWorker(t, b.d) }

// startGate serves the plan and batch queues (batch with batchWorkers)
// and no send queue: runs are planned and gated, their sends wait. stop
// returns what serving returned.
func (b *testBundle) startGate(batchWorkers int) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.d.Pipeline.ServeQueues(ctx, map[string]int{b.d.Pipeline.Queue("plan"): 1, b.d.Pipeline.Queue("batch"): batchWorkers})
	}()
	return func() error { cancel(); return <-done }
}

// waitFor waits until cond holds, and fails the test if it does not within
// timeout: tests wait on a state that proves what they need, never for a
// fixed time.
var waitFor = testkit.WaitFor

func (b *testBundle) waitRun(t testing.TB, run string, timeout time.Duration) *dispatcher.Run {
	t.Helper()
	var r *dispatcher.Run
	defer func() {
		if r != nil && r.State != dispatcher.RunCompleted {
			t.Logf("run %s is %s: %v\n%s", run, r.State, r.Counters, b.logs.String())
		}
	}()
	waitFor(t, "run "+run+" to complete", timeout, func() bool {
		var err error
		r, err = b.d.Store.Run(context.Background(), run)
		if err != nil {
			t.Fatal(err)
		}
		// Completion is two steps (the run's state, then the set of
		// active runs): a test that compares Redis before and after
		// waits for both.
		active, err := b.redis.Client.SIsMember(context.Background(), b.d.Store.Key("runs", "active"), run).Result()
		if err != nil {
			t.Fatal(err)
		}
		return r.State == dispatcher.RunCompleted && !active
	})
	return r
}

// tasks sums what the test's queues hold, as asynq's Inspector sees it.
func (b *testBundle) tasks(t testing.TB) asynq.QueueInfo {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(b.redis.Client)
	known, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	var sum asynq.QueueInfo
	for q := range b.d.Pipeline.Queues() {
		if !slices.Contains(known, q) {
			continue // nothing was ever enqueued there
		}
		qi, err := insp.GetQueueInfo(q)
		if err != nil {
			t.Fatal(err)
		}
		sum.Pending += qi.Pending
		sum.Active += qi.Active
		sum.Scheduled += qi.Scheduled
		sum.Retry += qi.Retry
		sum.Aggregating += qi.Aggregating
	}
	return sum
}

// waitIdle waits until the queues hold no task to run, now or later:
// whatever the workers would still do about what was enqueued is done, so
// a test may then assert that something did not happen.
func (b *testBundle) waitIdle(t testing.TB, timeout time.Duration) {
	t.Helper()
	waitFor(t, "the queues to be idle", timeout, func() bool {
		q := b.tasks(t)
		return q.Pending+q.Active+q.Scheduled+q.Retry+q.Aggregating == 0
	})
}

// waitParked waits until no task is pending or running: what the queues
// still hold waits for a later time (deferred, retried or put back).
func (b *testBundle) waitParked(t testing.TB, timeout time.Duration) {
	t.Helper()
	waitFor(t, "no task to be pending or running", timeout, func() bool {
		q := b.tasks(t)
		return q.Pending+q.Active == 0
	})
}

// loopCounter counts the turns of the Dispatcher's background loops by the
// commands they send to Redis, as they log none: each reconciler pass
// reads the active runs (SMEMBERS P:runs:active), and each scheduler tick
// renews or tries to take the lease (P:scheduler:lease).
type loopCounter struct {
	reconciles, ticks atomic.Int64
}

// countLoops counts the loops of the Dispatcher on prefix that use rdb.
func countLoops(rdb *redis.Client, prefix string) *loopCounter {
	c := &loopCounter{}
	activeRuns, lease := prefix+":runs:active", prefix+":scheduler:lease"
	redistest.OnCommand(rdb, func(cmd redis.Cmder) {
		args := cmd.Args()
		switch cmd.Name() {
		case "smembers":
			if len(args) > 1 && args[1] == activeRuns {
				c.reconciles.Add(1)
			}
		case "set": // a follower tries to take the lease
			if len(args) > 1 && args[1] == lease {
				c.ticks.Add(1)
			}
		case "evalsha", "eval": // the leader renews it (NOSCRIPT first: not counted)
			if len(args) > 3 && args[3] == lease && cmd.Err() == nil {
				c.ticks.Add(1)
			}
		}
	})
	return c
}

// waitReconciles waits until the reconciler made n more passes.
func (c *loopCounter) waitReconciles(t testing.TB, n int64) {
	t.Helper()
	from := c.reconciles.Load()
	waitFor(t, fmt.Sprintf("%d reconciler passes", n), 20*time.Second, func() bool { return c.reconciles.Load() >= from+n })
}

// waitTicks waits until the scheduler ticked n more times: with n >= 2, a
// whole tick began and ended after the call.
func (c *loopCounter) waitTicks(t testing.TB, n int64) {
	t.Helper()
	from := c.ticks.Load()
	waitFor(t, fmt.Sprintf("%d scheduler ticks", n), 20*time.Second, func() bool { return c.ticks.Load() >= from+n })
}

var must = testkit.Must

// seedBasics creates the topics and templates the tests use.
func (b *testBundle) seedBasics(t testing.TB) {
	ctx := context.Background()
	s := b.d.Store
	must(t, s.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Kind: dispatcher.Marketing}))
	must(t, s.PutTopic(ctx, &dispatcher.Topic{ID: "orders", Kind: dispatcher.Transactional}))
	must(t, s.PutTemplate(ctx, apptest.NewsMail()))
	must(t, s.PutTemplate(ctx, &templates.Template{ID: "news-sms", SMS: &templates.SMS{Body: "News for {{default \"you\" .Attr.first_name}}"}}))
}

func grantConsent(t *testing.T, b *testBundle, id string, ks ...channels.Kind) {
	for _, k := range ks {
		must(t, b.d.Store.RecordConsent(context.Background(), id, dispatcher.ConsentEvent{Channel: k, Topic: "newsletter", State: dispatcher.Granted, Source: "api",
			Evidence: map[string]string{"form": "signup-v3"}}))
	}
}

func TestCampaignDeliversExactlyTheExpectedMessages(t *testing.T) {
	t.Parallel()
	b := setup(t, withBasics())
	ctx := context.Background()
	s := b.d.Store
	contacts := []dispatcher.Contact{
		{ID: "both", Email: "both@example.com", Phone: "+33612345678", Tags: []string{"vip"}, Attributes: map[string]string{"first_name": "Ana"}},
		{ID: "mail-only", Email: "mail-only@example.com", Tags: []string{"vip"}},
		{ID: "no-consent", Email: "no-consent@example.com", Phone: "+33612345679", Tags: []string{"vip"}},
		{ID: "bounced", Email: "bounced@example.com", Tags: []string{"vip"}},
		{ID: "landline", Phone: "+33142345678", Tags: []string{"vip"}},
		{ID: "outsider", Email: "outsider@example.com", Tags: []string{"staff"}},
		{ID: "rejected", Email: "rejected@example.com", Tags: []string{"vip"}},
		{ID: "capped", Email: "capped@example.com", Tags: []string{"vip"}},
		{ID: "stopped", Phone: "+33612345670", Tags: []string{"vip"}},
	}
	for i := range contacts {
		must(t, s.UpsertContact(ctx, &contacts[i], "Europe/Paris"))
	}
	grantConsent(t, b, "both", channels.Email, channels.SMS)
	grantConsent(t, b, "mail-only", channels.Email, channels.SMS)
	grantConsent(t, b, "bounced", channels.Email)
	grantConsent(t, b, "landline", channels.SMS)
	grantConsent(t, b, "outsider", channels.Email)
	grantConsent(t, b, "rejected", channels.Email)
	grantConsent(t, b, "capped", channels.Email)
	grantConsent(t, b, "stopped", channels.SMS)
	must(t, s.Suppress(ctx, channels.Email, "Bounced@Example.com", dispatcher.SuppressBounce, time.Time{}))
	must(t, s.Suppress(ctx, channels.SMS, "+33612345670", dispatcher.SuppressStop, time.Time{}))
	for _, id := range []string{"old-1", "old-2"} {
		if _, err := b.d.Caps.Reserve(ctx, time.Now(), throttle.CapRequest{Contact: "capped", Channel: "email", Topic: "newsletter", SendID: id, Marketing: true}); err != nil {
			t.Fatal(err)
		}
	}
	b.smtp.Reject("rejected@example.com", 550, "5.1.1", "no such user")
	must(t, s.PutSegment(ctx, &dispatcher.Segment{ID: "vips", TagsAll: []string{"vip"}}))
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "spring", Topic: "newsletter", Segment: "vips",
		Channels: []channels.Kind{channels.Email, channels.SMS}, Templates: map[channels.Kind]string{channels.Email: "news-mail", channels.SMS: "news-sms"}}))

	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "spring", time.Now())
	must(t, err)
	r := b.waitRun(t, run, 30*time.Second)

	// 8 members x 2 channels ("outsider" is not in the segment).
	want := map[string]int64{
		"planned": 16, "sent": 3, "failed": 1,
		"no_address": 6, "invalid_address": 1, "no_consent": 2,
		"suppressed_bounce": 1, "suppressed_stop": 1, "capped": 1,
	}
	if diff := cmp.Diff(want, r.Counters); diff != "" {
		t.Errorf("run counters (-want +got):\n%s", diff)
	}
	if !r.Balanced {
		t.Errorf("run does not balance: %v", r.Counters)
	}
	// Who received it and who was missed: the run's sends, by contact id,
	// as the counters count them.
	everyone := listAll(t, b, run, "", 5, func(m map[string]any) bool { return m["send"] != "" })
	if len(everyone) != 16 {
		t.Errorf("%d sends listed, want 16", len(everyone))
	}
	for q, n := range map[string]int{"outcome=sent": 3, "outcome=failed": 1, "reason=no_consent": 2, "outcome=suppressed&reason=capped": 1, "reason=no_address": 6} {
		if got := listAll(t, b, run, q, 2, func(map[string]any) bool { return true }); len(got) != n {
			t.Errorf("%s: %d sends listed, want %d", q, len(got), n)
		}
	}
	if page := b.api.do("GET", "/v1/runs/"+run+"/sends?limit=500", ""); strings.Contains(string(page.body), "@example.com") || strings.Contains(string(page.body), "+336") {
		t.Errorf("the listing shows addresses: %s", page.body)
	}
	var rcpts []string
	for _, m := range b.smtp.Messages() {
		rcpts = append(rcpts, m.To...)
	}
	slices.Sort(rcpts)
	if diff := cmp.Diff([]string{"both@example.com", "mail-only@example.com"}, rcpts); diff != "" {
		t.Errorf("SMTP recipients (-want +got):\n%s", diff)
	}
	var numbers []string
	for _, m := range b.twilio.Messages() {
		numbers = append(numbers, m.To)
		if !strings.Contains(m.Body, "STOP") {
			t.Errorf("marketing SMS without an opt-out line: %q", m.Body)
		}
	}
	if diff := cmp.Diff([]string{"+33612345678"}, numbers); diff != "" {
		t.Errorf("SMS recipients (-want +got):\n%s", diff)
	}
	for _, m := range b.smtp.Messages() {
		data := string(m.Data)
		for _, h := range []string{"List-Unsubscribe: <https://missive.example/u/", "List-Unsubscribe-Post: List-Unsubscribe=One-Click"} {
			if !strings.Contains(data, h) {
				t.Errorf("message to %v lacks %q", m.To, h)
			}
		}
	}
	// The hard bounce fed the suppression list.
	if sup, err := s.Suppression(ctx, channels.Email, "rejected@example.com"); err != nil || sup.Reason != dispatcher.SuppressBounce {
		t.Errorf("rejected address not suppressed: %v %v", sup, err)
	}
	c, _ := s.Campaign(ctx, "spring")
	if c.State != dispatcher.Completed {
		t.Errorf("campaign state %s, want completed", c.State)
	}
	for _, addr := range []string{"both@example.com", "+33612345678", "rejected@example.com"} {
		if strings.Contains(b.logs.String(), addr) {
			t.Errorf("logs contain an address")
		}
	}
	assertQueuesHoldNo(t, b, "both@example.com", "+33612345678", "rejected@example.com", "Ana", "news!")
}

// assertQueuesHoldNo reads every key and value asynq keeps for the test's
// queues (tasks, payloads, results, errors) and fails if any holds one of
// the secrets: payloads carry ids only.
func assertQueuesHoldNo(t *testing.T, b *testBundle, secrets ...string) {
	t.Helper()
	ctx := context.Background()
	rdb := b.redis.Client
	iter := rdb.Scan(ctx, 0, "asynq:{"+b.redis.Prefix+"*", 1000).Iterator()
	keys := 0
	for iter.Next(ctx) {
		key := iter.Val()
		keys++
		var values []string
		switch rdb.Type(ctx, key).Val() {
		case "string":
			values = []string{rdb.Get(ctx, key).Val()}
		case "hash":
			for k, v := range rdb.HGetAll(ctx, key).Val() {
				values = append(values, k, v)
			}
		case "list":
			values = rdb.LRange(ctx, key, 0, -1).Val()
		case "set":
			values = rdb.SMembers(ctx, key).Val()
		case "zset":
			values = rdb.ZRange(ctx, key, 0, -1).Val()
		}
		for _, v := range append(values, key) {
			for _, s := range secrets {
				if strings.Contains(v, s) {
					t.Errorf("queue key %s holds personal data or a message", key)
				}
			}
		}
	}
	if keys == 0 {
		t.Error("found no queue keys to check")
	}
}
