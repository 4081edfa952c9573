package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/app/apptest"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/dispatcher/testkit"
	"github.com/missive-dev/missive/throttle/redistest"
)

// testBundle is a Dispatcher on a real Redis and a real SMTP server, with
// the console served by a real HTTP server.
type testBundle struct {
	d    *app.Dispatcher
	smtp *smtptest.Server
	srv  *httptest.Server
	logs *testkit.LogBuffer
}

// testPassword is every test account's password.
const testPassword = "correct horse battery"

// setup builds a Dispatcher and its console for one test, with accounts
// ana (admin), mark (marketer) and rita (read-only), the topic, templates
// and segment seedRecords writes, and a worker when worker is set.
func setup(t testing.TB, worker bool, opts ...func(*app.Config)) *testBundle {
	t.Helper()
	r := redistest.New(t)
	b := &testBundle{smtp: smtptest.New(t), logs: &testkit.LogBuffer{}}
	mailer, err := email.New(email.Config{URL: b.smtp.URL(), From: "Missive <news@example.com>", Connections: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mailer.Close() })
	cfg := apptest.Config(r, "http://missive.example", map[channels.Kind]channels.Channel{channels.Email: mailer}, 4, b.logs)
	for _, o := range opts {
		o(&cfg)
	}
	b.d, err = app.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Dispatcher: b.d, LiveEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", h)
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	ctx := context.Background()
	for _, u := range []struct{ name, role string }{{"ana", RoleAdmin}, {"mark", RoleMarketer}, {"rita", RoleReadOnly}} {
		if err := AddUser(ctx, b.d.Store, u.name, u.role, "Europe/Paris", testPassword); err != nil {
			t.Fatal(err)
		}
	}
	b.seedRecords(t)
	if worker {
		apptest.StartWorker(t, b.d)
	}
	return b
}

var must = testkit.Must

// seedRecords writes what a campaign needs: a marketing topic, an email
// template, a segment of the contacts tagged vip.
func (b *testBundle) seedRecords(t testing.TB) {
	ctx := context.Background()
	s := b.d.Store
	must(t, s.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Name: "Newsletter", Kind: dispatcher.Marketing}))
	must(t, s.PutTemplate(ctx, apptest.NewsMail()))
	must(t, s.PutSegment(ctx, &dispatcher.Segment{ID: "vips", TagsAll: []string{"vip"}}))
}

// createSpring creates the email campaign "spring", the newsletter to
// the vips, with the schedule s (nil for none).
func (b *testBundle) createSpring(t testing.TB, s *dispatcher.Schedule) {
	t.Helper()
	must(t, b.d.Pipeline.CreateCampaign(context.Background(), &dispatcher.Campaign{ID: "spring", Topic: "newsletter", Segment: "vips",
		Channels: []channels.Kind{channels.Email}, Templates: map[channels.Kind]string{channels.Email: "news-mail"}, Schedule: s}))
}

// startSpring creates "spring" (createSpring) and starts a run of it.
func (b *testBundle) startSpring(t testing.TB, s *dispatcher.Schedule) pipeline.Started {
	t.Helper()
	b.createSpring(t, s)
	started, err := b.d.Pipeline.Start(context.Background(), "spring", pipeline.StartOptions{})
	must(t, err)
	return started
}

// seedContacts stores n contacts tagged vip who consented to the
// newsletter by email.
func (b *testBundle) seedContacts(t testing.TB, n int) {
	ctx := context.Background()
	for i := range n {
		id := fmt.Sprintf("c%03d", i)
		must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: id, Email: id + "@example.com", Tags: []string{"vip"}}, "Europe/Paris"))
		must(t, b.d.Store.RecordConsent(ctx, id, dispatcher.ConsentEvent{Channel: channels.Email, Topic: "newsletter",
			State: dispatcher.Granted, Source: "api"}))
	}
}

// client is a browser without JavaScript: a cookie jar, no redirects
// followed, so that tests see each answer.
type client struct {
	t    testing.TB
	base string
	hc   *http.Client
}

func (b *testBundle) client(t testing.TB) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: b.srv.URL, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (c *client) get(path string) answer {
	c.t.Helper()
	resp, err := c.hc.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func (c *client) post(path string, form url.Values) answer {
	c.t.Helper()
	resp, err := c.hc.PostForm(c.base+path, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

var csrfPattern = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of the forms of the page at path.
func (c *client) csrf(path string) string {
	c.t.Helper()
	a := c.get(path)
	m := csrfPattern.FindStringSubmatch(a.body)
	if m == nil {
		c.t.Fatalf("GET %s: %d, no CSRF field in\n%s", path, a.status, a.body)
	}
	return m[1]
}

// signIn signs in as name with password and returns the answer.
func (c *client) signIn(name, password string) answer {
	c.t.Helper()
	tok := c.csrf("/console/signin")
	return c.post("/console/signin", url.Values{"csrf": {tok}, "name": {name}, "password": {password}})
}

// signedIn returns a client signed in as name.
func (b *testBundle) signedIn(t testing.TB, name string) *client {
	t.Helper()
	c := b.client(t)
	if a := c.signIn(name, testPassword); a.status != http.StatusSeeOther {
		t.Fatalf("sign in as %s: %d\n%s", name, a.status, a.body)
	}
	return c
}

// waitFor waits until cond holds, failing t after timeout.
var waitFor = testkit.WaitFor
