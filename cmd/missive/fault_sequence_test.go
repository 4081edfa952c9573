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

	// Every enrolment completes: its two sends decided, settled.
	waitFor(t, "every enrolment completed", runDeadline, func() bool {
		st, err := w.d.Sequences.Stats(ctx, "onboard")
		return err == nil && st.Completed == n && st.Active == 0
	})
	waitFor(t, "every send settled", runDeadline, func() bool {
		for _, c := range w.contacts {
			r, err := w.d.Store.Enrolment(ctx, c, "onboard")
			must(t, err)
			s, err := w.d.Store.Send(ctx, r.LastSend)
			if err != nil || s.State == dispatcher.StateQueued || s.State == dispatcher.StateSending {
				return false
			}
		}
		return true
	})
	seen := map[string]int{} // recipient and subject
	for _, m := range w.smtp.Messages() {
		subject := "note"
		if strings.Contains(string(m.Data), "Subject: Your order, again") {
			subject = "note-2"
		}
		seen[strings.ToLower(m.To[0])+" "+subject]++
	}
	var dups, ambiguous, missing int
	for _, c := range w.contacts {
		for _, tpl := range []string{"note", "note-2"} {
			switch seen[c+"@example.test "+tpl] {
			case 0:
				missing++
			case 1:
			default:
				dups++
			}
		}
		r, err := w.d.Store.Enrolment(ctx, c, "onboard")
		must(t, err)
		if r.Step != 2 || r.Sending != "" {
			t.Errorf("enrolment of %s: %+v", c, r.Enrolment)
		}
	}
	ambiguous = w.failedSends(ctx, "sequence-onboard-")
	t.Logf("sequence: %d messages arrived, %d twice, %d missing, %d sends ambiguous", len(w.smtp.Messages()), dups, missing, ambiguous)
	if dups > 0 {
		t.Errorf("%d messages of a step arrived twice", dups)
	}
	if missing > ambiguous {
		t.Errorf("%d messages missing, but only %d sends are ambiguous: some were lost", missing, ambiguous)
	}
	if ambiguous > smtpConns*8 {
		t.Errorf("%d sends ambiguous after a kill, want at most %d (a chunk of 8 per SMTP connection)", ambiguous, smtpConns*8)
	}
}

// failedSends counts the sends settled failed (ambiguous, in this world,
// whose relay refuses nothing) in the runs whose ids start with prefix.
func (w *world) failedSends(ctx context.Context, prefix string) int {
	keys, err := w.d.Store.Redis.Keys(ctx, w.prefix+":run:{"+prefix+"*}").Result()
	must(w.t, err)
	n := 0
	for _, key := range keys {
		r, err := w.d.Store.Run(ctx, strings.TrimSuffix(strings.TrimPrefix(key, w.prefix+":run:{"), "}"))
		must(w.t, err)
		n += int(r.Counters[dispatcher.StateFailed])
	}
	return n
}
