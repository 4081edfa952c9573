package api

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// seedRunSends records a run of n sends of mixed outcomes (queued, sent,
// failed, suppressed no_consent and capped, deferred) and returns the ids
// by "state/reason", in the order decided.
func seedRunSends(t *testing.T, b *testBundle, run string, n int) map[string][]string {
	t.Helper()
	ctx := context.Background()
	s := b.d.Store
	_, err := s.CreateRun(ctx, &dispatcher.Run{ID: run, Campaign: "spring", State: dispatcher.RunSending, FireAt: time.Now()})
	must(t, err)
	by := map[string][]string{}
	var ds []storepkg.Decision
	var ts []storepkg.Transition
	for i := range n {
		c := fmt.Sprintf("c%04d", i)
		d := storepkg.Decision{Send: dispatcher.SendID(run, c, channels.Email), Contact: c, Channel: channels.Email, Topic: "news",
			Template: "mail", State: dispatcher.StateQueued}
		k := ""
		switch i % 5 {
		case 0:
			k = "queued/"
		case 1:
			d.State, d.Reason = dispatcher.StateSuppressed, "no_consent"
			k = "suppressed/no_consent"
		case 2:
			d.State, d.Reason = dispatcher.StateSuppressed, "capped"
			k = "suppressed/capped"
		case 3:
			ts = append(ts, storepkg.Transition{Send: d.Send, From: dispatcher.StateQueued, To: dispatcher.StateSent})
			k = "sent/"
		case 4:
			ts = append(ts, storepkg.Transition{Send: d.Send, From: dispatcher.StateQueued, To: dispatcher.StateFailed, Reason: dispatcher.ReasonRejected})
			k = "failed/rejected"
		}
		by[k] = append(by[k], d.Send)
		by[""] = append(by[""], d.Send)
		ds = append(ds, d)
	}
	must(t, s.RecordDecisions(ctx, run, ds, time.Hour))
	_, err = s.TransitionSends(ctx, ts)
	must(t, err)
	return by
}

// listAll pages through GET /v1/runs/{run}/sends?query and returns the
// send ids in order, checking every page's items.
func listAll(t *testing.T, b *testBundle, run, query string, limit int, want func(map[string]any) bool) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("the pages do not end")
		}
		q := url.Values{}
		if query != "" {
			q, _ = url.ParseQuery(query)
		}
		q.Set("limit", fmt.Sprint(limit))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		r := b.api.do("GET", "/v1/runs/"+url.PathEscape(run)+"/sends?"+q.Encode(), "")
		if r.status != 200 {
			t.Fatalf("page %d: %d %s", pages, r.status, r.body)
		}
		page := r.json(t)
		items, _ := page["sends"].([]any)
		if len(items) > limit || page["run"] != run {
			t.Fatalf("page of %d sends for %v, limit %d", len(items), page["run"], limit)
		}
		for _, it := range items {
			m := it.(map[string]any)
			if !want(m) || m["contact"] == "" || (m["channel"] != "email" && m["channel"] != "sms") || m["at"] == nil {
				t.Fatalf("item %v", m)
			}
			ids = append(ids, m["send"].(string))
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			return ids
		}
		cursor = next
	}
}

// TestAPIRunSends pages through a run of 350 sends with mixed outcomes:
// every send once, filtered by outcome and reason, contact ids and no
// address; unknown runs and bad parameters refused.
func TestAPIRunSends(t *testing.T) {
	t.Parallel()
	b := setup(t)
	by := seedRunSends(t, b, "spring-r1", 350)
	seedRunSends(t, b, "spring-r2", 3)

	all := listAll(t, b, "spring-r1", "", 37, func(map[string]any) bool { return true })
	if diff := cmp.Diff(by[""], all); diff != "" {
		t.Errorf("all sends (-want +got):\n%s", diff)
	}
	seen := map[string]bool{}
	for _, id := range all {
		if seen[id] {
			t.Errorf("send %s listed twice", id)
		}
		seen[id] = true
	}
	for _, tc := range []struct{ query, key string }{
		{"outcome=sent", "sent/"},
		{"outcome=queued", "queued/"},
		{"outcome=failed&reason=rejected", "failed/rejected"},
		{"outcome=suppressed&reason=capped", "suppressed/capped"},
		{"reason=no_consent", "suppressed/no_consent"},
	} {
		want := by[tc.key]
		got := listAll(t, b, "spring-r1", tc.query, 9, func(m map[string]any) bool {
			q, _ := url.ParseQuery(tc.query)
			return (q.Get("outcome") == "" || m["state"] == q.Get("outcome")) && (q.Get("reason") == "" || m["reason"] == q.Get("reason"))
		})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.query, diff)
		}
	}
	suppressed := listAll(t, b, "spring-r1", "outcome=suppressed", 500, func(m map[string]any) bool { return m["state"] == "suppressed" })
	if want := slices.Concat(by["suppressed/no_consent"], by["suppressed/capped"]); len(suppressed) != len(want) {
		t.Errorf("%d suppressed, want %d", len(suppressed), len(want))
	}
	if got := listAll(t, b, "spring-r1", "outcome=delivered", 100, func(map[string]any) bool { return false }); len(got) != 0 {
		t.Errorf("delivered: %v", got)
	}

	first := b.api.do("GET", "/v1/runs/spring-r1/sends?limit=10", "").json(t)
	cursor, _ := first["next_cursor"].(string)
	if cursor == "" {
		t.Fatal("no cursor after a first page of 10")
	}
	wantRefused(t, b.api, []refusal{
		{"/v1/runs/nope/sends", 404, ""},
		{"/v1/runs/spring-r1/sends?outcome=lost", 422, "outcome"},
		{"/v1/runs/spring-r1/sends?reason=Bad%20Reason", 422, "reason"},
		{"/v1/runs/spring-r1/sends?limit=0", 422, "limit"},
		{"/v1/runs/spring-r1/sends?limit=501", 422, "limit"},
		{"/v1/runs/spring-r1/sends?limit=ten", 422, "limit"},
		{"/v1/runs/spring-r1/sends?cursor=not-a-cursor", 422, "cursor"},
		{"/v1/runs/spring-r2/sends?cursor=" + cursor, 422, "cursor"}, // another run's
	})
}
