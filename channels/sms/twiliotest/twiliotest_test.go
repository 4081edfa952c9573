package twiliotest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/twilio/twilio-go/client"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSignMatchesTwilioValidator(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, token, url string
		form             url.Values
	}{
		{"twilio-go vector", "12345", "https://mycompany.com/myapp.php?foo=1&bar=2", url.Values{
			"Digits": {"1234"}, "CallSid": {"CA1234567890ABCDE"}, "To": {"+18005551212"},
			"Caller": {"+14158675309"}, "From": {"+14158675309"},
			"ReasonConferenceEnded": {"test"}, "Reason": {"Participant"},
		}},
		{"status callback with port", twiliotest.AuthToken, "http://127.0.0.1:8080/webhooks/twilio/status", url.Values{
			"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "MessageStatus": {"undelivered"},
			"ErrorCode": {"30006"}, "To": {"+33612345678"}, "AccountSid": {twiliotest.AccountSID},
		}},
		{"inbound STOP, non-ASCII body", twiliotest.AuthToken, "https://missive.example/webhooks/twilio/inbound", url.Values{
			"Body": {"ARRÊT & stop=1 €"}, "From": {"+33612345678"}, "To": {"+33700000000"},
		}},
		{"GET webhook, no form", twiliotest.AuthToken, "https://missive.example/hook?a=1&b=%20x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := twiliotest.Sign(tt.token, tt.url, tt.form)
			params := map[string]string{}
			for k, v := range tt.form {
				params[k] = v[0]
			}
			v := client.NewRequestValidator(tt.token)
			if !v.Validate(tt.url, params, sig) {
				t.Fatalf("twilio-go rejects Sign's signature %q", sig)
			}
			if v.Validate(tt.url, params, twiliotest.Sign(tt.token+"x", tt.url, tt.form)) {
				t.Fatal("twilio-go accepts a signature made with another token")
			}
			if tt.form != nil && v.ValidateBody(tt.url, []byte(tt.form.Encode()), sig) != true {
				t.Fatal("twilio-go ValidateBody rejects Sign's signature")
			}
		})
	}
	// Twilio's published vector, as twilio-go's own test holds it.
	if got, want := twiliotest.Sign(tests[0].token, tests[0].url, tests[0].form), "vOEb5UThFn24KEfnOFLQY2AE5FY="; got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func post(t *testing.T, rawURL, user, pass string, form url.Values) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, b)
	}
	return resp.StatusCode, resp.Header, body
}

func TestServerHTTP(t *testing.T) {
	srv := twiliotest.NewServer(t)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	messages := srv.URL() + "/2010-04-01/Accounts/" + twiliotest.AccountSID + "/Messages.json"
	ok := url.Values{"To": {"+33612345678"}, "From": {"+15005550006"}, "Body": {"Hello"}}
	tests := []struct {
		name       string
		url        string
		user, pass string
		form       url.Values
		wantStatus int
		wantCode   float64
	}{
		{"no auth", messages, "", "", ok, 401, 20003},
		{"wrong token", messages, twiliotest.AccountSID, strings.Repeat("0", 32), ok, 401, 20003},
		{"other account in path", strings.Replace(messages, twiliotest.AccountSID, "AC"+strings.Repeat("1", 32), 1), twiliotest.AccountSID, twiliotest.AuthToken, ok, 404, 20404},
		{"unknown path", srv.URL() + "/2010-04-01/Accounts/" + twiliotest.AccountSID + "/Calls.json", twiliotest.AccountSID, twiliotest.AuthToken, ok, 404, 20404},
		{"To not E.164", messages, twiliotest.AccountSID, twiliotest.AuthToken, url.Values{"To": {"0612345678"}, "From": {"+15005550006"}, "Body": {"x"}}, 400, 21211},
		{"no To", messages, twiliotest.AccountSID, twiliotest.AuthToken, url.Values{"From": {"+15005550006"}, "Body": {"x"}}, 400, 21604},
		{"no sender", messages, twiliotest.AccountSID, twiliotest.AuthToken, url.Values{"To": {"+33612345678"}, "Body": {"x"}}, 400, 21603},
		{"no body", messages, twiliotest.AccountSID, twiliotest.AuthToken, url.Values{"To": {"+33612345678"}, "From": {"+15005550006"}}, 400, 21602},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, header, body := post(t, tt.url, tt.user, tt.pass, tt.form)
			if status != tt.wantStatus || body["code"] != tt.wantCode || body["status"] != float64(tt.wantStatus) {
				t.Errorf("got HTTP %d %v, want HTTP %d code %v", status, body, tt.wantStatus, tt.wantCode)
			}
			if status == 401 && header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if got := srv.Messages(); len(got) != 0 {
		t.Errorf("rejected requests were recorded: %v", got)
	}

	status, _, body := post(t, messages, twiliotest.AccountSID, twiliotest.AuthToken, ok)
	if status != http.StatusCreated {
		t.Fatalf("HTTP %d %v, want 201", status, body)
	}
	if !regexp.MustCompile(`^SM[0-9a-f]{32}$`).MatchString(body["sid"].(string)) {
		t.Errorf("sid = %v", body["sid"])
	}
	want := map[string]any{"status": "queued", "to": "+33612345678", "from": "+15005550006", "body": "Hello",
		"num_segments": "1", "account_sid": twiliotest.AccountSID, "direction": "outbound-api",
		"uri": "/2010-04-01/Accounts/" + twiliotest.AccountSID + "/Messages/" + body["sid"].(string) + ".json"}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v, want %v", k, body[k], v)
		}
	}
	if _, err := time.Parse(time.RFC1123Z, body["date_created"].(string)); err != nil {
		t.Errorf("date_created: %v", err)
	}
}

func TestFailuresAndWait(t *testing.T) {
	srv := twiliotest.NewServer(t)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	messages := srv.URL() + "/2010-04-01/Accounts/" + twiliotest.AccountSID + "/Messages.json"
	form := func(to string) url.Values {
		return url.Values{"To": {to}, "MessagingServiceSid": {"MG" + strings.Repeat("a", 32)}, "Body": {strings.Repeat("é", 71)}}
	}
	srv.Fail("+33600000001", 400, 21610)
	srv.FailOnce("+33600000002", 429, 20429)
	srv.SetRetryAfter(3)

	var got []int
	for _, to := range []string{"+33600000001", "+33600000001", "+33600000002", "+33600000002"} {
		status, header, body := post(t, messages, twiliotest.AccountSID, twiliotest.AuthToken, form(to))
		got = append(got, status)
		if status == 429 && header.Get("Retry-After") != "3" {
			t.Errorf("Retry-After = %q", header.Get("Retry-After"))
		}
		if status == 201 && (body["status"] != "accepted" || body["num_segments"] != "2" || body["from"] != nil) {
			t.Errorf("service message resource = %v", body)
		}
	}
	if diff := cmp.Diff([]int{400, 400, 429, 201}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	sent, err := srv.Wait(1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]twiliotest.Sent{{To: "+33600000002", MessagingServiceSid: "MG" + strings.Repeat("a", 32), Body: strings.Repeat("é", 71)}}, sent,
		cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".SID" }, cmp.Ignore())); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	if _, err := srv.Wait(2, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "1 of 2") {
		t.Errorf("Wait(2) = %v, want a timeout saying 1 of 2", err)
	}
	srv.ClearFailures()
	if status, _, _ := post(t, messages, twiliotest.AccountSID, twiliotest.AuthToken, form("+33600000001")); status != 201 {
		t.Errorf("after ClearFailures: HTTP %d", status)
	}
}

func TestReadTwiML(t *testing.T) {
	t.Parallel()
	const decl = `<?xml version="1.0" encoding="UTF-8"?>`
	tests := []struct {
		out, msg string
		ok, err  bool
	}{
		{decl + `<Response/>`, "", false, false},
		{decl + `<Response><Message>a &amp; &lt;b&gt;</Message></Response>`, "a & <b>", true, false},
		{``, "", false, true},
		{decl + `<Response>`, "", false, true},
		{decl + `<Response><Message>a</Message><Message>b</Message></Response>`, "", false, true},
		{decl + `<Response><Message><b>a</b></Message></Response>`, "", false, true},
		{decl + `<Response><Redirect>https://evil.example</Redirect></Response>`, "", false, true},
		{decl + `<Response>a<Message>b</Message></Response>`, "", false, true},
		{decl + `<Response/><Response/>`, "", false, true},
		{decl + `<Response><!-- x --></Response>`, "", false, true},
		{decl + `<?php x?><Response/>`, "", false, true},
	}
	for _, tt := range tests {
		msg, ok, err := twiliotest.ReadTwiML(tt.out)
		if msg != tt.msg || ok != tt.ok || (err != nil) != tt.err {
			t.Errorf("ReadTwiML(%q) = %q, %v, %v; want %q, %v, error %v", tt.out, msg, ok, err, tt.msg, tt.ok, tt.err)
		}
	}
}

func TestStartCountsFailuresAndArrivals(t *testing.T) {
	srv, err := twiliotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	messages := srv.URL() + "/2010-04-01/Accounts/" + twiliotest.AccountSID + "/Messages.json"
	form := url.Values{"To": {"+33612345678"}, "From": {"+15005550006"}, "Body": {"Hello"}}
	srv.FailOnce("+33612345678", 429, 20429)
	before := time.Now()
	for _, want := range []int{429, 201} {
		if status, _, body := post(t, messages, twiliotest.AccountSID, twiliotest.AuthToken, form); status != want {
			t.Fatalf("status %d (%v), want %d", status, body, want)
		}
	}
	if got := srv.Failed(); got != 1 {
		t.Errorf("Failed() = %d, want 1", got)
	}
	at := srv.Arrivals()
	if len(at) != 1 || at[0].Before(before) || len(srv.Messages()) != 1 {
		t.Errorf("Arrivals() = %v for %d messages, want one time after %v", at, len(srv.Messages()), before)
	}
}
