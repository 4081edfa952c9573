package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// runOf300 records 300 decisions of run r1 (queued, no_consent, capped in
// turn) and moves every queued send of an even contact number to sent.
// It returns the ids by state/reason and all in the order decided.
func runOf300(t *testing.T, s *Store) (by map[string][]string, all []string) {
	t.Helper()
	ctx := t.Context()
	by = map[string][]string{}
	var ds []Decision
	var ts []Transition
	for i := range 300 {
		c := fmt.Sprintf("c%03d", i)
		d := Decision{Send: dispatcher.SendID("r1", c, channels.Email), Contact: c, Channel: channels.Email, Topic: "news", Template: "mail",
			State: dispatcher.StateQueued}
		switch i % 3 {
		case 1:
			d.State, d.Reason = dispatcher.StateSuppressed, "no_consent"
		case 2:
			d.State, d.Reason = dispatcher.StateSuppressed, "capped"
		}
		k := d.State + "/" + d.Reason
		if d.State == dispatcher.StateQueued && i%2 == 0 {
			ts = append(ts, Transition{Send: d.Send, From: dispatcher.StateQueued, To: dispatcher.StateSent})
			k = dispatcher.StateSent + "/"
		}
		by[k] = append(by[k], d.Send)
		ds = append(ds, d)
		all = append(all, d.Send)
	}
	// Two batches, as the planner writes them; the second one twice, as
	// a retried batch does: it adds nothing to the index.
	must(t, s.RecordDecisions(ctx, "r1", ds[:170], time.Minute))
	must(t, s.RecordDecisions(ctx, "r1", ds[170:], time.Minute))
	must(t, s.RecordDecisions(ctx, "r1", ds[170:], time.Minute))
	if _, err := s.TransitionSends(ctx, ts); err != nil {
		t.Fatal(err)
	}
	return by, all
}

// pages walks the run's sends page by page and returns the ids in order.
func pages(t *testing.T, s *Store, limit, budget int, f RunSendsFilter) (ids []string, n int) {
	t.Helper()
	var from int64
	for {
		p, err := s.RunSends(t.Context(), "r1", from, limit, budget, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Sends) > limit {
			t.Fatalf("page of %d sends, limit %d", len(p.Sends), limit)
		}
		for _, sd := range p.Sends {
			if !f.match(sd) || sd.Run != "r1" || sd.Contact == "" || sd.Channel != channels.Email || sd.UpdatedAt.IsZero() {
				t.Fatalf("send %+v does not belong in the page of %+v", sd, f)
			}
			ids = append(ids, sd.ID)
		}
		n++
		if p.Next == 0 {
			return ids, n
		}
		if p.Next <= from || n > 1000 {
			t.Fatalf("next %d after %d", p.Next, from)
		}
		from = p.Next
	}
}

// TestRunSendsPages pages through a run of 300 sends of mixed outcomes:
// each send once, in the order decided, with or without a filter, when a
// page ends exactly at the index's end too.
func TestRunSendsPages(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	by, all := runOf300(t, s)
	if got := s.Redis.LLen(ctx, s.runSendsKey("r1")).Val(); got != 300 {
		t.Fatalf("index of %d entries, want 300", got)
	}
	for _, limit := range []int{37, 100, 300, 500} {
		got, n := pages(t, s, limit, 5000, RunSendsFilter{})
		if diff := cmp.Diff(all, got); diff != "" {
			t.Errorf("limit %d: sends (-want +got):\n%s", limit, diff)
		}
		if want := (300 + limit - 1) / limit; n != want {
			t.Errorf("limit %d: %d pages, want %d", limit, n, want)
		}
	}
	for k, want := range by {
		state, reason, _ := strings.Cut(k, "/")
		f := RunSendsFilter{State: state, Reason: reason}
		// A budget smaller than the run: short pages, none missed.
		got, _ := pages(t, s, 7, 40, f)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: sends (-want +got):\n%s", k, diff)
		}
	}
	got, _ := pages(t, s, 50, 5000, RunSendsFilter{State: dispatcher.StateSuppressed})
	if len(got) != len(by["suppressed/no_consent"])+len(by["suppressed/capped"]) {
		t.Errorf("%d suppressed sends", len(got))
	}
	// Expires with the newest send.
	ttlAbout(t, s, s.runSendsKey("r1"), time.Hour)
	// No run, no sends.
	p, err := s.RunSends(ctx, "nope", 0, 10, 100, RunSendsFilter{})
	if err != nil || len(p.Sends) != 0 || p.Next != 0 {
		t.Errorf("unknown run: %+v %v", p, err)
	}
}

// TestRunSendsErased: an erased send leaves the listing, and the
// positions of the others hold, so a page read after the erasure neither
// skips nor repeats a send.
func TestRunSendsErased(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	_, all := runOf300(t, s)
	first, err := s.RunSends(ctx, "r1", 0, 100, 1000, RunSendsFilter{})
	if err != nil {
		t.Fatal(err)
	}
	erased := map[string]bool{all[5]: true, all[150]: true, all[151]: true}
	for id := range erased {
		sends, err := s.Sends(ctx, []string{id})
		must(t, err)
		if _, _, err := s.DeleteSends(ctx, sends[0].Contact, []string{id}, sends); err != nil {
			t.Fatal(err)
		}
	}
	got := idsOf(first.Sends)
	for from := first.Next; from != 0; {
		p, err := s.RunSends(ctx, "r1", from, 100, 1000, RunSendsFilter{})
		must(t, err)
		got = append(got, idsOf(p.Sends)...)
		from = p.Next
	}
	var want []string
	for i, id := range all {
		if i < 100 || !erased[id] {
			want = append(want, id)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sends (-want +got):\n%s", diff)
	}
	index := s.Redis.LRange(ctx, s.runSendsKey("r1"), 0, -1).Val()
	if len(index) != 300 {
		t.Errorf("index of %d entries, want 300: positions moved", len(index))
	}
	for _, id := range index {
		if erased[id] {
			t.Errorf("erased send still in the run's index")
		}
	}
}

func idsOf(ss []*dispatcher.Send) []string {
	out := make([]string, len(ss))
	for i, sd := range ss {
		out[i] = sd.ID
	}
	return out
}

// TestSendData: a send's data is sealed in its record, bound to the send,
// written once, never brought back without its record, and expires with
// it.
func TestSendData(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	a, b := dispatcher.SendID("r1", "c1", channels.Email), dispatcher.SendID("r1", "c2", channels.Email)
	must(t, s.RecordDecisions(ctx, "r1", []Decision{
		{Send: a, Contact: "c1", Channel: channels.Email, Topic: "orders", Template: "mail", State: dispatcher.StateQueued},
		{Send: b, Contact: "c2", Channel: channels.Email, Topic: "orders", Template: "mail", State: dispatcher.StateQueued},
	}, time.Minute))
	data, err := dispatcher.ParseSendData(json.RawMessage(`{"order":{"number":"ZX-98123","total":19.90}}`))
	must(t, err)
	if ok, err := s.SetSendData(ctx, a, data); !ok || err != nil {
		t.Fatalf("set: %v %v", ok, err)
	}
	other, _ := dispatcher.ParseSendData(json.RawMessage(`{"order":{"number":"other"}}`))
	if ok, err := s.SetSendData(ctx, a, other); ok || err != nil {
		t.Fatalf("second set: %v %v, want no write", ok, err)
	}
	raw := s.Redis.HGet(ctx, s.SendKey(a), sendDataField).Val()
	if strings.Contains(raw, "ZX-98123") || strings.Contains(raw, "19.90") || strings.Contains(raw, "order") {
		t.Fatal("the data is readable in Redis")
	}
	sd, err := s.Send(ctx, a)
	must(t, err)
	got, err := s.OpenSendData(a, sd.Data)
	must(t, err)
	if diff := cmp.Diff(data, got); diff != "" {
		t.Errorf("data (-want +got):\n%s", diff)
	}
	// Moved to another send, it does not open.
	if _, err := s.OpenSendData(b, sd.Data); err == nil {
		t.Error("data opened under another send")
	}
	ttlAbout(t, s, s.SendKey(a), time.Hour)
	// A record gone is not brought back by its data.
	must(t, s.Redis.Del(ctx, s.SendKey(b)).Err())
	if ok, err := s.SetSendData(ctx, b, data); ok || err != nil || s.Redis.Exists(ctx, s.SendKey(b)).Val() != 0 {
		t.Fatalf("set on a missing send: %v %v", ok, err)
	}
	// Its digest is keyed and stable, and tells other data apart.
	d1, _ := s.SendDataDigest(data)
	d2, _ := s.SendDataDigest(data)
	d3, _ := s.SendDataDigest(other)
	if d1 != d2 || d1 == d3 {
		t.Errorf("digests %s %s %s", d1, d2, d3)
	}
}
