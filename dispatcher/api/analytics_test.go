package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/bounce"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/feedback"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// analyticsStart is 10:20 UTC on a Monday: the run's hour starts at 10:00.
var analyticsStart = time.Date(2026, 3, 2, 10, 20, 0, 0, time.UTC)

// startBounceListener serves a bounce SMTP listener for b's Dispatcher, as
// missive serve wires it, and returns its address.
func startBounceListener(t *testing.T, b *testBundle, domain string) string {
	t.Helper()
	l, err := bounce.Listen(bounce.ListenerConfig{
		Addr: "127.0.0.1:0", Domain: domain, Logger: slog.New(slog.DiscardHandler),
		CheckToken: b.d.Feedback.ValidVERP,
		Handle:     b.d.HandleBounceReport,
	})
	must(t, err)
	t.Cleanup(func() { l.Close() })
	return l.Addr()
}

// mailReport delivers a report mail of testdata/bounces to the bounce
// listener at addr, for the envelope sender (VERP) of a message.
func mailReport(t *testing.T, addr, verp, sample string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "bounces", sample))
	must(t, err)
	c, err := smtp.Dial(addr)
	must(t, err)
	defer c.Close()
	must(t, c.Hello("mx.example.org"))
	must(t, c.Mail("", nil))
	must(t, c.Rcpt(verp, nil))
	w, err := c.Data()
	must(t, err)
	_, err = w.Write(data)
	must(t, err)
	must(t, w.Close())
	must(t, c.Quit())
}

var oneClickURL = regexp.MustCompile(`(?m)^List-Unsubscribe: <[^>]*/u/([^>]+)>`)

// A run of 35 emails over six domains, one refused at once, with bounces and a complaint
// coming back as mails to the bounce listener, deliveries reported, and
// an unsubscribe by one click: the run's and the topic's analytics come
// out exact, and the small company's domain is folded into "other".
func TestAnalyticsOfARun(t *testing.T) {
	t.Parallel()
	const bounceDomain = "bounce.shop.example"
	b := setup(t, withClock(analyticsStart), withBasics(), withPublicURL(), withConfig(func(c *app.Config) {
		c.BounceDomain = bounceDomain
		c.Feedback = feedback.Policy{MinSample: 1000} // no pause: the figures are the point
	}))
	ctx := context.Background()
	s := b.d.Store
	domains := []struct {
		domain string
		n      int
	}{{"gmail.com", 6}, {"googlemail.com", 6}, {"orange.fr", 5}, {"wanadoo.fr", 5}, {"hotmail.fr", 10}, {"petite-boite.fr", 3}}
	for _, d := range domains {
		for i := range d.n {
			id := fmt.Sprintf("%s-%d", strings.Split(d.domain, ".")[0], i)
			must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: id, Email: fmt.Sprintf("p%d@%s", i, d.domain)}, "Europe/Paris"))
			grantConsent(t, b, id, channels.Email)
		}
	}
	must(t, s.PutSegment(ctx, &dispatcher.Segment{ID: "all"}))
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "spring", Topic: "newsletter", Segment: "all",
		Channels: []channels.Kind{channels.Email}, Templates: map[channels.Kind]string{channels.Email: "news-mail"}}))
	listener := startBounceListener(t, b, bounceDomain)
	// One hotmail address does not exist: the relay refuses it at once.
	b.smtp.Reject("p9@hotmail.fr", 550, "5.1.1", "no such user")
	counts := &countCalls{}
	b.redis.Client.AddHook(counts)
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "spring", b.clock.Now())
	must(t, err)
	b.waitRun(t, run, 30*time.Second)
	// The send path counts in the round trips it makes anyway, one call
	// per counted key (the run's, the topic's day) and settlement, not
	// one per message.
	if calls, most := counts.result(); calls == 0 || calls >= 35 || most > 2 {
		t.Errorf("%d calls counting, at most %d in one round trip; want fewer than one a message, 2 a round trip at most", calls, most)
	}

	msgs := map[string]struct{ verp, data string }{}
	for _, m := range b.smtp.Messages() {
		msgs[m.To[0]] = struct{ verp, data string }{m.From, string(m.Data)}
	}
	if len(msgs) != 34 {
		t.Fatalf("%d recipients reached, want 34", len(msgs))
	}
	// 11:05: two hard bounces at gmail (one from each of its domains), one
	// at the small company, a soft one at orange; five deliveries reported
	// at hotmail.
	b.clock.Add(45 * time.Minute)
	mailReport(t, listener, msgs["p0@gmail.com"].verp, "lhost-postfix-01.eml")
	mailReport(t, listener, msgs["p0@googlemail.com"].verp, "lhost-gmail-01.eml")
	mailReport(t, listener, msgs["p0@petite-boite.fr"].verp, "rhost-franceptt-01.eml")
	mailReport(t, listener, msgs["p0@orange.fr"].verp, "lhost-exim-01.eml")
	for i := range 5 {
		must(t, b.d.Feedback.RecordDelivery(ctx, channels.Feedback{Send: dispatcher.SendID(run, fmt.Sprintf("hotmail-%d", i), channels.Email),
			Kind: channels.Delivered, Source: "ses"}))
	}
	// The same bounce again changes nothing.
	mailReport(t, listener, msgs["p0@gmail.com"].verp, "lhost-postfix-01.eml")
	// 12:40: a complaint at gmail, and a one-click unsubscribe.
	b.clock.Add(95 * time.Minute)
	mailReport(t, listener, msgs["p1@gmail.com"].verp, "arf-01.eml")
	tok := oneClickURL.FindStringSubmatch(msgs["p2@gmail.com"].data)
	if tok == nil {
		t.Fatal("no one-click link in the message")
	}
	res, err := http.Post(b.srv.URL+"/u/"+strings.TrimSpace(tok[1]), "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	must(t, err)
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("one-click unsubscribe: %d", res.StatusCode)
	}

	hour := func(h int) time.Time { return time.Date(2026, 3, 2, h, 0, 0, 0, time.UTC) }
	totals := storepkg.Counts{Email: storepkg.EmailCounts{Sent: 35, Delivered: 5, BouncedHard: 4, BouncedSoft: 1, Complained: 1}, Unsubscribed: 1}
	// 4 hard bounces of 35 sent; 1 complaint and 1 unsubscribe of 30
	// accepted.
	rates := storepkg.Rates{BounceRate: ptr(4.0 / 35), ComplaintRate: ptr(1.0 / 30), UnsubscribeRate: ptr(1.0 / 30), ComplaintLevel: storepkg.LevelAboveLimit}
	doms := []storepkg.DomainCounts{
		{Domain: "gmail", EmailCounts: storepkg.EmailCounts{Sent: 12, BouncedHard: 2, Complained: 1}, BounceRate: ptr(2.0 / 12), ComplaintRate: ptr(1.0 / 10), ComplaintLevel: storepkg.LevelAboveLimit},
		{Domain: "microsoft", EmailCounts: storepkg.EmailCounts{Sent: 10, Delivered: 5, BouncedHard: 1}, BounceRate: ptr(0.1), ComplaintRate: ptr(0), ComplaintLevel: storepkg.LevelOK},
		{Domain: "orange", EmailCounts: storepkg.EmailCounts{Sent: 10, BouncedSoft: 1}, BounceRate: ptr(0), ComplaintRate: ptr(0), ComplaintLevel: storepkg.LevelOK},
		// petite-boite.fr: 3 recipients, fewer than 10.
		{Domain: storepkg.OtherDomain, EmailCounts: storepkg.EmailCounts{Sent: 3, BouncedHard: 1}, BounceRate: ptr(1.0 / 3), ComplaintRate: ptr(0), ComplaintLevel: storepkg.LevelOK},
	}
	wantRun := storepkg.Report{
		Run: run, Bucket: "hour",
		Series: []storepkg.Bucket{
			{Start: hour(10), Counts: storepkg.Counts{Email: storepkg.EmailCounts{Sent: 35, BouncedHard: 1}}},
			{Start: hour(11), Counts: storepkg.Counts{Email: storepkg.EmailCounts{Delivered: 5, BouncedHard: 3, BouncedSoft: 1}}},
			{Start: hour(12), Counts: storepkg.Counts{Email: storepkg.EmailCounts{Complained: 1}, Unsubscribed: 1}},
		},
		Totals: totals, Rates: rates, Domains: doms, MinDomainRecipients: 10,
	}
	if diff := cmp.Diff(wantRun, getReport(t, b, "/v1/runs/"+run+"/analytics")); diff != "" {
		t.Errorf("run analytics (-want +got):\n%s", diff)
	}
	wantTopic := storepkg.Report{
		Topic: "newsletter", Bucket: "day", From: "2026-03-01", To: "2026-03-02",
		Series: []storepkg.Bucket{{Start: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), Counts: totals}},
		Totals: totals, Rates: rates, Domains: doms, MinDomainRecipients: 10,
	}
	if diff := cmp.Diff(wantTopic, getReport(t, b, "/v1/topics/newsletter/analytics?from=2026-03-01&to=2026-03-02")); diff != "" {
		t.Errorf("topic analytics (-want +got):\n%s", diff)
	}
	// Without a period: the last 30 days up to today.
	if got := getReport(t, b, "/v1/topics/newsletter/analytics"); got.From != "2026-02-01" || got.To != "2026-03-02" || got.Totals != totals {
		t.Errorf("default period %s..%s, totals %+v", got.From, got.To, got.Totals)
	}

	// The counters hold no address, and the send records only the
	// provider group.
	keys, err := s.Redis.Keys(ctx, b.redis.Prefix+":*an*").Result()
	must(t, err)
	n := 0
	for _, k := range keys {
		if !strings.HasSuffix(k, "}:an") && !strings.Contains(k, ":topican:") {
			continue
		}
		n++
		m, err := s.Redis.HGetAll(ctx, k).Result()
		must(t, err)
		for f := range m {
			if strings.Contains(f, "@") || strings.Contains(f, "p0") {
				t.Errorf("%s holds field %q", k, f)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d analytics keys, want the run's and the topic's day", n)
	}
	sd, dom, err := s.SendAndDomain(ctx, dispatcher.SendID(run, "googlemail-3", channels.Email))
	if err != nil || dom != "gmail" || sd.State != dispatcher.StateSent {
		t.Errorf("send: %+v, domain %q, %v; want sent, gmail", sd, dom, err)
	}
}

func ptr(f float64) *float64 { return &f }

// countCalls is a Redis hook that counts the calls of the analytics'
// counting script, and the most one round trip carried.
type countCalls struct {
	mu          sync.Mutex
	calls, most int
}

func (c *countCalls) counting(cmd redis.Cmder) bool {
	args := cmd.Args()
	if len(args) < 2 || !strings.EqualFold(fmt.Sprint(args[0]), "eval") {
		return false
	}
	body, _ := args[1].(string)
	return strings.Contains(body, "redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i+1])")
}

func (c *countCalls) result() (calls, most int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, c.most
}

func (c *countCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *countCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return c.ProcessPipelineHook(func(ctx context.Context, cmds []redis.Cmder) error { return next(ctx, cmds[0]) })(ctx, []redis.Cmder{cmd})
	}
}

func (c *countCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := 0
		for _, cmd := range cmds {
			if c.counting(cmd) {
				n++
			}
		}
		c.mu.Lock()
		c.calls += n
		c.most = max(c.most, n)
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

func getReport(t *testing.T, b *testBundle, path string) storepkg.Report {
	t.Helper()
	r := b.api.do("GET", path, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	var rep storepkg.Report
	must(t, json.Unmarshal(r.body, &rep))
	return rep
}

func TestAnalyticsErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, withClock(analyticsStart), withBasics())
	seedMailing(t, b, 1)
	run, err := b.d.Pipeline.StartRun(context.Background(), "mailing", b.clock.Now())
	must(t, err)
	wantRefused(t, b.api, []refusal{
		{"/v1/topics/newsletter/analytics?from=yesterday", 422, "from"},
		{"/v1/topics/newsletter/analytics?to=2026-13-01", 422, "to"},
		{"/v1/topics/newsletter/analytics?from=2026-03-05&to=2026-03-01", 422, "from"},
		{"/v1/topics/newsletter/analytics?from=2025-01-01&to=2026-03-01", 422, "from"},
		{"/v1/topics/newsletter/analytics?from=0001-01-01", 422, "from"},
		{"/v1/topics/newsletter/analytics?from=2026-03-01&from=2026-03-02", 422, "from"},
		{"/v1/topics/newsletter/analytics?form=2026-03-01", 422, "form"},
		{"/v1/runs/" + run + "/analytics?k=1", 422, "k"},
		{"/v1/topics/nope/analytics", 404, ""},
		{"/v1/runs/nope/analytics", 404, ""},
	})
	// 400 days, both ends included, is the longest period; an RFC 3339
	// time counts as its UTC day.
	for _, q := range []string{"from=2025-01-31&to=2026-03-05", "from=2026-03-01T23:30:00-02:00&to=2026-03-02T00:00:00Z"} {
		if r := b.api.do("GET", "/v1/topics/newsletter/analytics?"+q, ""); r.status != http.StatusOK {
			t.Errorf("GET ?%s: %d %s", q, r.status, r.body)
		}
	}
	rep := getReport(t, b, "/v1/topics/newsletter/analytics?from=2026-03-01T23:30:00-02:00&to=2026-03-02T00:00:00Z")
	if rep.From != "2026-03-02" || rep.To != "2026-03-02" {
		t.Errorf("period %s..%s, want the UTC day 2026-03-02", rep.From, rep.To)
	}
	// The routes need the campaigns scope.
	for key, want := range map[string]int{"marketing": http.StatusOK, "crm": http.StatusForbidden, "shop": http.StatusForbidden} {
		for _, path := range []string{"/v1/runs/" + run + "/analytics", "/v1/topics/newsletter/analytics"} {
			if r := b.api.as(key, "GET", path, ""); r.status != want {
				t.Errorf("GET %s with the %s key: %d, want %d", path, key, r.status, want)
			}
		}
	}
}

// Text messages count their own outcomes, from Twilio's status callbacks
// and a STOP, without domains.
func TestAnalyticsOfTextMessages(t *testing.T) {
	t.Parallel()
	h := twilioSetup(t, withClock(analyticsStart))
	b := h.b
	ctx := context.Background()
	s := b.d.Store
	phones := []string{"+33611111101", "+33611111102", "+33611111103", "+33611111104"}
	for i, p := range phones {
		id := fmt.Sprintf("t%d", i)
		must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: id, Phone: p, Tags: []string{"texts"}}, "Europe/Paris"))
		grantConsent(t, b, id, channels.SMS)
	}
	must(t, s.PutSegment(ctx, &dispatcher.Segment{ID: "texts", TagsAll: []string{"texts"}}))
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "texts", Topic: "newsletter", Segment: "texts",
		Channels: []channels.Kind{channels.SMS}, Templates: map[channels.Kind]string{channels.SMS: "news-sms"}}))
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "texts", b.clock.Now())
	must(t, err)
	b.waitRun(t, run, 30*time.Second)
	sids := map[string]string{}
	for _, m := range b.twilio.Messages() {
		sids[m.To] = m.SID
	}
	if len(sids) != 4 {
		t.Fatalf("%d numbers reached, want 4", len(sids))
	}
	b.clock.Add(time.Hour)
	status := func(phone, st, code string) {
		t.Helper()
		if r := h.send(t, twilioStatusPath, twiliotest.StatusForm(sids[phone], phone, st, code)); r.status != http.StatusOK {
			t.Fatalf("status %s %s: %d %s", st, code, r.status, r.body)
		}
	}
	status(phones[0], "delivered", "")
	status(phones[1], "undelivered", "30005") // unknown handset
	status(phones[2], "failed", "21610")      // replied STOP to the carrier
	status(phones[3], "delivered", "")
	status(phones[3], "delivered", "") // again: counted once
	if r := h.send(t, inboundPath, twiliotest.InboundForm(twiliotest.NewMessageSID(), phones[3], "STOP")); r.status != http.StatusOK {
		t.Fatalf("STOP: %d %s", r.status, r.body)
	}

	hour := func(h int) time.Time { return time.Date(2026, 3, 2, h, 0, 0, 0, time.UTC) }
	totals := storepkg.Counts{SMS: storepkg.SMSCounts{Sent: 4, Delivered: 2, Undelivered: 1, OptedOut: 1}}
	want := storepkg.Report{
		Run: run, Bucket: "hour",
		Series: []storepkg.Bucket{
			{Start: hour(10), Counts: storepkg.Counts{SMS: storepkg.SMSCounts{Sent: 4}}},
			{Start: hour(11), Counts: storepkg.Counts{SMS: storepkg.SMSCounts{Delivered: 2, Undelivered: 1, OptedOut: 1}}},
		},
		Totals:  totals,
		Rates:   storepkg.Rates{UnsubscribeRate: ptr(0), ComplaintLevel: storepkg.LevelNoData},
		Domains: []storepkg.DomainCounts{}, MinDomainRecipients: 10,
	}
	if diff := cmp.Diff(want, getReport(t, b, "/v1/runs/"+run+"/analytics")); diff != "" {
		t.Errorf("run analytics (-want +got):\n%s", diff)
	}
	// A STOP names no message: the topic counts it, not the run.
	totals.Unsubscribed = 1
	rep := getReport(t, b, "/v1/topics/newsletter/analytics?from=2026-03-02&to=2026-03-02")
	if diff := cmp.Diff(totals, rep.Totals); diff != "" {
		t.Errorf("topic totals (-want +got):\n%s", diff)
	}
	if r := rep.Rates.UnsubscribeRate; r == nil || *r != 1.0/3 {
		t.Errorf("topic unsubscribe rate %v, want 1/3", r)
	}
}

// API sends may reach one person several times in their run: the run
// counts its recipients, not its messages, when it folds domains.
func TestAnalyticsOfAPISends(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sendSetup(t, b)
	b.startWorker(t)
	var run string
	for i := range 3 {
		r := b.api.do("POST", "/v1/sends", orderSend, "Idempotency-Key", fmt.Sprintf("order-%d/shipped", i))
		if r.status != http.StatusAccepted {
			t.Fatalf("send %d: %d %s", i, r.status, r.body)
		}
		id, _ := r.json(t)["send"].(string)
		run, _, _ = dispatcher.SplitSendID(id)
	}
	b.smtp.Wait(3, 20*time.Second)
	ctx := context.Background()
	var rep *storepkg.Report
	waitFor(t, "the three sends to be counted", 10*time.Second, func() bool {
		var err error
		rep, err = b.d.Store.RunAnalytics(ctx, run, 2)
		must(t, err)
		return rep.Totals.Email.Sent == 3
	})
	// Three messages, one person: under a k of 2.
	want := []storepkg.DomainCounts{{Domain: storepkg.OtherDomain, EmailCounts: storepkg.EmailCounts{Sent: 3}, BounceRate: ptr(0), ComplaintRate: ptr(0), ComplaintLevel: storepkg.LevelOK}}
	if diff := cmp.Diff(want, rep.Domains); diff != "" {
		t.Errorf("domains with k = 2 (-want +got):\n%s", diff)
	}
	rep, err := b.d.Store.RunAnalytics(ctx, run, 1)
	must(t, err)
	if len(rep.Domains) != 1 || rep.Domains[0].Domain != "example.com" {
		t.Errorf("domains with k = 1: %+v, want example.com", rep.Domains)
	}
}
