package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle/redistest"
)

// withCluster builds the Dispatcher on the Redis Cluster c, under c's
// prefix, instead of the single Redis setup gives. The bundle's own Redis
// (b.redis) stays unused: b.tasks and b.loops do not see the cluster, and
// clusterTasks takes b.tasks's place.
func withCluster(c *redistest.Cluster) option {
	return func(b *testBundle) { b.cfg.Redis, b.cfg.Prefix = c.Client, c.Prefix }
}

// importEmailContacts imports n contacts c00000... with an email address,
// the tag "vip" and email consent to the newsletter, through the bulk
// import.
func importEmailContacts(t testing.TB, s *storepkg.Store, n int) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range n {
		_ = enc.Encode(storepkg.ImportLine{
			Contact:  dispatcher.Contact{ID: fmt.Sprintf("c%05d", i), Email: fmt.Sprintf("c%05d@example.com", i), Tags: []string{"vip"}},
			Consents: []dispatcher.ConsentEvent{{Channel: channels.Email, Topic: "newsletter", State: dispatcher.Granted, Source: "import"}},
		})
	}
	res, err := s.ImportContacts(context.Background(), &buf, "Europe/Paris", nil)
	if err != nil || res.Imported != n {
		t.Fatalf("import: %+v %v", res, err)
	}
}

// createNewsletter creates an email campaign to the "vip" segment.
func createNewsletter(t testing.TB, b *testBundle, id string) {
	t.Helper()
	ctx := context.Background()
	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "vips", TagsAll: []string{"vip"}}))
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: id, Topic: "newsletter", Segment: "vips",
		Channels: []channels.Kind{channels.Email}, Templates: map[channels.Kind]string{channels.Email: "news-mail"}}))
}

// startByAPI starts campaign id through the API and returns its run.
func startByAPI(t *testing.T, b *testBundle, id string) string {
	t.Helper()
	r := b.api.do("POST", "/v1/campaigns/"+id+"/start", "")
	if r.status != 202 {
		t.Fatalf("start %s: %d %s", id, r.status, r.body)
	}
	run, _ := r.json(t)["run"].(string)
	return run
}

// assertOnePerContact fails t unless msgs hold exactly one message to each
// of the n contacts importEmailContacts made.
func assertOnePerContact(t *testing.T, msgs []smtptest.Received, n int) {
	t.Helper()
	got := map[string]int{}
	for _, m := range msgs {
		for _, to := range m.To {
			got[to]++
		}
	}
	for i := range n {
		addr := fmt.Sprintf("c%05d@example.com", i)
		if got[addr] != 1 {
			t.Errorf("%s received %d messages, want 1", addr, got[addr])
		}
		delete(got, addr)
	}
	if len(got) > 0 {
		t.Errorf("messages to addresses outside the campaign: %v", got)
	}
}

// clusterQueues returns, for each of the Dispatcher's queues that asynq
// knows, its info and the master that holds it.
func clusterQueues(t testing.TB, b *testBundle, c *redistest.Cluster) map[string]struct {
	info   *asynq.QueueInfo
	master string
} {
	t.Helper()
	ctx := context.Background()
	insp := asynq.NewInspectorFromRedisClient(c.Client)
	known, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]struct {
		info   *asynq.QueueInfo
		master string
	}{}
	for q := range b.d.Pipeline.Queues() {
		if !slices.Contains(known, q) {
			continue
		}
		qi, err := insp.GetQueueInfo(q)
		if err != nil {
			t.Fatal(err)
		}
		node, err := c.Client.MasterForKey(ctx, "asynq:{"+q+"}:pending")
		if err != nil {
			t.Fatal(err)
		}
		out[q] = struct {
			info   *asynq.QueueInfo
			master string
		}{qi, node.Options().Addr}
	}
	return out
}

// TestClusterCampaignDeliversOnceToEach runs a campaign of 2,000 contacts
// on a Redis Cluster of three masters, end to end into a real SMTP server:
// its sends spread over send queues on several shards, and every contact
// gets exactly one message.
func TestClusterCampaignDeliversOnceToEach(t *testing.T) {
	t.Parallel()
	c := redistest.NewCluster(t)
	b := setup(t, withBasics(), withCluster(c), withConfig(func(cfg *app.Config) { cfg.Concurrency = 32 }))
	if b.d.Config.SendQueues != app.ClusterSendQueues {
		t.Fatalf("send queues on a cluster: %d, want %d", b.d.Config.SendQueues, app.ClusterSendQueues)
	}
	const n = 2000
	importEmailContacts(t, b.d.Store, n)
	createNewsletter(t, b, "spring")
	b.startWorker(t)

	run := startByAPI(t, b, "spring")
	r := b.waitRun(t, run, 60*time.Second)
	if diff := cmp.Diff(map[string]int64{"planned": n, "sent": n}, r.Counters); diff != "" {
		t.Errorf("run counters (-want +got):\n%s", diff)
	}
	if !r.Balanced {
		t.Errorf("run does not balance: %v", r.Counters)
	}
	assertOnePerContact(t, b.smtp.Messages(), n)
	if cp, err := b.d.Store.Campaign(context.Background(), "spring"); err != nil || cp.State != dispatcher.Completed {
		t.Errorf("campaign: %+v %v, want completed", cp, err)
	}

	// The sends went through send queues on more than one master.
	masters := map[string]int{}
	var processed int
	for q, qi := range clusterQueues(t, b, c) {
		if strings.HasPrefix(q, b.d.Pipeline.Queue("send:")) && qi.info.Processed > 0 {
			masters[qi.master] += qi.info.Processed
			processed += qi.info.Processed
		}
	}
	if len(masters) < 2 {
		t.Errorf("send tasks ran on the queues of %d master(s), want 2 or more: %v", len(masters), masters)
	}
	t.Logf("%d send tasks over %d masters: %v", processed, len(masters), masters)
}

// TestClusterCampaignControlsAndAPISend pauses, resumes and cancels
// through the API on a Redis Cluster, and sends one message through the
// API.
func TestClusterCampaignControlsAndAPISend(t *testing.T) {
	t.Parallel()
	c := redistest.NewCluster(t)
	b := setup(t, withBasics(), withCluster(c))
	const n = 50
	importEmailContacts(t, b.d.Store, n)
	createNewsletter(t, b, "spring")
	createNewsletter(t, b, "autumn")
	ctx := context.Background()
	planned := func(run string) func() bool {
		return func() bool {
			r, err := b.d.Store.Run(ctx, run)
			must(t, err)
			return r.Counters["planned"] == n
		}
	}
	runState := func(run string) string {
		t.Helper()
		r := b.api.do("GET", "/v1/runs/"+url.PathEscape(run), "")
		if r.status != 200 {
			t.Fatalf("GET run: %d %s", r.status, r.body)
		}
		st, _ := r.json(t)["state"].(string)
		return st
	}
	action := func(path string) {
		t.Helper()
		if r := b.api.do("POST", path, ""); r.status != 200 {
			t.Fatalf("POST %s: %d %s", path, r.status, r.body)
		}
	}

	// Planned and gated, not sent: only the plan and batch queues are
	// served until the worker starts.
	stopGate := b.startGate(2)
	spring := startByAPI(t, b, "spring")
	waitFor(t, "spring to be planned", 20*time.Second, planned(spring))
	action("/v1/campaigns/spring/pause")
	if st := runState(spring); st != dispatcher.RunPaused {
		t.Errorf("spring's run is %s after a pause, want %s", st, dispatcher.RunPaused)
	}

	autumn := startByAPI(t, b, "autumn")
	waitFor(t, "autumn to be planned", 20*time.Second, planned(autumn))
	action("/v1/runs/" + url.PathEscape(autumn) + "/cancel")
	must(t, stopGate())
	r, err := b.d.Store.Run(ctx, autumn)
	must(t, err)
	if r.State != dispatcher.RunCancelled || r.Counters["cancelled"] != n || !r.Balanced {
		t.Errorf("autumn's run after a cancel: %s %v balanced=%v, want cancelled with %d cancelled sends", r.State, r.Counters, r.Balanced, n)
	}

	action("/v1/campaigns/spring/resume")
	b.startWorker(t)
	r = b.waitRun(t, spring, 30*time.Second)
	if r.Counters["sent"] != n || !r.Balanced {
		t.Errorf("spring's run: %v balanced=%v, want %d sent", r.Counters, r.Balanced, n)
	}
	assertOnePerContact(t, b.smtp.Messages(), n)

	// An API send, with its idempotency record, on the cluster.
	send := b.api.do("POST", "/v1/sends", `{"contact":"c00007","topic":"orders","channel":"email","template":"news-mail"}`, "Idempotency-Key", "order-7")
	if send.status != 202 {
		t.Fatalf("API send: %d %s", send.status, send.body)
	}
	id, _ := send.json(t)["send"].(string)
	waitFor(t, "the API send to be sent", 20*time.Second, func() bool {
		r := b.api.do("GET", "/v1/sends/"+url.PathEscape(id), "")
		st, _ := r.json(t)["state"].(string)
		return st == dispatcher.StateSent
	})
	if again := b.api.do("POST", "/v1/sends", `{"contact":"c00007","topic":"orders","channel":"email","template":"news-mail"}`, "Idempotency-Key", "order-7"); again.status != 202 || again.json(t)["send"] != id {
		t.Errorf("replayed API send: %d %s, want 202 naming %s", again.status, again.body, id)
	}
	var to7 int
	for _, m := range b.smtp.Messages() {
		if slices.Contains(m.To, "c00007@example.com") {
			to7++
		}
	}
	if to7 != 2 {
		t.Errorf("c00007 received %d messages, want 2 (the campaign's and the API's)", to7)
	}
}
