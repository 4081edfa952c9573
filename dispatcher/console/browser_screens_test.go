package console

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/missive-dev/missive/dispatcher/store"
)

// TestBrowserTemplatesContactsAnalytics drives the second half of the
// console in headless Chromium, as an admin: edit a template and watch
// the preview and the SMS count follow the typing (static/preview.js);
// open a contact by looking its address up, see its ledger verified,
// export it, erase it after confirming, and see it gone; read a run's
// analytics.
func TestBrowserTemplatesContactsAnalytics(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	b.seedContacts(t, 1)
	bg := context.Background()
	started := b.startSpring(t, nil)
	seedAnalytics(t, b, started.Run)
	ctx := browser(t)
	base := b.srv.URL + "/console"
	do := b.browserSteps(t, ctx)
	poll := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	do("sign in", signInSteps(base+"/templates/news-mail?lang=en", "ana", "template-form")...)

	// Typing refreshes the preview without a reload: the subject, then an
	// SMS part counted in GSM-7, then in UCS-2 once a Cyrillic letter is
	// typed.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.loadedOnce = true`)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.getElementById("f-subject").value = "") === ""`)); err != nil {
		t.Fatal(err)
	}
	do("type a subject and an SMS",
		chromedp.SendKeys(chromedp.ID("f-subject"), `Bonjour {{default "vous" .Attr.first_name}}, and welcome`), chromedp.SendKeys(chromedp.ID("f-sms"), "Hi {{.Attr.first_name}}, see you"))
	poll("the preview follows the typing", `(() => {
		const s = document.getElementById("preview-subject"), n = document.getElementById("preview-segments");
		return !!s && s.textContent.includes("and welcome") && !!n && n.dataset.encoding === "GSM-7" && n.dataset.parts === "1";
	})()`)
	do("type a letter outside GSM-7", chromedp.SendKeys(chromedp.ID("f-sms"), " Ж"))
	poll("the SMS count switches to UCS-2", `(() => {
		const n = document.getElementById("preview-segments"), info = document.getElementById("sms-info");
		return !!n && n.dataset.encoding === "UCS-2" && info.textContent.includes("UCS-2");
	})()`)
	if reloaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.loadedOnce !== true`)); err != nil || reloaded {
		t.Errorf("the editor reloaded (%v) instead of refreshing the preview", err)
	}
	if got, _ := b.d.Store.Template(bg, "news-mail"); got.Version != 1 {
		t.Error("the live preview saved the template")
	}
	do("save", chromedp.Click(chromedp.ID("save-template")), chromedp.WaitVisible(chromedp.ID("template-saved")))
	if got, _ := b.d.Store.Template(bg, "news-mail"); got.Version != 2 || got.SMS == nil {
		t.Errorf("saved template: %+v", got)
	}
	poll("the saved template's page loaded", `document.readyState === "complete"`)
	screenshot(t, ctx, "template-editor.png")

	// A contact, by its address.
	do("look a contact up",
		chromedp.Navigate(base+"/contacts"),
		chromedp.WaitVisible(chromedp.ID("contact-by-address")),
		chromedp.SetValue(chromedp.ID("f-lookup-channel"), "email"),
		chromedp.SendKeys(chromedp.ID("f-lookup-address"), "C000@example.com"),
		chromedp.Click(chromedp.ID("lookup-contact")),
		chromedp.WaitVisible(chromedp.ID("ledger-check")),
	)
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("ledger-check").dataset.ok`))
	if err != nil || ok != "true" {
		t.Errorf("ledger check shown: %q %v", ok, err)
	}
	screenshot(t, ctx, "contact.png")
	exported, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(document.getElementById("export-contact").href).then(r => r.json()).then(j => j.contact.email)`, chromedp.EvalAwaitPromise))
	if err != nil || exported != "c000@example.com" {
		t.Errorf("export: %q %v", exported, err)
	}
	do("erase, confirming",
		chromedp.Click(chromedp.ID("erase-contact")),
		chromedp.WaitVisible(chromedp.ID("erase-form")),
		chromedp.SendKeys(chromedp.ID("f-confirm"), "c000"),
		chromedp.Click(chromedp.ID("confirm-erase")),
		chromedp.WaitVisible(chromedp.ID("erased")),
		chromedp.Navigate(base+"/contacts/c000"),
		chromedp.WaitVisible(chromedp.ID("error")),
	)
	if exists, err := b.d.Store.ContactExists(bg, "c000"); err != nil || exists {
		t.Errorf("contact still there: %v %v", exists, err)
	}

	// The run's analytics, linked from its page.
	do("analytics",
		chromedp.Navigate(base+"/runs/"+started.Run),
		chromedp.Click(chromedp.ID("run-analytics")),
		chromedp.WaitVisible(chromedp.ID("analytics-chart")),
	)
	level, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("complaint").dataset.level`))
	if err != nil || level != "above_limit" {
		t.Errorf("complaint level: %q %v", level, err)
	}
	screenshot(t, ctx, "analytics.png")
	if strings.Contains(b.logs.String(), "c000@example.com") {
		t.Error("an address is in the logs")
	}
}

// seedAnalytics counts a run's outcomes at two providers over two hours:
// 2 complaints for 400 emails accepted at gmail, past the 0.3 % limit.
func seedAnalytics(t testing.TB, b *testBundle, run string) {
	var evs []store.Event
	add := func(n int, metric, domain string) {
		for range n {
			evs = append(evs, store.Event{Run: run, Topic: "newsletter", Metric: metric, Domain: domain})
		}
	}
	add(400, store.MetricEmailSent, "gmail")
	add(390, store.MetricEmailDelivered, "gmail")
	add(2, store.MetricEmailComplained, "gmail")
	add(120, store.MetricEmailSent, "orange")
	add(112, store.MetricEmailDelivered, "orange")
	add(3, store.MetricEmailBouncedHard, "orange")
	add(4, store.MetricUnsubscribed, "")
	must(t, b.d.Store.CountEvents(context.Background(), evs...))
}
