package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// The recipient's pages in a real browser: headless Chromium follows the
// links of a message delivered through the whole pipeline.

const chromiumPath = "/usr/bin/chromium"

// newBrowser starts a headless Chromium with a profile of its own and
// returns a tab context, limited to timeout once the browser runs.
func newBrowser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("browser tests need Chromium at %s (apt-get install -y chromium); skipped outside CI", chromiumPath)
		}
		t.Fatalf("browser tests need Chromium at %s: %v", chromiumPath, err)
	}
	profile := t.TempDir()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(960, 900),
	)
	ctx, cancelTab := chromedp.NewContext(actx)
	// Registered after TempDir, so the browser is gone before its profile
	// is removed.
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// The first call starts the browser, which lives as long as ctx: no
	// timeout on it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel)
	return tctx
}

// seedPageTopics seeds the topics the recipient's pages show.
func seedPageTopics(t *testing.T, b *testBundle) {
	t.Helper()
	b.seedBasics(t)
	ctx := context.Background()
	s := b.d.Store
	must(t, s.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Name: "Newsletter", Kind: dispatcher.Marketing, Description: "Our news, once a month."}))
	must(t, s.PutTopic(ctx, &dispatcher.Topic{ID: "promotions", Name: "Offers", Kind: dispatcher.Marketing, Description: "Sales and discount codes."}))
	must(t, s.PutTopic(ctx, &dispatcher.Topic{ID: "orders", Name: "Order updates", Kind: dispatcher.Transactional, Description: "Confirmation, shipping and delivery of your orders."}))
}

// deliver runs a newsletter campaign to contact c (granted email consent)
// through a worker and the SMTP server, and returns the message received.
func deliver(t *testing.T, b *testBundle, c *dispatcher.Contact) (*mail.Message, string) {
	t.Helper()
	ctx := context.Background()
	s := b.d.Store
	must(t, s.UpsertContact(ctx, c, "Europe/Paris"))
	must(t, s.RecordConsent(ctx, c.ID, dispatcher.ConsentEvent{Channel: channels.Email, Topic: "newsletter", State: dispatcher.Granted, Source: "import",
		Evidence: map[string]string{"form": "signup-v3"}}))
	must(t, s.PutSegment(ctx, &dispatcher.Segment{ID: "one", Contacts: []string{c.ID}}))
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "march", Name: "March news", Topic: "newsletter", Segment: "one",
		Channels: []channels.Kind{channels.Email}, Templates: map[channels.Kind]string{channels.Email: "news-mail"}}))
	stop := b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "march", time.Now())
	must(t, err)
	b.waitRun(t, run, 10*time.Second)
	stop()
	msgs := b.smtp.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages received, want 1", len(msgs))
	}
	m, err := mail.ReadMessage(bytes.NewReader(msgs[0].Data))
	must(t, err)
	return m, textOf(t, m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body)
}

// textOf decodes a MIME body and returns its text/plain parts.
func textOf(t *testing.T, ctype, cte string, body io.Reader) string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(ctype)
	must(t, err)
	if strings.HasPrefix(mt, "multipart/") {
		var out strings.Builder
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return out.String()
			}
			must(t, err)
			out.WriteString(textOf(t, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p))
		}
	}
	if mt != "text/plain" {
		return ""
	}
	switch strings.ToLower(cte) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	must(t, err)
	return string(b)
}

// screenshot writes the page as docs/screenshots/<name> when
// MISSIVE_UPDATE_SCREENSHOTS=1, so that tests do not dirty the tree.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("MISSIVE_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must(t, err)
	dir := filepath.Join("..", "docs", "screenshots")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
}

var angleURL = regexp.MustCompile(`<(https?://[^>]+)>`)

func TestBrowserOneClickUnsubscribeFromARealMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, withPublicURL())
	seedPageTopics(t, b)
	srv := b.srv
	m, _ := deliver(t, b, &dispatcher.Contact{ID: "camille", Email: "camille@example.com", Locale: "fr-FR",
		Attributes: map[string]string{"first_name": "Camille"}})
	if got := m.Header.Get("List-Unsubscribe-Post"); got != "List-Unsubscribe=One-Click" {
		t.Errorf("List-Unsubscribe-Post: %q", got)
	}
	lu := angleURL.FindStringSubmatch(m.Header.Get("List-Unsubscribe"))
	if lu == nil {
		t.Fatal("the message has no HTTP List-Unsubscribe URL")
	}
	link := lu[1]
	if !strings.HasPrefix(link, srv.URL+"/u/") {
		t.Fatalf("List-Unsubscribe does not lead to the public URL")
	}
	ctx := newBrowser(t, 10*time.Second)
	must(t, chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`form button[type=submit]`))))
	h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	must(t, err)
	if h1 != "Se désabonner" {
		t.Errorf("confirm page title %q", h1)
	}
	// Showing the page (as a link scanner would) changes nothing.
	if cur, _ := b.d.Store.Consents(context.Background(), "camille"); cur["email/newsletter"] != dispatcher.Granted {
		t.Fatal("opening the page withdrew consent")
	}
	screenshot(t, ctx, "unsubscribe.png")
	must(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		chromedp.WaitVisible(`//h1[contains(., "Désabonnement confirmé")]`),
	))
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	must(t, err)
	if !strings.Contains(body, "You will no longer receive “Newsletter” emails.") {
		t.Errorf("confirmation page says %q", body)
	}
	l, err := b.d.Store.ConsentLedger(context.Background(), "camille")
	must(t, err)
	last := l[len(l)-1]
	if last.Source != "one-click" || last.State != dispatcher.Withdrawn || last.Channel != channels.Email || last.Topic != "newsletter" ||
		!strings.HasPrefix(last.Evidence["send"], "march") {
		t.Errorf("last ledger event %+v, want a one-click withdrawal of the newsletter by email", last)
	}
	if f, _ := b.d.Store.TopicFeedback(context.Background(), "newsletter"); f[storepkg.FeedbackUnsubscribes] != 1 {
		t.Errorf("newsletter unsubscribes %d, want 1", f[storepkg.FeedbackUnsubscribes])
	}
}

var prefLink = regexp.MustCompile(`https?://\S+/preferences/[A-Za-z0-9_.-]+`)

func TestBrowserPreferencePageFromARealMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, withPublicURL())
	seedPageTopics(t, b)
	srv := b.srv
	ctx0 := context.Background()
	s := b.d.Store
	_, text := deliver(t, b, &dispatcher.Contact{ID: "camille", Email: "camille@example.com", Phone: "+33612345678", Locale: "fr-FR",
		Attributes: map[string]string{"first_name": "Camille", "city": "Lyon"}, Tags: []string{"vip", "spring-sale"}})
	must(t, s.RecordConsent(ctx0, "camille", dispatcher.ConsentEvent{Channel: channels.SMS, Topic: "promotions", State: dispatcher.Granted, Source: "api",
		Evidence: map[string]string{"form": "checkout-v2"}}))
	link := prefLink.FindString(text)
	if !strings.HasPrefix(link, srv.URL+"/preferences/") {
		t.Fatalf("the message carries no preference link to the public URL:\n%s", text)
	}
	checked := func(ctx context.Context, id string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById(`+"`"+id+"`"+`).checked`))
		must(t, err)
		return v
	}
	ctx := newBrowser(t, 10*time.Second)
	must(t, chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`#t-email-newsletter`))))
	if h1, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1"))); h1 != "Vos préférences" {
		t.Errorf("page title %q, want the contact's French", h1)
	}
	// Switch to English with the page's own link.
	must(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[hreflang="en"]`)),
		chromedp.WaitVisible(`//h1[text()="Your preferences"]`),
	))
	if !checked(ctx, "t-email-newsletter") || !checked(ctx, "t-sms-promotions") || checked(ctx, "t-email-promotions") {
		t.Fatal("the boxes do not show the consents")
	}
	// Untick through the label (it must be tied to its box), and save.
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`label[for="t-email-newsletter"]`))))
	if checked(ctx, "t-email-newsletter") {
		t.Fatal("clicking the label did not untick the box")
	}
	must(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`form button:not(.danger)`)),
		chromedp.WaitVisible(`//p[@role="status"][contains(., "Your preferences are saved.")]`),
	))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	must(t, err)
	if u, err := url.Parse(loc); err != nil || u.Query().Get("saved") != "1" || u.Query().Get("lang") != "en" {
		t.Errorf("after saving the browser is at %s", strings.Replace(loc, link[len(srv.URL):], "/preferences/TOKEN", 1))
	}
	if checked(ctx, "t-email-newsletter") || !checked(ctx, "t-sms-promotions") {
		t.Error("the saved page does not show the new choice")
	}
	l, err := s.ConsentLedger(ctx0, "camille")
	must(t, err)
	last := l[len(l)-1]
	if len(l) != 3 || last.Source != "preference-page" || last.State != dispatcher.Withdrawn || last.Channel != channels.Email || last.Topic != "newsletter" {
		t.Errorf("ledger after saving: %d events, last %+v", len(l), last)
	}
	screenshot(t, ctx, "preferences.png")

	must(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`button.danger`)),
		chromedp.WaitVisible(`//p[@role="status"][contains(., "unsubscribed from all marketing")]`),
	))
	l, err = s.ConsentLedger(ctx0, "camille")
	must(t, err)
	last = l[len(l)-1]
	if len(l) != 4 || last.Source != "preference-page" || last.State != dispatcher.Withdrawn || last.Channel != channels.SMS || last.Topic != "promotions" {
		t.Errorf("ledger after unsubscribing from everything: %d events, last %+v", len(l), last)
	}
	cur, err := s.Consents(ctx0, "camille")
	must(t, err)
	for f, st := range cur {
		if st == dispatcher.Granted {
			t.Errorf("%s still granted", f)
		}
	}
	if checked(ctx, "t-sms-promotions") {
		t.Error("the page still ticks a topic")
	}
	if r, _ := s.TopicFeedback(ctx0, "promotions"); r[storepkg.FeedbackUnsubscribes] != 1 {
		t.Errorf("promotions unsubscribes %d, want 1", r[storepkg.FeedbackUnsubscribes])
	}
}
