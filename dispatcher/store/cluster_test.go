package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/throttle/redistest"
)

// setupCluster is setup on a Redis Cluster of three masters.
func setupCluster(t *testing.T) (*Store, context.Context) {
	t.Helper()
	c := redistest.NewCluster(t)
	s := newTestStore(t, c.Client, c.Prefix)
	if !IsCluster(s.Redis) {
		t.Fatal("IsCluster is false on a cluster client")
	}
	return s, t.Context()
}

// TestClusterRuns creates, finishes and lists runs on a Redis Cluster,
// where a run's record and the indexes of runs live on other slots, and
// repairs what a crash between the steps leaves.
func TestClusterRuns(t *testing.T) {
	s, ctx := setupCluster(t)
	run := func(id string) *dispatcher.Run {
		return &dispatcher.Run{ID: id, Campaign: "spring", State: dispatcher.RunPlanning, FireAt: testNow}
	}
	active := func() []string {
		t.Helper()
		ids, err := s.ActiveRuns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for i, want := range []bool{true, false} {
		created, err := s.CreateRun(ctx, run("r1"))
		if err != nil || created != want {
			t.Fatalf("CreateRun #%d: %v %v, want %v", i+1, created, err, want)
		}
	}
	if diff := cmp.Diff([]string{"r1"}, active()); diff != "" {
		t.Errorf("active runs (-want +got):\n%s", diff)
	}
	if ids, err := s.Runs(ctx, "spring"); err != nil || !cmp.Equal(ids, []string{"r1"}) {
		t.Errorf("runs of spring: %v %v", ids, err)
	}
	if err := s.SetRunState(ctx, "r1", dispatcher.RunPaused); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"r1"}, active()); diff != "" {
		t.Errorf("active runs with r1 paused (-want +got):\n%s", diff)
	}
	if err := s.SetRunState(ctx, "r1", dispatcher.RunCompleted); err != nil {
		t.Fatal(err)
	}
	if got := active(); len(got) != 0 {
		t.Errorf("active runs after r1 completed: %v", got)
	}
	// A start repeated with its key after the run finished leaves it
	// finished and inactive.
	if created, err := s.CreateRun(ctx, run("r1")); err != nil || created {
		t.Fatalf("CreateRun of a finished run: %v %v", created, err)
	}
	if got := active(); len(got) != 0 {
		t.Errorf("active runs after CreateRun of a finished run: %v", got)
	}
	r, err := s.Run(ctx, "r1")
	if err != nil || r.State != dispatcher.RunCompleted || r.Finished.IsZero() {
		t.Errorf("r1: %+v %v, want completed with its end time", r, err)
	}

	// A crash after the record, before the indexes: the next call indexes.
	if err := createRunScript.Run(ctx, s.Redis, []string{s.RunKey("r2")}, "spring", dispatcher.RunPlanning, ms(testNow), ms(testNow)).Err(); err != nil {
		t.Fatal(err)
	}
	if created, err := s.CreateRun(ctx, run("r2")); err != nil || created {
		t.Fatalf("CreateRun after a crash: %v %v, want not created", created, err)
	}
	if diff := cmp.Diff([]string{"r2"}, active()); diff != "" {
		t.Errorf("active runs after the repair (-want +got):\n%s", diff)
	}
	if ids, _ := s.Runs(ctx, "spring"); len(ids) != 2 {
		t.Errorf("runs of spring after the repair: %v", ids)
	}
	// A crash after the state, before the set: ActiveRuns drops the run.
	if err := s.Redis.HSet(ctx, s.RunKey("r2"), "state", dispatcher.RunCancelled).Err(); err != nil {
		t.Fatal(err)
	}
	if got := active(); len(got) != 0 {
		t.Errorf("active runs with r2 cancelled: %v", got)
	}
	if n, _ := s.Redis.SCard(ctx, s.Key("runs", "active")).Result(); n != 0 {
		t.Errorf("the set of active runs still holds %d runs", n)
	}
}

// TestClusterRunScripts runs the scripts of a run's sends (decisions,
// transitions, batches) on a Redis Cluster, where they rely on the run's
// hash tag.
func TestClusterRunScripts(t *testing.T) {
	s, ctx := setupCluster(t)
	if _, err := s.CreateRun(ctx, &dispatcher.Run{ID: "r1", Campaign: "spring", State: dispatcher.RunSending, FireAt: testNow}); err != nil {
		t.Fatal(err)
	}
	var ds []Decision
	var ts []Transition
	for i := range 20 {
		c := fmt.Sprintf("c%02d", i)
		id := dispatcher.SendID("r1", c, channels.Email)
		ds = append(ds, Decision{Send: id, Contact: c, Channel: channels.Email, Topic: "news", Template: "t", State: dispatcher.StateQueued})
		ts = append(ts, Transition{Send: id, From: dispatcher.StateQueued, To: dispatcher.StateSent})
	}
	if err := s.RecordDecisions(ctx, "r1", ds, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexSends(ctx, ds); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishPlan(ctx, "r1", 1); err != nil {
		t.Fatal(err)
	}
	if done, err := s.FinishBatch(ctx, "r1", "0"); err != nil || done {
		t.Fatalf("FinishBatch with sends in flight: %v %v", done, err)
	}
	res, err := s.TransitionSends(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	if !res[len(res)-1].RunDone {
		t.Errorf("the last transition does not say the run is done: %+v", res[len(res)-1])
	}
	r, err := s.Run(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int64{"planned": 20, "sent": 20}, r.Counters); diff != "" || !r.Balanced {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	sends, err := s.ContactSends(ctx, "c03")
	if err != nil || len(sends) != 1 {
		t.Errorf("sends of c03: %v %v", sends, err)
	}
	// The run's index and a send's data, in the run's slot.
	var listed []string
	for from := int64(0); ; {
		p, err := s.RunSends(ctx, "r1", from, 7, 70, RunSendsFilter{State: dispatcher.StateSent})
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, idsOf(p.Sends)...)
		if from = p.Next; from == 0 {
			break
		}
	}
	var want []string
	for _, d := range ds {
		want = append(want, d.Send)
	}
	if diff := cmp.Diff(want, listed); diff != "" {
		t.Errorf("the run's sends (-want +got):\n%s", diff)
	}
	if ok, err := s.SetSendData(ctx, ds[0].Send, map[string]any{"order": "A-1"}); !ok || err != nil {
		t.Errorf("send data: %v %v", ok, err)
	}
	first, err := s.Sends(ctx, []string{ds[0].Send})
	must(t, err)
	if n, _, err := s.DeleteSends(ctx, "c00", []string{ds[0].Send}, first); n != 1 || err != nil {
		t.Fatalf("delete sends: %d %v", n, err)
	}
	p, err := s.RunSends(ctx, "r1", 0, 100, 100, RunSendsFilter{})
	if err != nil || len(p.Sends) != 19 || p.Sends[0].ID != ds[1].Send {
		t.Errorf("the run's sends after one is erased: %d %v", len(p.Sends), err)
	}
}

// TestClusterContactTransactions runs the store's transactions and
// scripts over a contact's keys on a Redis Cluster, with contacts spread
// over every master.
func TestClusterContactTransactions(t *testing.T) {
	s, ctx := setupCluster(t)
	cc := s.Redis.(*redis.ClusterClient)
	masters := map[string]bool{}
	for i := range 12 {
		id := fmt.Sprintf("c%02d", i)
		putContact(t, s, id, id+"@example.com")
		node, err := cc.MasterForKey(ctx, s.ContactKey(id))
		if err != nil {
			t.Fatal(err)
		}
		masters[node.Options().Addr] = true
	}
	if len(masters) < 2 {
		t.Fatalf("12 contacts on %d master(s)", len(masters))
	}
	granted := dispatcher.ConsentEvent{Channel: channels.Email, Topic: "news", State: dispatcher.Granted, Source: "api",
		Evidence: map[string]string{"ip_hash": "abc", "form": "f1"}}
	for i := range 12 {
		id := fmt.Sprintf("c%02d", i)
		if err := s.RecordConsent(ctx, id, granted); err != nil {
			t.Fatal(err)
		}
		evs, err := s.ChangeConsents(ctx, id, true, func(c *dispatcher.Contact, cur map[string]ConsentCurrent) []dispatcher.ConsentEvent {
			return []dispatcher.ConsentEvent{{Channel: channels.Email, Topic: "promo", State: dispatcher.Granted, Source: "api"}}
		})
		if err != nil || len(evs) != 1 {
			t.Fatalf("ChangeConsents %s: %v %v", id, evs, err)
		}
		g, err := s.GrantSignup(ctx, id, "h"+id, []dispatcher.ConsentEvent{granted}, testNow, time.Hour)
		if err != nil || g != SignupGranted {
			t.Fatalf("GrantSignup %s: %v %v", id, g, err)
		}
		if g, err := s.GrantSignup(ctx, id, "h"+id, []dispatcher.ConsentEvent{granted}, testNow, time.Hour); err != nil || g != SignupAlreadyGranted {
			t.Fatalf("GrantSignup again %s: %v %v", id, g, err)
		}
	}
	if n, err := s.CountSoftBounce(ctx, channels.Email, "c01@example.com", "s1", testNow, time.Hour); err != nil || n != 1 {
		t.Errorf("CountSoftBounce: %d %v", n, err)
	}
	if err := s.SuppressStop(ctx, channels.SMS, "+33612345678"); err != nil {
		t.Fatal(err)
	}
	if err := s.UnsuppressStop(ctx, channels.SMS, "+33612345678"); err != nil {
		t.Fatal(err)
	}

	// Rotation re-seals every contact, on every master.
	keys, err := NewKeyring(map[string][]byte{"k1": make32(1), "k2": make32(2)}, "k2")
	if err != nil {
		t.Fatal(err)
	}
	s.Keys = keys
	if n, err := s.RotateData(ctx, nil); err != nil || n.Contacts != 12 {
		t.Errorf("RotateData: %+v %v, want 12 contacts", n, err)
	}

	// Erasure of c05: the address index found through the contact's set,
	// then by scanning every master; the record with its keys.
	if n, err := s.PseudonymizeLedger(ctx, "c05"); err != nil || n != 3 {
		t.Errorf("PseudonymizeLedger: %d %v, want 3 events", n, err)
	}
	if n, err := s.EraseAddressesOf(ctx, "c05"); err != nil || n != 1 {
		t.Errorf("EraseAddressesOf: %d %v, want 1", n, err)
	}
	putContact(t, s, "c05", "c05@example.com")
	if err := s.Redis.Del(ctx, s.AddressesKey("c05")).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.EraseAddressesOf(ctx, "c05"); err != nil || n != 1 {
		t.Errorf("EraseAddressesOf by scanning: %d %v, want 1", n, err)
	}
	if n, err := s.DeleteContact(ctx, "c05"); err != nil || n != 2 {
		t.Errorf("DeleteContact: %d %v, want 2 consents", n, err)
	}
	if ok, _ := s.ContactExists(ctx, "c05"); ok {
		t.Error("c05 still exists")
	}
	if n, _ := s.CountContacts(ctx); n != 11 {
		t.Errorf("%d contacts left, want 11", n)
	}
}

// TestClusterKeyHolders announces and lists processes' data keys on a
// Redis Cluster, where the announcements and their index live on other
// slots.
func TestClusterKeyHolders(t *testing.T) {
	s, ctx := setupCluster(t)
	var stops []func()
	for _, role := range []string{"api", "worker", "scheduler", "worker"} {
		stop, err := s.AnnounceKeys(ctx, role, nil)
		if err != nil {
			t.Fatal(err)
		}
		stops = append(stops, stop)
	}
	if got, err := s.KeyHolders(ctx); err != nil || len(got) != 4 {
		t.Fatalf("KeyHolders = %+v, %v; want 4 processes", got, err)
	}
	stops[1]()
	stops[3]()
	got, err := s.KeyHolders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, h := range got {
		roles = append(roles, h.Role)
	}
	slices.Sort(roles)
	if diff := cmp.Diff([]string{"api", "scheduler"}, roles); diff != "" {
		t.Errorf("after both workers stopped (-want +got):\n%s", diff)
	}
	stops[0]()
	stops[2]()
}

// TestClusterSequences stores, versions and pauses a sequence and takes an
// enrolment through its life on a Redis Cluster: a sequence and its
// versions are written in one transaction, so they share a slot.
func TestClusterSequences(t *testing.T) {
	s, ctx := setupCluster(t)
	seq := &dispatcher.Sequence{ID: "welcome", Topic: "news", Trigger: dispatcher.SequenceTrigger{Signup: true},
		Steps: []dispatcher.SequenceStep{{Send: &dispatcher.StepSend{Channel: channels.Email, Template: "hello"}}}}
	if got, made, err := s.PutSequence(ctx, seq, false, testNow); err != nil || !made || got.Version != 1 {
		t.Fatalf("PutSequence: %+v %v %v", got, made, err)
	}
	seq.Steps = append(seq.Steps, dispatcher.SequenceStep{Send: &dispatcher.StepSend{Channel: channels.Email, Template: "again"}})
	if got, made, err := s.PutSequence(ctx, seq, true, testNow); err != nil || !made || got.Version != 2 || got.MovedFrom != 2 {
		t.Fatalf("PutSequence of a new version: %+v %v %v", got, made, err)
	}
	if v1, err := s.SequenceVersion(ctx, "welcome", 1); err != nil || len(v1.Steps) != 1 {
		t.Fatalf("version 1: %+v %v", v1, err)
	}
	if got, err := s.SetSequencePaused(ctx, "welcome", true, testNow); err != nil || !got.Paused {
		t.Fatalf("SetSequencePaused: %+v %v", got, err)
	}
	r, created, err := s.Enrol(ctx, testEnrolment("c1", testNow), false)
	if err != nil || !created {
		t.Fatalf("Enrol: %v %v", created, err)
	}
	r.State = dispatcher.EnrolmentCompleted
	if ok, err := s.SaveEnrolment(ctx, r); !ok || err != nil {
		t.Fatalf("SaveEnrolment: %v %v", ok, err)
	}
	if active, stats, err := s.SequenceStats(ctx, "welcome"); err != nil || active != 0 || stats["completed"] != 1 || stats["enrolled"] != 1 {
		t.Fatalf("stats %d %v %v", active, stats, err)
	}
}
