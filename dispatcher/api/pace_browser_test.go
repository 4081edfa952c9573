package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// The recipient sets a pause, a pace and hours on the preference page,
// in a real browser, without JavaScript of the page's own: the choices are
// saved, shown again, and each is a ledger event from the page.
func TestBrowserPreferencePagePace(t *testing.T) {
	t.Parallel()
	b := setup(t, withPublicURL())
	seedPageTopics(t, b)
	ctx0 := context.Background()
	s := b.d.Store
	must(t, s.UpsertContact(ctx0, &dispatcher.Contact{ID: "lea", Email: "lea@example.com", Timezone: "Europe/Paris", Locale: "en"}, "Europe/Paris"))
	must(t, s.RecordConsent(ctx0, "lea", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "newsletter", State: dispatcher.Granted}))
	link := b.prefURL(t, "lea")
	paris, err := time.LoadLocation("Europe/Paris")
	must(t, err)
	pauseDay := time.Now().In(paris).AddDate(0, 0, 14).Format(time.DateOnly)

	ctx := newBrowser(t, 20*time.Second)
	must(t, chromedp.Do(ctx,
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS(`#pace-save`)),
		chromedp.SetValue(chromedp.CSS(`#pause-until`), pauseDay),
		chromedp.SetValue(chromedp.CSS(`select[name="freq.newsletter"]`), "weekly"),
		chromedp.Click(chromedp.CSS(`label[for="day-mon"]`)),
		chromedp.Click(chromedp.CSS(`label[for="day-fri"]`)),
		chromedp.SetValue(chromedp.CSS(`#hours-from`), "18:00"),
		chromedp.SetValue(chromedp.CSS(`#hours-to`), "22:00"),
		chromedp.Click(chromedp.CSS(`#pace-save`)),
		chromedp.WaitVisible(`//p[@role="status"][contains(., "Your preferences are saved.")]`),
	))
	// The page shows the choices saved.
	value := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
		must(t, err)
		return v
	}
	ticked := func(id string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("`+id+`").checked`))
		must(t, err)
		return v
	}
	pause, freq, from := value(`#pause-until`), value(`select[name="freq.newsletter"]`), value(`#hours-from`)
	mon, tue := ticked("day-mon"), ticked("day-tue")
	if pause != pauseDay || freq != "weekly" || from != "18:00" || !mon || tue {
		t.Errorf("the saved page shows pause %q, pace %q, from %q, monday %v, tuesday %v", pause, freq, from, mon, tue)
	}
	held, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`body`)))
	must(t, err)
	if !strings.Contains(held, "Your pace on record") || !strings.Contains(held, "at most one a week") || !strings.Contains(held, "mon 18:00-22:00; fri 18:00-22:00") {
		t.Errorf("what we hold does not show the pace")
	}

	prefs, err := s.Preferences(ctx0, "lea")
	must(t, err)
	wantPause, err := time.ParseInLocation(time.DateOnly, pauseDay, paris)
	must(t, err)
	if got := prefs[dispatcher.PreferencePause].Value; got != wantPause.UTC().Format(time.RFC3339) {
		t.Errorf("pause saved %q, want the start of %s in Paris", got, pauseDay)
	}
	if prefs["frequency/newsletter"].Value != "weekly" || prefs[dispatcher.PreferenceHours].Value != "mon 18:00-22:00; fri 18:00-22:00" {
		t.Errorf("preferences saved: %+v", prefs)
	}
	ledger, err := s.ConsentLedger(ctx0, "lea")
	must(t, err)
	var kinds []string
	for _, e := range ledger {
		if e.Kind != "" {
			if e.Source != "preference-page" || e.Evidence["page"] != "preferences" {
				t.Errorf("ledger event %+v is not the page's", e)
			}
			kinds = append(kinds, e.Kind)
		}
	}
	if strings.Join(kinds, ",") != "pause,hours,frequency" {
		t.Errorf("ledger events of the pace: %v", kinds)
	}
	rep, err := s.VerifyLedger(ctx0, "lea")
	must(t, err)
	if !rep.OK() {
		t.Errorf("ledger does not verify: %+v", rep)
	}
}
