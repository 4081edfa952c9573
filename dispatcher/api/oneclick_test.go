package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// A campaign is queued; a recipient clicks the one-click link of the
// message waiting for them before any worker sends it: that message is not
// sent, and the run counts both the decision and the unsubscribe.
func TestOneClickBeforeTheWorkerRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedMailing(t, b, 3)
	ctx := context.Background()
	srv := b.srv

	// Plan and gate only: the sends wait in their queue.
	gctx, stopGate := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.d.Pipeline.ServeQueues(gctx, map[string]int{b.d.Pipeline.Queue("plan"): 1, b.d.Pipeline.Queue("batch"): 1})
	}()
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
	waitFor(t, "three queued sends", 10*time.Second, func() bool {
		r, err := b.d.Store.Run(ctx, run)
		return err == nil && r.Counters["queued"] == 3
	})
	stopGate()
	must(t, <-done)

	// The link the waiting message carries, clicked as RFC 8058 says.
	send := dispatcher.SendID(run, "m0001", channels.Email)
	link, err := b.d.Pipeline.UnsubscribeURL("m0001", channels.Email, "newsletter", send)
	must(t, err)
	link = srv.URL + strings.TrimPrefix(link, b.cfg.PublicURL)
	res, err := http.Post(link, "application/x-www-form-urlencoded", strings.NewReader(url.Values{"List-Unsubscribe": {"One-Click"}}.Encode()))
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("one-click answered %d", res.StatusCode)
	}

	b.startWorker(t)
	r := b.waitRun(t, run, 20*time.Second)
	if r.Counters["sent"] != 2 || r.Counters["no_consent"] != 1 || !r.Balanced {
		t.Errorf("counters %v, want 2 sent and 1 no_consent", r.Counters)
	}
	if r.Feedback[storepkg.FeedbackUnsubscribes] != 1 {
		t.Errorf("run feedback %v, want 1 unsubscribe", r.Feedback)
	}
	for _, m := range b.smtp.Messages() {
		if m.To[0] == "m0001@example.com" {
			t.Error("the message went out after its recipient unsubscribed")
		}
	}
	f, err := b.d.Store.TopicFeedback(ctx, "newsletter")
	must(t, err)
	if f[storepkg.FeedbackUnsubscribes] != 1 {
		t.Errorf("topic feedback %v, want 1 unsubscribe", f)
	}
	// A second click changes nothing and counts nothing.
	res, err = http.Post(link, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	must(t, err)
	res.Body.Close()
	if r, _ := b.d.Store.Run(ctx, run); r.Feedback[storepkg.FeedbackUnsubscribes] != 1 || res.StatusCode != http.StatusOK {
		t.Errorf("second click: status %d, feedback %v", res.StatusCode, r.Feedback)
	}
}

// Token keys rotate: links signed with the old key keep working while it
// is listed, new links use the new key, and a removed key's links stop.
func TestTokenKeyRotation(t *testing.T) {
	t.Parallel()
	old := []byte("old-token-key-old-token-key-0123456789")
	next := []byte("new-token-key-new-token-key-0123456789")
	b := setup(t, withConfig(func(c *app.Config) { c.TokenKeys, c.ActiveTokenKey = map[string][]byte{"k1": old}, "k1" }))
	seedMailing(t, b, 1)
	oldLink, err := b.d.Pipeline.UnsubscribeURL("m0000", channels.Email, "newsletter", "")
	must(t, err)

	click := func(d *app.Dispatcher, link string) int {
		srv := httptest.NewServer(Handler(d, nil))
		defer srv.Close()
		res, err := http.Post(srv.URL+strings.TrimPrefix(link, b.cfg.PublicURL), "application/x-www-form-urlencoded",
			strings.NewReader("List-Unsubscribe=One-Click"))
		must(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	rotated := b.cfg
	rotated.TokenKeys, rotated.ActiveTokenKey = map[string][]byte{"k2": next, "k1": old}, "k2"
	d2, err := app.New(rotated)
	must(t, err)
	newLink, err := d2.Pipeline.UnsubscribeURL("m0000", channels.Email, "newsletter", "")
	must(t, err)
	if newLink == oldLink {
		t.Fatal("the new key signs the same token")
	}
	if code := click(d2, oldLink); code != http.StatusOK {
		t.Errorf("old link during the grace period: %d, want 200", code)
	}
	retired := b.cfg
	retired.TokenKeys, retired.ActiveTokenKey = map[string][]byte{"k2": next}, "k2"
	d3, err := app.New(retired)
	must(t, err)
	if code := click(d3, oldLink); code != http.StatusBadRequest {
		t.Errorf("old link after its key was removed: %d, want 400", code)
	}
	if code := click(d3, newLink); code != http.StatusOK {
		t.Errorf("new link: %d, want 200", code)
	}
}
