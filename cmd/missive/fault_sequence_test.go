package main

import (
	"context"
	"strings"
	"testing"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/templates"
)

// A worker killed with SIGKILL while it takes the steps of a sequence of
// two messages: the other worker takes its tasks after asynq's lease, each
// enrolment goes on from the step its record holds, and no message of a
// step arrives twice; only the messages being handed over at the kill may
// be unknown, settled ambiguous and never sent again.
func TestFaultWorkerKilledMidSequence(t *testing.T) {
	const n = 1000
	w, _ := faultWorld(t, durableRedis)
	w.seed(n, channels.Email)
	ctx := context.Background()
	must(t, w.d.Store.PutTemplate(ctx, &templates.Template{ID: "note-2",
		Email: &templates.Email{Subject: "Your order, again", Text: "Hello {{.Attr.name}}, your order arrives."}}))
	_, _, err := w.d.Sequences.Put(ctx, &dispatcher.Sequence{ID: "onboard", Topic: "orders", Steps: []dispatcher.SequenceStep{
		{Send: &dispatcher.StepSend{Channel: channels.Email, Template: "note"}},
		{Send: &dispatcher.StepSend{Channel: channels.Email, Template: "note-2"}},
	}}, false)
	must(t, err)
	for _, c := range w.contacts {
		if _, created, err := w.d.Sequences.Enrol(ctx, "onboard", c, dispatcher.TriggerAPI, nil); err != nil || !created {
			t.Fatalf("enrol %s: %v %v", c, created, err)
		}
	}
	a := w.startWorker("worker-a")
	w.startWorker("worker-b")
	w.waitArrived(n / 2)
	a.kill()

	// Every enrolment completes, as its record says (the counters may
	// miss the one a kill cut between the record and the counter).
	waitFor(t, "every enrolment completed", runDeadline, func() bool {
		for _, c := range w.contacts {
			r, err := w.d.Store.Enrolment(ctx, c, "onboard")
			if err != nil || r.State != dispatcher.EnrolmentCompleted {
				return false
			}
		}
		return true
	})
	// Every send of both steps settled: a send the killed worker held is
	// settled ambiguous by the reconciler once its claim's lease ends.
	sends := map[string][]*dispatcher.Send{}
	waitFor(t, "every send settled", runDeadline, func() bool {
		for _, c := range w.contacts {
			ss, err := w.d.Store.ContactSends(ctx, c)
			must(t, err)
			for _, s := range ss {
				if s.State == dispatcher.StateQueued || s.State == dispatcher.StateDeferred || s.State == dispatcher.StateSending {
					return false
				}
			}
			sends[c] = ss
		}
		return true
	})
	seen := map[string]int{} // recipient and template
	for _, m := range w.smtp.Messages() {
		tpl := "note"
		if strings.Contains(string(m.Data), "Subject: Your order, again") {
			tpl = "note-2"
		}
		seen[strings.ToLower(m.To[0])+" "+tpl]++
	}
	var dups, ambiguous, lost int
	for _, c := range w.contacts {
		for _, tpl := range []string{"note", "note-2"} {
			if n := seen[c+"@example.test "+tpl]; n > 1 {
				dups += n - 1
			}
		}
		if len(sends[c]) != 2 {
			lost++
			t.Errorf("%s has %d sends, want one a step", c, len(sends[c]))
		}
		for _, s := range sends[c] {
			switch {
			case s.State == dispatcher.StateFailed && s.Reason == dispatcher.ReasonAmbiguous:
				ambiguous++
			case s.State == dispatcher.StateSent || s.State == dispatcher.StateDelivered:
				if seen[c+"@example.test "+s.Template] == 0 {
					lost++
					t.Errorf("send %s of %s is %s but its message never arrived", s.ID, c, s.State)
				}
			default:
				lost++
				t.Errorf("send %s of %s is %s %s", s.ID, c, s.State, s.Reason)
			}
		}
		r, err := w.d.Store.Enrolment(ctx, c, "onboard")
		must(t, err)
		if r.Step != 2 || r.Sending != "" {
			t.Errorf("enrolment of %s: %+v", c, r.Enrolment)
		}
	}
	t.Logf("sequence: %d messages arrived, %d twice, %d lost, %d sends ambiguous", len(w.smtp.Messages()), dups, lost, ambiguous)
	if dups > 0 {
		t.Errorf("%d messages of a step arrived twice", dups)
	}
	if ambiguous > smtpConns*8 {
		t.Errorf("%d sends ambiguous after a kill, want at most %d (a chunk of 8 per SMTP connection)", ambiguous, smtpConns*8)
	}
}
