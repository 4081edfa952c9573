package console

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// TestBrowserSequence drives the sequence screens in headless Chromium,
// as a marketer: open a sequence from the list, add a wait and an SMS in
// its empty rows, move the running enrolments and save a new version;
// then stop a contact's enrolment from its page.
func TestBrowserSequence(t *testing.T) {
	t.Parallel()
	b, _ := setupSequence(t, false)
	bg := context.Background()
	if _, err := b.d.Sequences.Stop(bg, "welcome", "c001"); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	base := b.srv.URL + "/console"
	do := b.browserSteps(t, ctx)
	text := browserText(t, ctx)

	do("sign in and open the sequence from the list", append(signInSteps(base+"/sequences?lang=en", "mark", "sequences"),
		chromedp.Click(chromedp.CSS(`[data-sequence="welcome"] a`)),
		chromedp.WaitVisible(chromedp.ID("sequence-form")),
	)...)
	if got := text("#sequence-steps"); !strings.Contains(got, "Wait 2 days, until 09:00 in the recipient's zone") || !strings.Contains(got, "Send email welcome-mail, else SMS") {
		t.Errorf("steps in words: %q", got)
	}

	do("add two steps and save, moving the enrolments",
		chromedp.SetValue(chromedp.ID("s2-kind"), "wait"),
		chromedp.SendKeys(chromedp.ID("s2-days"), "3"),
		chromedp.SendKeys(chromedp.ID("s2-at"), "18:30"),
		chromedp.SetValue(chromedp.ID("s3-kind"), "send"),
		chromedp.SetValue(chromedp.ID("s3-channel"), "sms"),
		chromedp.SetValue(chromedp.ID("s3-template"), "welcome-mail"),
		chromedp.Click(chromedp.ID("f-move")),
		chromedp.Click(chromedp.ID("save-sequence")),
		chromedp.WaitVisible(chromedp.ID("sequence-saved")),
	)
	seq, err := b.d.Store.Sequence(bg, "welcome")
	must(t, err)
	if seq.Version != 2 || seq.MovedFrom != 2 || len(seq.Steps) != 4 || seq.Steps[2].Wait == nil || seq.Steps[2].Wait.At != "18:30" ||
		seq.Steps[3].Send == nil || seq.Steps[3].Send.Channel != channels.SMS {
		t.Fatalf("saved sequence: %+v", seq)
	}
	if got := text("#sequence-steps"); !strings.Contains(got, "Wait 3 days, until 18:30 in the recipient's zone") || !strings.Contains(got, "Send SMS welcome-mail") {
		t.Errorf("steps in words after the save: %q", got)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.readyState === "complete"`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "sequence.png")

	// The contact's page: its enrolment, then a stop.
	do("open the contact",
		chromedp.Navigate(base+"/contacts/c000"),
		chromedp.WaitVisible(chromedp.ID("enrolments")),
	)
	if got := text(`[data-enrolment="welcome"]`); !strings.Contains(got, "step 1 of 2") || !strings.Contains(got, "Send email welcome-mail, else SMS") || !strings.Contains(got, "2026-12-03 09:00 CET") {
		t.Errorf("enrolment row: %q", got)
	}
	do("stop the enrolment",
		chromedp.Click(chromedp.ID("stop-welcome")),
		chromedp.WaitVisible(chromedp.CSS(`[data-enrolment="welcome"] [data-state="stopped"]`)),
	)
	if r, err := b.d.Store.Enrolment(bg, "c000", "welcome"); err != nil || r.State != dispatcher.EnrolmentStopped || r.Reason != dispatcher.StopByOperator {
		t.Errorf("enrolment after the stop: %+v %v", r, err)
	}
}
