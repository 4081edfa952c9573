package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/feedback"
	"github.com/missive-dev/missive/templates"
)

// statusURL is what Twilio is told to call back: setup's PublicURL and the
// route, as cmd/missive gives it to the SMS channel.
// twilioStatusPath is where Twilio posts status callbacks.
const twilioStatusPath = "/webhooks/twilio/status"

const statusURL = "https://missive.example" + twilioStatusPath

// statusHarness is a twilioHarness whose worker sends SMS campaigns to c1
// through the Twilio API double.
type statusHarness struct {
	*twilioHarness
	runs int
}

func statusSetup(t *testing.T, opts ...option) *statusHarness {
	t.Helper()
	h := twilioSetup(t, append([]option{withWorker()}, opts...)...)
	must(t, h.b.d.Store.PutSegment(context.Background(), &dispatcher.Segment{ID: "c1-only", Contacts: []string{"c1"}}))
	// The provider rate limiter's state is left behind by the sends.
	h.volatile = []string{":rate:"}
	return &statusHarness{twilioHarness: h}
}

// sendSMS runs a new one-shot SMS campaign to c1 and returns its run, the
// send, and the message SID the Twilio double gave it, which Missive
// recorded when the message was accepted.
func (h *statusHarness) sendSMS(t *testing.T) (run, send, sid string) {
	t.Helper()
	ctx := context.Background()
	h.runs++
	camp := fmt.Sprintf("sms-%d", h.runs)
	must(t, h.b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: camp, Topic: "newsletter", Segment: "c1-only",
		Channels: []channels.Kind{channels.SMS}, Templates: map[channels.Kind]string{channels.SMS: "news-sms"}}))
	run, err := h.b.d.Pipeline.StartRun(ctx, camp, time.Now())
	must(t, err)
	if r := h.b.waitRun(t, run, 20*time.Second); r.Counters[dispatcher.StateSent] != 1 {
		t.Fatalf("run %s: counters %v, want one SMS sent", run, r.Counters)
	}
	send = dispatcher.SendID(run, "c1", channels.SMS)
	sd, err := h.b.d.Store.Send(ctx, send)
	must(t, err)
	i := slices.IndexFunc(h.b.twilio.Messages(), func(m twiliotest.Sent) bool { return m.SID == sd.Provider })
	if sd.Provider == "" || i < 0 || h.b.twilio.Messages()[i].To != stopPhone {
		t.Fatalf("send %s: provider id %q is not a message the Twilio double took for c1", send, sd.Provider)
	}
	return run, send, sd.Provider
}

// statusForm is a status callback as Twilio posts it; code "" leaves
// ErrorCode out, as Twilio does for messages that did not fail.
func statusForm(sid, status, code string) url.Values {
	f := url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "MessageStatus": {status}, "SmsStatus": {status},
		"AccountSid": {twiliotest.AccountSID}, "From": {"+33757000000"}, "To": {stopPhone}, "ApiVersion": {"2010-04-01"},
	}
	if code != "" {
		f.Set("ErrorCode", code)
	}
	return f
}

// status posts a signed status callback and wants it handled: 200 with
// empty TwiML.
func (h *twilioHarness) status(t *testing.T, sid, status, code string) {
	t.Helper()
	if r := h.sendStatus(t, statusForm(sid, status, code)); r.status != http.StatusOK || r.body != emptyTwiML {
		t.Fatalf("%s %s: %d %s", status, code, r.status, r.body)
	}
}

func (h *twilioHarness) sendStatus(t *testing.T, form url.Values) twilioResp {
	t.Helper()
	return h.post(t, twilioStatusPath, form.Encode(), twiliotest.Sign(twiliotest.AuthToken, statusURL, form))
}

// outcome is what feedback may change about one send.
type outcome struct {
	State, Reason, ErrorCode string
	Counters, Feedback       map[string]int64
	Suppression              string
	Suspended                bool // suppressed for a time, not for good
}

func (h *twilioHarness) outcome(t *testing.T, run, send string) outcome {
	t.Helper()
	ctx := context.Background()
	sd, err := h.b.d.Store.Send(ctx, send)
	must(t, err)
	r, err := h.b.d.Store.Run(ctx, run)
	must(t, err)
	o := outcome{State: sd.State, Reason: sd.Reason, ErrorCode: sd.ErrorCode, Counters: r.Counters, Feedback: r.Feedback}
	if sup, err := h.b.d.Store.Suppression(ctx, channels.SMS, stopPhone); err == nil {
		o.Suppression, o.Suspended = sup.Reason, !sup.Until.IsZero()
	} else if err != dispatcher.ErrNotFound {
		t.Fatal(err)
	}
	return o
}

func TestTwilioStatusDelivered(t *testing.T) {
	t.Parallel()
	h := statusSetup(t)
	run, send, sid := h.sendSMS(t)

	// Progress Missive already knows of writes nothing, and neither does
	// a status it does not know.
	before := h.snapshot(t)
	for _, st := range []string{"accepted", "queued", "sending", "sent", "scheduled", "partially_delivered"} {
		h.status(t, sid, st, "")
	}
	h.unchanged(t, before, "queued, sending, sent")

	h.status(t, sid, "delivered", "")
	want := outcome{State: dispatcher.StateDelivered, Counters: map[string]int64{"planned": 1, dispatcher.StateDelivered: 1},
		Feedback: map[string]int64{feedback.FeedbackDelivered: 1}}
	if diff := cmp.Diff(want, h.outcome(t, run, send)); diff != "" {
		t.Errorf("after delivered (-want +got):\n%s", diff)
	}

	// The same callback again, a read receipt, and statuses that come
	// late change nothing at all.
	before = h.snapshot(t)
	for _, st := range []string{"delivered", "delivered", "sent", "sending", "queued"} {
		h.status(t, sid, st, "")
	}
	h.unchanged(t, before, "duplicate and late callbacks")
	// A failure reported after the delivery cannot undo it.
	h.status(t, sid, "read", "")
	h.status(t, sid, "undelivered", "30007")
	h.status(t, sid, "failed", "")
	if diff := cmp.Diff(want, h.outcome(t, run, send)); diff != "" {
		t.Errorf("after late callbacks (-want +got):\n%s", diff)
	}
	if got := h.gateSMS(t, h.contact(t)); got != dispatcher.StateQueued {
		t.Errorf("gate decides %q, want queued", got)
	}
}

func TestTwilioStatusFailures(t *testing.T) {
	t.Parallel()
	bounced := func(reason, code, sup string) outcome {
		return outcome{State: dispatcher.StateBounced, Reason: reason, ErrorCode: code, Counters: map[string]int64{"planned": 1, dispatcher.StateBounced: 1},
			Feedback: map[string]int64{feedback.FeedbackHardBounces: 1}, Suppression: sup}
	}
	failed := func(code string) outcome {
		return outcome{State: dispatcher.StateFailed, Reason: string(channels.Undelivered), ErrorCode: code, Counters: map[string]int64{"planned": 1, dispatcher.StateFailed: 1},
			Feedback: map[string]int64{feedback.FeedbackFailed: 1}}
	}
	cases := []struct {
		status, code string
		want         outcome
		gate         string
	}{
		{"undelivered", "30005", bounced(string(channels.HardBounce), "30005", dispatcher.SuppressBounce), "suppressed_bounce"},
		{"undelivered", "30006", bounced(string(channels.HardBounce), "30006", dispatcher.SuppressBounce), "suppressed_bounce"},
		{"failed", "21211", bounced(string(channels.HardBounce), "21211", dispatcher.SuppressBounce), "suppressed_bounce"},
		{"failed", "21614", bounced(string(channels.HardBounce), "21614", dispatcher.SuppressBounce), "suppressed_bounce"},
		{"undelivered", "21610", bounced(string(channels.OptedOut), "21610", dispatcher.SuppressStop), "suppressed_stop"},
		{"failed", "21610", bounced(string(channels.OptedOut), "21610", dispatcher.SuppressStop), "suppressed_stop"},
		// Not the recipient's fault: the send failed, the number is kept.
		{"undelivered", "30007", failed("30007"), dispatcher.StateQueued},
		{"failed", "30008", failed("30008"), dispatcher.StateQueued},
		{"failed", "21408", failed("21408"), dispatcher.StateQueued},
		{"undelivered", "", failed(""), dispatcher.StateQueued},
		// One soft bounce is counted and changes neither state nor number.
		{"undelivered", "30003", outcome{State: dispatcher.StateSent, Counters: map[string]int64{"planned": 1, dispatcher.StateSent: 1},
			Feedback: map[string]int64{feedback.FeedbackSoftBounces: 1}}, dispatcher.StateQueued},
	}
	for _, tc := range cases {
		name := tc.status + "-" + tc.code
		if tc.code == "" {
			name = tc.status + "-none"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := statusSetup(t)
			run, send, sid := h.sendSMS(t)
			h.status(t, sid, "sent", "")
			h.status(t, sid, tc.status, tc.code)
			if diff := cmp.Diff(tc.want, h.outcome(t, run, send)); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
			if got := h.gateSMS(t, h.contact(t)); got != tc.gate {
				t.Errorf("gate decides %q, want %q", got, tc.gate)
			}
			// Twilio's retry of the callback, and a delivery reported after
			// the failure, change nothing.
			before := h.snapshot(t)
			h.status(t, sid, tc.status, tc.code)
			h.status(t, sid, "sent", "")
			h.unchanged(t, before, "the same callback again")
			h.status(t, sid, "delivered", "")
			got := h.outcome(t, run, send)
			if tc.want.State == dispatcher.StateSent {
				tc.want.State, tc.want.Counters = dispatcher.StateDelivered, map[string]int64{"planned": 1, dispatcher.StateDelivered: 1}
				tc.want.Feedback[feedback.FeedbackDelivered] = 1
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("outcome after late callbacks (-want +got):\n%s", diff)
			}
		})
	}
}

// Soft bounces (30003) on three sends to the same number within the window
// suspend it for a time; the same send bouncing twice counts once.
func TestTwilioStatusSoftBouncesSuspend(t *testing.T) {
	t.Parallel()
	// Each callback is recorded at the clock's time: a minute apart, as
	// real ones come, and each at its own time.
	h := statusSetup(t, withClock(time.Now()))
	clock := h.b.clock
	run1, send1, sid1 := h.sendSMS(t)
	_, _, sid2 := h.sendSMS(t)
	h.status(t, sid1, "undelivered", "30003")
	clock.Add(time.Minute)
	h.status(t, sid1, "undelivered", "30003")
	clock.Add(time.Minute)
	h.status(t, sid2, "undelivered", "30003")
	if got := h.suppression(t, stopPhone); got != "" {
		t.Fatalf("suppressed (%s) after soft bounces on two sends", got)
	}
	if got := h.outcome(t, run1, send1); got.State != dispatcher.StateSent || got.Feedback[feedback.FeedbackSoftBounces] != 1 {
		t.Errorf("first send: %+v, want sent with one soft bounce", got)
	}
	_, _, sid3 := h.sendSMS(t)
	clock.Add(time.Minute)
	h.status(t, sid3, "undelivered", "30003")
	sup, err := h.b.d.Store.Suppression(context.Background(), channels.SMS, stopPhone)
	must(t, err)
	if now := clock.Now(); sup.Reason != dispatcher.SuppressBounce || sup.Until.Before(now.Add(29*24*time.Hour)) || sup.Until.After(now.Add(31*24*time.Hour)) {
		t.Errorf("suppression %+v, want a bounce for 30 days", sup)
	}
	if got := h.gateSMS(t, h.contact(t)); got != "suppressed_bounce" {
		t.Errorf("gate decides %q, want suppressed_bounce", got)
	}
}

func TestTwilioStatusConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	h := statusSetup(t)
	run, send, sid := h.sendSMS(t)
	form := statusForm(sid, "undelivered", "30005")
	statuses := postSignedConcurrently(t, h.srv, twilioStatusPath, statusURL, form, 12)
	for _, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("statuses %v, want 200 each", statuses)
			break
		}
	}
	got := h.outcome(t, run, send)
	if got.State != dispatcher.StateBounced || got.Feedback[feedback.FeedbackHardBounces] != 1 || got.Counters[dispatcher.StateBounced] != 1 {
		t.Errorf("outcome %+v, want bounced and counted once", got)
	}
}

func TestTwilioStatusUnknownMessage(t *testing.T) {
	t.Parallel()
	h := statusSetup(t)
	h.sendSMS(t)
	before := h.snapshot(t)
	for _, st := range [][2]string{{"delivered", ""}, {"undelivered", "30005"}, {"failed", "21610"}, {"undelivered", "30003"}} {
		h.status(t, newMessageSID(t), st[0], st[1])
	}
	h.unchanged(t, before, "callbacks for messages Missive does not know")
	if got := h.suppression(t, stopPhone); got != "" {
		t.Errorf("suppressed (%s) by a message that is not ours", got)
	}
}

func TestTwilioStatusAttacks(t *testing.T) {
	t.Parallel()
	h := statusSetup(t)
	run, send, sid := h.sendSMS(t)
	valid := statusForm(sid, "delivered", "")
	sign := func(u string, f url.Values) string { return twiliotest.Sign(twiliotest.AuthToken, u, f) }
	with := func(k, v string) url.Values {
		f := url.Values{}
		for name, vs := range valid {
			f[name] = slices.Clone(vs)
		}
		f.Set(k, v)
		return f
	}
	bounce := with("MessageStatus", "undelivered")
	bounce.Set("ErrorCode", "30005")
	twice := with("MessageStatus", "delivered")
	twice.Add("MessageStatus", "undelivered")
	cases := []struct {
		name, path, body, sig string
	}{
		{"no signature", twilioStatusPath, bounce.Encode(), ""},
		{"garbage signature", twilioStatusPath, bounce.Encode(), "c2lnbmF0dXJl"},
		{"other token", twilioStatusPath, bounce.Encode(), twiliotest.Sign(strings.Repeat("0", 32), statusURL, bounce)},
		{"signed for the Host the server listens on", twilioStatusPath, bounce.Encode(), sign(h.srv.URL+twilioStatusPath, bounce)},
		{"signed for another host", twilioStatusPath, bounce.Encode(), sign("https://evil.example"+twilioStatusPath, bounce)},
		{"signed for http", twilioStatusPath, bounce.Encode(), sign("http://missive.example"+twilioStatusPath, bounce)},
		{"signed for the inbound webhook", twilioStatusPath, bounce.Encode(), sign(twilioURL, bounce)},
		{"signed without the query sent", twilioStatusPath + "?x=1", bounce.Encode(), sign(statusURL, bounce)},
		{"signed with another query", twilioStatusPath + "?x=1", bounce.Encode(), sign(statusURL+"?x=2", bounce)},
		{"status changed after signing", twilioStatusPath, with("MessageStatus", "undelivered").Encode(), sign(statusURL, valid)},
		{"error code changed after signing", twilioStatusPath, with("ErrorCode", "21610").Encode(), sign(statusURL, with("ErrorCode", "30007"))},
		{"error code added after signing", twilioStatusPath, bounce.Encode(), sign(statusURL, with("MessageStatus", "undelivered"))},
		{"sid changed after signing", twilioStatusPath, bounce.Encode(), sign(statusURL, with("MessageSid", newMessageSID(t)))},
		{"number changed after signing", twilioStatusPath, with("To", otherPhone).Encode(), sign(statusURL, valid)},
		{"parameter given twice", twilioStatusPath, twice.Encode(), sign(statusURL, twice)},
		{"parameter given twice, first signed", twilioStatusPath, bounce.Encode() + "&ErrorCode=21610", sign(statusURL, bounce)},
	}
	for _, tc := range cases {
		before := h.snapshot(t)
		r := h.post(t, tc.path, tc.body, tc.sig)
		if r.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403: %s", tc.name, r.status, r.body)
		}
		h.unchanged(t, before, tc.name)
	}

	// Signed but malformed: 400, nothing changed.
	for name, f := range map[string]url.Values{
		"no MessageSid":          with("MessageSid", ""),
		"upper-case sid":         with("MessageSid", strings.ToUpper(sid)),
		"sid of a call":          with("MessageSid", "CA"+sid[2:]),
		"sid with a key part":    with("MessageSid", sid+":x"),
		"no MessageStatus":       with("MessageStatus", ""),
		"status with markup":     with("MessageStatus", "<delivered>"),
		"upper-case status":      with("MessageStatus", "DELIVERED"),
		"error code not numeric": with("ErrorCode", "30005;DROP"),
		"error code too long":    with("ErrorCode", strings.Repeat("3", 40)),
		"negative error code":    with("ErrorCode", "-30005"),
	} {
		before := h.snapshot(t)
		if r := h.sendStatus(t, f); r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", name, r.status, r.body)
		}
		h.unchanged(t, before, name)
	}

	// Too large, wrong type, wrong method.
	before := h.snapshot(t)
	h.refusesMalformed(t, twilioStatusPath, statusURL, bounce)
	h.unchanged(t, before, "refused requests")
	if got := h.outcome(t, run, send); got.State != dispatcher.StateSent || got.Suppression != "" {
		t.Fatalf("refused requests changed the send: %+v", got)
	}

	// Signed as Twilio signs it, query included, the delivery is taken.
	r := h.post(t, twilioStatusPath+"?rc=3&rp=all", valid.Encode(), sign(statusURL+"?rc=3&rp=all", valid))
	if r.status != http.StatusOK || r.body != emptyTwiML {
		t.Fatalf("valid request: %d %s", r.status, r.body)
	}
	if got := h.outcome(t, run, send); got.State != dispatcher.StateDelivered || got.Feedback[feedback.FeedbackDelivered] != 1 {
		t.Errorf("valid request: %+v, want delivered", got)
	}
}

func TestTwilioStatusOffWithoutToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := b.srv
	form := statusForm(newMessageSID(t), "undelivered", "30005")
	req, _ := http.NewRequest("POST", srv.URL+twilioStatusPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twiliotest.Sign("", statusURL, form))
	res, err := srv.Client().Do(req)
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("status %d, want 404", res.StatusCode)
	}
}

// FuzzTwilioStatus checks that no form, signed or not, gets a server
// error, and that a handled callback is answered with empty TwiML. The
// seeds include a message Missive really sent.
func FuzzTwilioStatus(f *testing.F) {
	check := func(err error) {
		if err != nil {
			f.Fatal(err)
		}
	}
	b := setup(f, withTwilioWebhooks())
	ctx := context.Background()
	s := b.d.Store
	check(s.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Kind: dispatcher.Marketing}))
	check(s.PutTemplate(ctx, &templates.Template{ID: "news-sms", SMS: &templates.SMS{Body: "News"}}))
	check(s.UpsertContact(ctx, &dispatcher.Contact{ID: "c1", Phone: stopPhone}, "Europe/Paris"))
	check(s.RecordConsent(ctx, "c1", dispatcher.ConsentEvent{Channel: channels.SMS, Topic: "newsletter", State: dispatcher.Granted, Source: "api"}))
	check(s.PutSegment(ctx, &dispatcher.Segment{ID: "c1-only", Contacts: []string{"c1"}}))
	check(b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "sms", Topic: "newsletter", Segment: "c1-only",
		Channels: []channels.Kind{channels.SMS}, Templates: map[channels.Kind]string{channels.SMS: "news-sms"}}))
	stop := b.startWorker(f)
	run, err := b.d.Pipeline.StartRun(ctx, "sms", time.Now())
	check(err)
	if _, err := b.twilio.Wait(1, 20*time.Second); err != nil {
		f.Fatal(err)
	}
	var sid string
	waitFor(f, "the SMS to be sent", 20*time.Second, func() bool {
		if sd, err := s.Send(ctx, dispatcher.SendID(run, "c1", channels.SMS)); err == nil && sd.State == dispatcher.StateSent {
			sid = sd.Provider
		}
		return sid != ""
	})
	stop()

	for _, body := range []string{
		statusForm(sid, "delivered", "").Encode(),
		statusForm(sid, "undelivered", "30003").Encode(),
		statusForm(sid, "undelivered", "30005").Encode(),
		statusForm(sid, "failed", "21610").Encode(),
		statusForm(sid, "undelivered", "30007").Encode(),
		statusForm(sid, "sent", "").Encode(),
		statusForm("SM"+strings.Repeat("a", 32), "delivered", "").Encode(),
		statusForm("MM"+strings.Repeat("b", 32), "undelivered", "0").Encode(),
		"MessageSid=SM&MessageStatus=delivered", "ErrorCode=%zz", "MessageStatus=a&MessageStatus=b", "a=1;b=2", "%", "&&&=", "\xff=\xfe",
		"MessageSid=" + sid + "&MessageStatus=failed&ErrorCode=00000000000030005",
		"MessageSid=" + sid + "&MessageStatus=undelivered&ErrorCode=30005&To=%2B",
	} {
		f.Add(body, true)
		f.Add(body, false)
	}
	h := b.srv.Config.Handler
	f.Fuzz(func(t *testing.T, body string, signed bool) {
		req := httptest.NewRequest("POST", twilioStatusPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if form, err := url.ParseQuery(body); signed && err == nil {
			req.Header.Set("X-Twilio-Signature", twiliotest.Sign(twiliotest.AuthToken, statusURL, form))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			if rec.Body.String() != emptyTwiML {
				t.Fatalf("answer %q for %q", rec.Body, body)
			}
		case http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}
