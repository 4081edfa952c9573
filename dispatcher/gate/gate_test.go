package gate

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Check 5: quiet hours in the recipient's zone, with local send times.
func TestGateSendTime(t *testing.T) {
	cal := throttle.DefaultSMSCalendar(2026, 2027)
	g := New(Config{Quiet: map[channels.Kind]throttle.Calendar{channels.SMS: cal}})
	paris, ny, tokyo := mustLoc(t, "Europe/Paris"), mustLoc(t, "America/New_York"), mustLoc(t, "Asia/Tokyo")
	tests := []struct {
		name      string
		now       time.Time
		tz        string
		channel   channels.Kind
		localTime string
		want      time.Time
	}{
		{"open: sent now", time.Date(2026, 11, 24, 10, 0, 0, 0, paris), "Europe/Paris", channels.SMS, "", time.Date(2026, 11, 24, 10, 0, 0, 0, paris)},
		{"window start is open", time.Date(2026, 11, 24, 8, 0, 0, 0, paris), "Europe/Paris", channels.SMS, "", time.Date(2026, 11, 24, 8, 0, 0, 0, paris)},
		{"window end is closed", time.Date(2026, 11, 24, 20, 0, 0, 0, paris), "Europe/Paris", channels.SMS, "", time.Date(2026, 11, 25, 8, 0, 0, 0, paris)},
		{"one minute before the end", time.Date(2026, 11, 24, 19, 59, 0, 0, paris), "Europe/Paris", channels.SMS, "", time.Date(2026, 11, 24, 19, 59, 0, 0, paris)},
		{"Sunday waits for Monday", time.Date(2026, 11, 22, 11, 0, 0, 0, paris), "Europe/Paris", channels.SMS, "", time.Date(2026, 11, 23, 8, 0, 0, 0, paris)},
		{"Saturday night waits for Monday", time.Date(2026, 11, 28, 21, 0, 0, 0, paris), "Europe/Paris", channels.SMS, "", time.Date(2026, 11, 30, 8, 0, 0, 0, paris)},
		{"Christmas waits for the 26th", time.Date(2026, 12, 25, 9, 0, 0, 0, paris), "Europe/Paris", channels.SMS, "", time.Date(2026, 12, 26, 8, 0, 0, 0, paris)},
		{"1 May 2027 (a Saturday) waits for Monday", time.Date(2027, 5, 1, 9, 0, 0, 0, paris), "Europe/Paris", channels.SMS, "", time.Date(2027, 5, 3, 8, 0, 0, 0, paris)},
		{"the same instant in Tokyo is night", time.Date(2026, 11, 24, 14, 0, 0, 0, paris), "Asia/Tokyo", channels.SMS, "", time.Date(2026, 11, 25, 8, 0, 0, 0, tokyo)},
		{"email has no quiet hours", time.Date(2026, 11, 22, 3, 0, 0, 0, paris), "Europe/Paris", channels.Email, "", time.Date(2026, 11, 22, 3, 0, 0, 0, paris)},
		{"local time later today", time.Date(2026, 11, 24, 7, 0, 0, 0, paris), "Europe/Paris", channels.Email, "10:00", time.Date(2026, 11, 24, 10, 0, 0, 0, paris)},
		{"local time passed: tomorrow", time.Date(2026, 11, 24, 11, 0, 0, 0, paris), "Europe/Paris", channels.Email, "10:00", time.Date(2026, 11, 25, 10, 0, 0, 0, paris)},
		{"local time in New York", time.Date(2026, 11, 24, 11, 0, 0, 0, paris), "America/New_York", channels.Email, "10:00", time.Date(2026, 11, 24, 10, 0, 0, 0, ny)},
		{"local time across spring forward", time.Date(2026, 3, 28, 23, 0, 0, 0, paris), "Europe/Paris", channels.Email, "02:30", time.Date(2026, 3, 29, 3, 30, 0, 0, paris)},
		{"local time across fall back", time.Date(2026, 10, 24, 23, 0, 0, 0, paris), "Europe/Paris", channels.Email, "10:00", time.Date(2026, 10, 25, 10, 0, 0, 0, paris)},
		{"local time then quiet hours: Sunday 10:00 becomes Monday 08:00", time.Date(2026, 11, 21, 21, 0, 0, 0, paris), "Europe/Paris", channels.SMS, "10:00", time.Date(2026, 11, 23, 8, 0, 0, 0, paris)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Candidate{Contact: &dispatcher.Contact{ID: "x", Timezone: tt.tz}, Channel: tt.channel, Send: "r~x"}
			got := g.sendTime(tt.now, tt.localTime, c)
			if !got.Equal(tt.want) {
				t.Errorf("sendTime = %s, want %s", got.In(mustLoc(t, tt.tz)), tt.want.In(mustLoc(t, tt.tz)))
			}
		})
	}
}

// Jitter spreads deferred sends but never outside the window.
func TestGateJitterStaysInWindow(t *testing.T) {
	cal, err := throttle.ParseCalendar("mon-sat 08:00-08:01")
	if err != nil {
		t.Fatal(err)
	}
	g := New(Config{Quiet: map[channels.Kind]throttle.Calendar{channels.SMS: cal}, Jitter: 10 * time.Minute})
	paris := mustLoc(t, "Europe/Paris")
	now := time.Date(2026, 11, 24, 6, 0, 0, 0, paris)
	for i := range 200 {
		c := &Candidate{Contact: &dispatcher.Contact{Timezone: "Europe/Paris"}, Channel: channels.SMS, Send: "r~" + string(rune('a'+i%26)) + string(rune('a'+i/26))}
		got := g.sendTime(now, "", c)
		if got.Before(time.Date(2026, 11, 24, 8, 0, 0, 0, paris)) || !got.Before(time.Date(2026, 11, 24, 8, 1, 0, 0, paris)) {
			t.Fatalf("jittered send at %s, outside 08:00-08:01", got.In(paris))
		}
	}
}

var checkNow = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// Checks 2 and 3 on loaded values: suppression first, then consent for a
// marketing topic only.
func TestCheckLoaded(t *testing.T) {
	tests := []struct {
		name      string
		c         store.Checked
		marketing bool
		want      string
	}{
		{"clear, transactional", store.Checked{}, false, ""},
		{"clear, marketing without consent", store.Checked{}, true, ReasonNoConsent},
		{"marketing, withdrawn", store.Checked{Consent: dispatcher.Withdrawn}, true, ReasonNoConsent},
		{"marketing, granted", store.Checked{Consent: dispatcher.Granted}, true, ""},
		{"suppressed wins over consent", store.Checked{Suppressed: true, SuppressReason: dispatcher.SuppressBounce, Consent: dispatcher.Granted}, true, "suppressed_bounce"},
		{"suppressed for no reason given", store.Checked{Suppressed: true}, false, "suppressed_unsubscribe"},
		{"marketing, granted, paused", store.Checked{Consent: dispatcher.Granted, PausedUntil: checkNow.Add(time.Hour)}, true, ReasonPausedByRecipient},
		{"marketing, granted, pause over", store.Checked{Consent: dispatcher.Granted, PausedUntil: checkNow}, true, ""},
		{"marketing, no consent, paused", store.Checked{PausedUntil: checkNow.Add(time.Hour)}, true, ReasonNoConsent},
		{"transactional, paused", store.Checked{PausedUntil: checkNow.Add(time.Hour)}, false, ""},
		{"suppressed wins over a pause", store.Checked{Suppressed: true, SuppressReason: dispatcher.SuppressStop, Consent: dispatcher.Granted, PausedUntil: checkNow.Add(time.Hour)}, true, "suppressed_stop"},
	}
	for _, tt := range tests {
		if got := Verdict(tt.c, tt.marketing, checkNow); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// loader is a Loader whose answers the test sets, and which records what
// it was asked.
type loader struct {
	checked map[string]store.Checked // by "contact/channel"; absent: clear, consent granted
	reached map[string]bool          // by send id
	loads   []string                 // "contact/channel" read, in order
	asked   []string                 // send ids of earlier runs read
}

func (l *loader) LoadChecks(_ context.Context, _ *dispatcher.Topic, reqs []store.CheckRequest) ([]store.Checked, error) {
	out := make([]store.Checked, len(reqs))
	for i, r := range reqs {
		k := r.Contact + "/" + string(r.Channel)
		l.loads = append(l.loads, k)
		c, ok := l.checked[k]
		if !ok {
			c = store.Checked{Consent: dispatcher.Granted}
		}
		out[i] = c
	}
	return out, nil
}

func (l *loader) ReachedBefore(_ context.Context, ids []string) ([]bool, error) {
	l.asked = append(l.asked, ids...)
	out := make([]bool, len(ids))
	for i, id := range ids {
		out[i] = l.reached[id]
	}
	return out, nil
}

// TestDecideFallback: a fallback campaign sends each contact its first
// channel that passes address, suppression, consent and the earlier runs,
// or else gives its first channel's reason; a channel is read only for
// the contacts that no channel before it passed.
func TestDecideFallback(t *testing.T) {
	t.Parallel()
	const mobile = "+33612345678"
	contacts := []*dispatcher.Contact{
		{ID: "both", Email: "both@example.com", Phone: mobile},
		{ID: "email-suppressed", Email: "bounced@example.com", Phone: mobile},
		{ID: "phone-only", Phone: mobile},
		{ID: "nothing"},
		{ID: "no-consent", Email: "silent@example.com", Phone: mobile},
		{ID: "reached", Email: "reached@example.com", Phone: mobile},
		{ID: "suppressed-then-reached", Email: "bounced2@example.com", Phone: mobile},
	}
	l := &loader{
		checked: map[string]store.Checked{
			"email-suppressed/email":        {Suppressed: true, SuppressReason: dispatcher.SuppressBounce},
			"no-consent/email":              {},
			"no-consent/sms":                {Suppressed: true, SuppressReason: dispatcher.SuppressStop},
			"suppressed-then-reached/email": {Suppressed: true, SuppressReason: dispatcher.SuppressBounce},
		},
		reached: map[string]bool{
			dispatcher.SendID("r0", "reached", "any"):                 true,
			dispatcher.SendID("r0", "suppressed-then-reached", "any"): true,
		},
	}
	g := New(Config{Loader: l})
	camp := &dispatcher.Campaign{ID: "c", Channels: []channels.Kind{channels.Email, channels.SMS}, Fallback: true,
		Templates: map[channels.Kind]string{channels.Email: "mail", channels.SMS: "text"}}
	job := Job{Run: "r1", Campaign: camp, Topic: &dispatcher.Topic{ID: "news", Kind: dispatcher.Marketing}, Earlier: []string{"r0"}}
	ds, err := g.Decide(context.Background(), time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), job, contacts)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range ds {
		if d.Send != dispatcher.SendID("r1", d.Contact, "any") || d.Template != camp.Templates[d.Channel] {
			t.Errorf("%s: send %s, template %s", d.Contact, d.Send, d.Template)
		}
		got[d.Contact] = string(d.Channel) + " " + d.State + " " + d.Reason
	}
	want := map[string]string{
		"both":                    "email queued ",
		"email-suppressed":        "sms queued ",
		"phone-only":              "sms queued ",
		"nothing":                 "email suppressed no_address",
		"no-consent":              "email suppressed no_consent",
		"reached":                 "email suppressed reached_before",
		"suppressed-then-reached": "email suppressed suppressed_bounce",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	if len(ds) != len(contacts) {
		t.Errorf("%d decisions for %d contacts", len(ds), len(contacts))
	}
	wantLoads := []string{"both/email", "email-suppressed/email", "no-consent/email", "reached/email", "suppressed-then-reached/email",
		"email-suppressed/sms", "phone-only/sms", "no-consent/sms", "suppressed-then-reached/sms"}
	if diff := cmp.Diff(wantLoads, l.loads); diff != "" {
		t.Errorf("reads (-want +got):\n%s", diff)
	}
	var wantAsked []string
	for _, c := range []string{"both", "reached", "email-suppressed", "phone-only", "suppressed-then-reached"} {
		wantAsked = append(wantAsked, dispatcher.SendID("r0", c, "any"))
	}
	if diff := cmp.Diff(wantAsked, l.asked); diff != "" {
		t.Errorf("earlier sends read (-want +got):\n%s", diff)
	}
}
