package console

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/templates/golden"
)

const chromiumPath = "/usr/bin/chromium"

// browser returns a headless Chromium tab, or skips t outside CI when
// there is none (in CI it fails t).
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("browser tests need Chromium at %s (apt-get install -y chromium); skipped outside CI", chromiumPath)
		}
		t.Fatalf("browser tests need Chromium at %s: %v", chromiumPath, err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()))
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1200, 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// screenshot saves the page as testdata/screenshots/name under -update.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !golden.Updating() {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join("testdata", "screenshots", name)
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, png, 0o644))
}

// browserSteps returns what runs steps in the tab ctx, failing t with
// what they were for and the logs of b when they fail.
func (b *testBundle) browserSteps(t *testing.T, ctx context.Context) func(what string, steps ...chromedp.Action[chromedp.Void]) {
	return func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, b.logs.String())
		}
	}
}

// browserText returns what reads the trimmed text of the first element
// matching a CSS selector in the tab ctx, failing t when there is none.
func browserText(t *testing.T, ctx context.Context) func(sel string) string {
	return func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
}

// signInSteps open page, which sends a signed-out browser to the sign-in
// page, sign in there as name and wait for the element landing of page.
func signInSteps(page, name, landing string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("signin")),
		chromedp.SendKeys(chromedp.ID("name"), name),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID(landing)),
	}
}

// TestBrowserCampaignEndToEnd drives the console as a marketer does, in
// headless Chromium: sign in, create a campaign, preview and save a cron
// schedule, start a run and watch its page reach the end through the
// server-sent events, pause the campaign, sign out.
func TestBrowserCampaignEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	const contacts = 24
	b.seedContacts(t, contacts)
	ctx := browser(t)
	base := b.srv.URL + "/console"
	do := b.browserSteps(t, ctx)
	text := browserText(t, ctx)

	// Sign in: the console sends a signed-out browser to the sign-in page
	// and back.
	do("sign in", signInSteps(base+"/campaigns?lang=en", "mark", "new-campaign")...)

	// Create a campaign from the records seeded.
	do("create a campaign",
		chromedp.Click(chromedp.ID("new-campaign")),
		chromedp.WaitVisible(chromedp.ID("campaign-form")),
		chromedp.SendKeys(chromedp.ID("f-id"), "spring"),
		chromedp.SendKeys(chromedp.ID("f-name"), "Spring news"),
		chromedp.SetValue(chromedp.ID("f-topic"), "newsletter"),
		chromedp.SetValue(chromedp.ID("f-segment"), "vips"),
		chromedp.SetValue(chromedp.ID("f-channels"), "email"),
		chromedp.SetValue(chromedp.ID("f-template-email"), "news-mail"),
		chromedp.Click(chromedp.ID("save-campaign")),
		chromedp.WaitVisible(chromedp.ID("schedule-form")),
	)
	if got := text("#campaign-state"); got != "draft" {
		t.Errorf("new campaign's state: %q, want draft", got)
	}

	// Preview a cron schedule, then save it.
	do("preview a schedule",
		chromedp.Click(chromedp.ID("kind-cron")),
		chromedp.SendKeys(chromedp.ID("s-cron"), "0 10 * * 1"),
		chromedp.Click(chromedp.ID("preview")),
		chromedp.WaitVisible(chromedp.ID("preview-fires")),
	)
	fires, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#preview-fires li")].map(li => li.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(fires) != 5 {
		t.Fatalf("preview lists %d fire times, want 5: %q", len(fires), fires)
	}
	for _, f := range fires {
		// Mondays at 10:00 in Europe/Paris, mark's zone, shown in it.
		at, err := time.ParseInLocation("2006-01-02 15:04 MST", f, mustZone(t, "Europe/Paris"))
		if err != nil || at.Weekday() != time.Monday || !strings.Contains(f, " 10:00 ") {
			t.Errorf("fire time %q is not a Monday at 10:00 in Europe/Paris", f)
		}
	}
	if c, _ := b.d.Store.Campaign(context.Background(), "spring"); c.Schedule != nil {
		t.Fatal("the preview saved the schedule")
	}
	screenshot(t, ctx, "schedule-preview.png")
	do("save the schedule",
		chromedp.Click(chromedp.ID("save-schedule")),
		chromedp.WaitVisible(chromedp.ID("next-fires")),
	)
	if got := text("#campaign-state"); got != "scheduled" {
		t.Errorf("state after scheduling: %q, want scheduled", got)
	}
	c, err := b.d.Store.Campaign(context.Background(), "spring")
	must(t, err)
	if c.Schedule == nil || c.Schedule.Cron != "0 10 * * 1" || c.Schedule.TZ != "Europe/Paris" {
		t.Fatalf("saved schedule: %+v", c.Schedule)
	}

	// Start a run now and watch it to the end. The page's counters are
	// replaced by the events: the page is never reloaded (the marker set
	// on it stays) and has received updates.
	do("start a run",
		chromedp.Click(chromedp.ID("campaign-start")),
		chromedp.WaitVisible(chromedp.ID("live")),
	)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.loadedOnce = true`)); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint(contacts)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => {
		const live = document.getElementById("live"), sent = live.querySelector('[data-counter="sent"]');
		return live.dataset.ended === "1" && Number(live.dataset.updates) > 0 && sent && sent.textContent === "`+want+`";
	})()`, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatalf("the run page did not show %s sent: %v\n%s", want, err, b.logs.String())
	}
	if reloaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.loadedOnce !== true`)); err != nil || reloaded {
		t.Errorf("the run page reloaded (%v) instead of taking the events", err)
	}
	if gone, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("run-pause") === null`)); err != nil || !gone {
		t.Errorf("a completed run still offers a pause (%v)", err)
	}
	if got := text("#run-state"); got != "completed" {
		t.Errorf("run state on the page: %q, want completed", got)
	}
	if got := text(`td[data-reason="queued"]`); got != want {
		t.Errorf("gate decisions: queued %q, want %s", got, want)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#timeline svg path[data-series=sent], #gates svg rect").length`)); err != nil || n < 2 {
		t.Errorf("charts: %d shapes, %v", n, err)
	}
	if got := b.smtp.Len(); got != contacts {
		t.Errorf("SMTP server received %d messages, want %d", got, contacts)
	}
	screenshot(t, ctx, "run-progress.png")

	// The campaign list shows the run; pause the campaign from its page.
	do("list", chromedp.Navigate(base+"/campaigns"), chromedp.WaitVisible(chromedp.ID("campaigns")))
	if got := text(`[data-campaign="spring"]`); !strings.Contains(got, want+" sent of "+want) || !strings.Contains(got, "scheduled") {
		t.Errorf("campaign list row: %q", got)
	}
	screenshot(t, ctx, "campaigns.png")
	do("pause",
		chromedp.Navigate(base+"/campaigns/spring"),
		chromedp.Click(chromedp.ID("campaign-pause")),
		chromedp.WaitVisible(chromedp.ID("campaign-resume")),
	)
	if got := text("#campaign-state"); got != "paused" {
		t.Errorf("state after pause: %q, want paused", got)
	}
	if c, _ := b.d.Store.Campaign(context.Background(), "spring"); c.State != dispatcher.Paused {
		t.Errorf("stored state after pause: %s", c.State)
	}

	// Sign out: the console asks to sign in again.
	do("sign out",
		chromedp.Click(chromedp.ID("signout")),
		chromedp.WaitVisible(chromedp.ID("signin")),
		chromedp.Navigate(base+"/campaigns"),
		chromedp.WaitVisible(chromedp.ID("signin")),
	)
}

func mustZone(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
