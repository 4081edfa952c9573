package feedback_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
)

// Feedback applied is counted per channel and kind; a duplicate report,
// which changes nothing, is not.
func TestFeedbackMetrics(t *testing.T) {
	t.Parallel()
	b, send := setupSent(t, channels.Email)
	ev := channels.Feedback{Kind: channels.Delivered, Source: "ses", Send: send}
	mustRecord(t, b.h, ev)
	mustRecord(t, b.h, ev)
	mustRecord(t, b.h, channels.Feedback{Kind: channels.Complaint, Source: "arf", Send: send})
	fams, err := b.m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "missive_feedback_events_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + " "
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"channel=email kind=delivered ": 1, "channel=email kind=complaint ": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("feedback events (-want +got):\n%s", diff)
	}
}
