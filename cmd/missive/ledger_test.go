package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle/redistest"
)

// TestLedgerVerify checks the ledgers from the command line, then edits
// one in Redis by hand and sees the command name the contact and the
// event.
func TestLedgerVerify(t *testing.T) {
	r := redistest.New(t)
	ctx := context.Background()
	secret := "ledger-secret-ledger-secret-ledger!!"
	d := newDispatcher(t, r, secret, "a:"+keyA)
	if err := d.Store.PutTopic(ctx, &dispatcher.Topic{ID: "news", Kind: dispatcher.Marketing}); err != nil {
		t.Fatal(err)
	}
	if res, err := d.Store.ImportContacts(ctx, strings.NewReader(`{"id":"c1","email":"c1@example.com","consents":[{"channel":"email","topic":"news","state":"granted"}]}
{"id":"c2","email":"c2@example.com","consents":[{"channel":"email","topic":"news","state":"granted"}]}
`), "Europe/Paris", nil); err != nil || res.Failed > 0 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	if err := d.Store.RecordConsent(ctx, "c2", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "news", State: dispatcher.Withdrawn, Source: "one-click"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MISSIVE_REDIS_URL": r.URL, "MISSIVE_PREFIX": r.Prefix, "MISSIVE_SECRET": secret}
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := Main(ctx, append([]string{"ledger", "verify"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	if code, out, errOut := run(); code != 0 || out != "" || !strings.Contains(errOut, "2 ledgers checked, 0 with problems") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if code, _, errOut := run("c2"); code != 0 || !strings.Contains(errOut, "c2: 2 events") {
		t.Fatalf("exit %d\nstderr: %s", code, errOut)
	}

	// The withdrawal of c2 turned back into a grant, by hand.
	key := r.Prefix + ":c:{c2}:ledger"
	ev, err := r.Client.LIndex(ctx, key, 1).Result()
	if err != nil {
		t.Fatal(err)
	}
	r.Client.LSet(ctx, key, 1, strings.Replace(ev, `"withdrawn"`, `"granted"`, 1))
	code, out, errOut := run()
	if code != 1 || !strings.Contains(errOut, "2 ledgers checked, 1 with problems") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var rep store.LedgerReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Contact != "c2" || len(rep.Problems) == 0 || rep.Problems[0].Index != 1 || rep.Problems[0].Kind != "edited" {
		t.Fatalf("report: %s (%v)", out, err)
	}
	if strings.Contains(out+errOut, "@example.com") {
		t.Error("output holds an address")
	}

	// Another secret cannot vouch for the ledgers.
	env["MISSIVE_SECRET"] = strings.Repeat("x", 36)
	if code, _, errOut := run("c1"); code != 1 {
		t.Fatalf("another secret: exit %d\nstderr: %s", code, errOut)
	}
}
