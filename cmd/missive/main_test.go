package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/missive-dev/missive/throttle/redistest"
)

const apiKey = "e2e-secret-0123456789"

// dkimPublic is the public key of the DKIM key startMain configures.
var dkimPublic string

// startMain runs "missive serve" as the binary would run, on :0, against a
// real Redis, SMTP server and the Twilio API double, and returns its base
// URL.
func startMain(t *testing.T, smtp *smtptest.Server, twilio *twiliotest.Server) string {
	t.Helper()
	api, _ := startMainWith(t, smtp, twilio, nil)
	return api
}

// startMainWith is startMain with more settings; it also returns the bounce
// listener's address when MISSIVE_BOUNCE_SMTP_ADDR is set.
func startMainWith(t *testing.T, smtp *smtptest.Server, twilio *twiliotest.Server, extra map[string]string) (api, bounceAddr string) {
	t.Helper()
	r := redistest.New(t)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyFile := t.TempDir() + "/dkim.pem"
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	dkimPublic = base64.StdEncoding.EncodeToString(pub)
	env := map[string]string{
		"MISSIVE_REDIS_URL":      r.URL,
		"MISSIVE_PREFIX":         r.Prefix,
		"MISSIVE_HTTP_ADDR":      "127.0.0.1:0",
		"MISSIVE_OPS_ADDR":       "127.0.0.1:0",
		"MISSIVE_PUBLIC_URL":     "https://missive.example",
		"MISSIVE_SECRET":         "e2e-secret-e2e-secret-e2e-secret-e2e",
		"MISSIVE_DATA_KEYS":      "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"MISSIVE_API_KEYS":       "e2e:" + apiKey,
		"MISSIVE_SMTP_URL":       smtp.URL(),
		"MISSIVE_EMAIL_FROM":     "Shop <news@shop.example>",
		"MISSIVE_RETURN_PATH":    "bounces@shop.example",
		"MISSIVE_DKIM_DOMAIN":    "shop.example",
		"MISSIVE_DKIM_SELECTOR":  "mx2026",
		"MISSIVE_DKIM_KEY_FILE":  keyFile,
		"TWILIO_ACCOUNT_SID":     twiliotest.AccountSID,
		"TWILIO_AUTH_TOKEN":      twiliotest.AuthToken,
		"MISSIVE_SMS_FROM":       "+33757000000",
		"MISSIVE_TWILIO_API_URL": twilio.URL(),
		"MISSIVE_QUIET_SMS":      "daily 00:00-24:00",
		"MISSIVE_LOG_LEVEL":      "debug",
	}
	for k, v := range extra {
		env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var logs bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve"}, func(k string) string { return env[k] }, pw, &logs)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("Main exited with %d: %s", code, logs.String())
		}
		for _, secret := range []string{"customer@shop.example", "+33612345678", apiKey} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("logs contain personal data or a secret")
			}
		}
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "missive: listening on "); ok {
			api = addr
		}
		if addr, ok := strings.CutPrefix(sc.Text(), "missive: bounce listener on "); ok {
			bounceAddr, _, _ = strings.Cut(addr, " ")
		}
		if api != "" && (bounceAddr != "" || env["MISSIVE_BOUNCE_SMTP_ADDR"] == "") {
			go io.Copy(io.Discard, pr)
			return api, bounceAddr
		}
	}
	t.Fatalf("Main did not start: %s", logs.String())
	return "", ""
}

type client struct {
	t    *testing.T
	base string
}

func (c client) do(method, path string, body any, want int) map[string]any {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, raw)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// waitRun reads the run's stats until done holds of them or timeout has
// passed, and returns the last read: the caller's checks say what is
// wrong with them.
func (c client) waitRun(run string, timeout time.Duration, done func(stats map[string]any) bool) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		stats := c.do("GET", "/v1/runs/"+run, nil, 200)
		if done(stats) || time.Now().After(deadline) {
			return stats
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// completed tells a run's stats that it has completed.
func completed(stats map[string]any) bool { return stats["state"] == "completed" }

// The whole service, driven only through its HTTP API: contacts, consent,
// templates, a segment, a campaign run to the end, and the stats.
func TestServeEndToEnd(t *testing.T) {
	smtp := smtptest.New(t)
	twilio := twiliotest.NewServer(t)
	c := client{t: t, base: startMain(t, smtp, twilio)}

	c.do("GET", "/healthz", nil, 200)
	c.do("GET", "/readyz", nil, 200)
	c.do("GET", "/v1/topics", nil, 200)
	req, _ := http.NewRequest("GET", c.base+"/v1/topics", nil)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 401 {
		t.Fatalf("no key: %v %v, want 401", res.StatusCode, err)
	}

	c.do("PUT", "/v1/topics/newsletter", map[string]any{"kind": "marketing", "name": "Newsletter"}, 200)
	c.do("PUT", "/v1/templates/mail", map[string]any{"email": map[string]any{
		"subject": "Hello {{default \"there\" .Attr.first_name}}", "html": "<p>News for {{.Attr.first_name}}</p>"}}, 200)
	c.do("PUT", "/v1/templates/text", map[string]any{"sms": map[string]any{"body": "News for {{.Attr.first_name}}"}}, 200)
	contacts := []map[string]any{
		{"id": "u1", "email": "customer@shop.example", "phone": "+33612345678", "tags": []string{"news"}, "attributes": map[string]string{"first_name": "Ana"}},
		{"id": "u2", "email": "other@shop.example", "tags": []string{"news"}, "attributes": map[string]string{"first_name": "Ben"}},
		{"id": "u3", "email": "silent@shop.example", "tags": []string{"news"}, "attributes": map[string]string{"first_name": "Cy"}},
	}
	for _, ct := range contacts {
		id := ct["id"].(string)
		delete(ct, "id")
		c.do("PUT", "/v1/contacts/"+id, ct, 200)
	}
	for _, g := range []struct{ id, ch string }{{"u1", "email"}, {"u1", "sms"}, {"u2", "email"}} {
		c.do("POST", "/v1/contacts/"+g.id+"/consents", map[string]any{"channel": g.ch, "topic": "newsletter", "state": "granted",
			"evidence": map[string]string{"form": "signup"}}, 201)
	}
	c.do("PUT", "/v1/segments/news", map[string]any{"tags_all": []string{"news"}}, 200)
	if got := c.do("GET", "/v1/segments/news/count", nil, 200); fmt.Sprint(got["count"]) != "3" {
		t.Errorf("segment count = %v, want 3", got)
	}
	c.do("POST", "/v1/campaigns", map[string]any{"id": "launch", "topic": "newsletter", "segment": "news",
		"channels": []string{"email", "sms"}, "templates": map[string]string{"email": "mail", "sms": "text"}}, 201)
	run := c.do("POST", "/v1/campaigns/launch/start", nil, 202)["run"].(string)

	stats := c.waitRun(run, 30*time.Second, completed)
	if stats["state"] != "completed" || stats["balanced"] != true {
		t.Fatalf("run not completed and balanced: %v", stats)
	}
	counters := stats["counters"].(map[string]any)
	want := map[string]float64{"planned": 6, "sent": 3, "no_consent": 1, "no_address": 2}
	for k, v := range want {
		if counters[k] != v {
			t.Errorf("counter %s = %v, want %v (all: %v)", k, counters[k], v, counters)
		}
	}
	var rcpts []string
	for _, m := range smtp.Messages() {
		rcpts = append(rcpts, m.To...)
		if m.From != "bounces@shop.example" {
			t.Errorf("envelope sender %q, want MISSIVE_RETURN_PATH", m.From)
		}
		verifs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{
			LookupTXT: func(domain string) ([]string, error) {
				if domain != "mx2026._domainkey.shop.example" {
					return nil, fmt.Errorf("no record for %s", domain)
				}
				return []string{"v=DKIM1; k=ed25519; p=" + dkimPublic}, nil
			},
		})
		if err != nil || len(verifs) != 1 || verifs[0].Err != nil {
			t.Errorf("DKIM does not verify: %v %+v", err, verifs)
		}
	}
	slices.Sort(rcpts)
	if !slices.Equal(rcpts, []string{"customer@shop.example", "other@shop.example"}) {
		t.Errorf("emails went to %v", rcpts)
	}
	if sms := twilio.Messages(); len(sms) != 1 || sms[0].To != "+33612345678" {
		t.Errorf("SMS: %+v", sms)
	}
	camp := c.do("GET", "/v1/campaigns/launch", nil, 200)
	if camp["state"] != "completed" {
		t.Errorf("campaign state %v, want completed", camp["state"])
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	base := map[string]string{
		"MISSIVE_SECRET":    strings.Repeat("s", 32),
		"MISSIVE_API_KEYS":  "a:" + strings.Repeat("k", 20),
		"MISSIVE_DATA_KEYS": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"MISSIVE_REDIS_URL": "redis://127.0.0.1:1",
	}
	tests := []struct{ key, value, want string }{
		{"MISSIVE_SECRET", "short", "MISSIVE_SECRET"},
		{"MISSIVE_API_KEYS", "", "MISSIVE_API_KEYS"},
		{"MISSIVE_DATA_KEYS", "k1:c2hvcnQ=", "MISSIVE_DATA_KEYS"},
		{"MISSIVE_DEFAULT_TIMEZONE", "Mars/Olympus", "MISSIVE_DEFAULT_TIMEZONE"},
		{"MISSIVE_CAPS", "email:2/eternity", "MISSIVE_CAPS"},
		{"MISSIVE_QUIET_SMS", "mon-sat 25:00-20:00", "MISSIVE_QUIET_SMS"},
		{"MISSIVE_RATE_SMS", "fast", "MISSIVE_RATE_SMS"},
		{"MISSIVE_REDIS_URL", "http://x", "MISSIVE_REDIS_URL"},
		{"MISSIVE_SMTP_URL", "smtp://relay.example", "MISSIVE_EMAIL_FROM"},
		{"TWILIO_ACCOUNT_SID", "AC0123", "TWILIO_AUTH_TOKEN"},
		{"MISSIVE_CONCURRENCY", "many", "MISSIVE_CONCURRENCY"},
		{"MISSIVE_SMTP_CONNS", "0", "MISSIVE_SMTP_CONNS"},
		{"MISSIVE_RETURN_PATH", "Bounces <b@x.example>", "MISSIVE_RETURN_PATH"},
		{"MISSIVE_TOKEN_KEYS", "k2:c2hvcnQ=", "MISSIVE_TOKEN_KEYS"},
		{"MISSIVE_TOKEN_KEYS", "K2:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "MISSIVE_TOKEN_KEYS"},
		{"MISSIVE_UNSUBSCRIBE_MAILTO", "not an address", "MISSIVE_UNSUBSCRIBE_MAILTO"},
		{"MISSIVE_DKIM_DOMAIN", "shop.example", "MISSIVE_DKIM_KEY_FILE"},
		{"MISSIVE_SOFT_BOUNCES", "3 per week", "MISSIVE_SOFT_BOUNCES"},
		{"MISSIVE_MAX_BOUNCE_RATE", "5", "MISSIVE_MAX_BOUNCE_RATE"},
		{"MISSIVE_MAX_COMPLAINT_RATE", "-1%", "MISSIVE_MAX_COMPLAINT_RATE"},
		{"MISSIVE_BOUNCE_SMTP_ADDR", ":2525", "MISSIVE_BOUNCE_DOMAIN"},
		{"MISSIVE_DKIM_KEY_FILE", "/nonexistent/key.pem", "MISSIVE_DKIM"},
		{"MISSIVE_INACTIVE_AFTER", "three years", "MISSIVE_INACTIVE_AFTER"},
	}
	for _, tt := range tests {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		env[tt.key] = tt.value
		var stderr bytes.Buffer
		code := Main(context.Background(), []string{"worker"}, func(k string) string { return env[k] }, io.Discard, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%s=%q: exit %d, stderr %q; want an error naming %s", tt.key, tt.value, code, stderr.String(), tt.want)
		}
	}
}

// The demo runs end to end against a real Redis and says what happened.
func TestDemo(t *testing.T) {
	r := redistest.New(t)
	runDemo(t, r.URL, r.Prefix)
}

// runDemo runs the demo with 300 contacts on the Redis at url, under
// prefix, and checks what it says.
func runDemo(t *testing.T, url, prefix string) {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{"MISSIVE_REDIS_URL": url, "MISSIVE_PREFIX": prefix, "MISSIVE_OUTBOX_DIR": dir}
	var out, errs bytes.Buffer
	code := Main(context.Background(), []string{"demo", "--contacts", "300"}, func(k string) string { return env[k] }, &out, &errs)
	if code != 0 {
		t.Fatalf("demo exited %d: %s %s", code, out.String(), errs.String())
	}
	for _, want := range []string{"Seeded 300 contacts", "balanced: true", "sent", "no_consent", "Outbox: " + dir} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// The admin commands drive a running Missive through its API.
func TestAdminCommands(t *testing.T) {
	smtp := smtptest.New(t)
	base := startMain(t, smtp, twiliotest.NewServer(t))
	c := client{t: t, base: base}
	c.do("PUT", "/v1/topics/news", map[string]any{"kind": "marketing"}, 200)
	c.do("PUT", "/v1/templates/mail", map[string]any{"email": map[string]any{"subject": "Hi", "text": "News"}}, 200)
	c.do("PUT", "/v1/segments/all", map[string]any{}, 200)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := func(k string) string {
		return map[string]string{"MISSIVE_API_URL": base, "MISSIVE_API_KEY": apiKey}[k]
	}
	run := func(args ...string) (int, string) {
		var out, errs bytes.Buffer
		code := Main(context.Background(), args, env, &out, &errs)
		return code, out.String() + errs.String()
	}
	contacts := write("contacts.ndjson", `{"id":"a1","email":"a1@shop.example","consents":[{"channel":"email","topic":"news","state":"granted"}]}
{"id":"a2","email":"not-an-address"}
{"id":"a3","email":"a3@shop.example","consents":[{"channel":"email","topic":"news","state":"granted"}]}
`)
	code, out := run("import", contacts)
	if code != 1 || !strings.Contains(out, "imported 2 contacts, 1 lines refused") || !strings.Contains(out, "line 2: email") {
		t.Errorf("import: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "not-an-address") {
		t.Error("import output echoes a refused address")
	}
	camp := write("campaign.json", `{"id":"weekly","topic":"news","segment":"all","channels":["email"],"templates":{"email":"mail"}}`)
	if code, out := run("campaign", "create", camp); code != 0 || !strings.Contains(out, "campaign weekly created") {
		t.Fatalf("create: exit %d\n%s", code, out)
	}
	if code, out := run("campaign", "create", camp); code != 1 || !strings.Contains(out, "conflict") {
		t.Errorf("second create: exit %d\n%s", code, out)
	}
	code, out = run("campaign", "start", "-key", "monday", "weekly")
	if code != 0 || !strings.Contains(out, "run weekly-") || !strings.Contains(out, "started") {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	if code, again := run("campaign", "start", "-key", "monday", "weekly"); code != 0 || !strings.Contains(again, "was started before with this key") {
		t.Errorf("the same start again: exit %d\n%s", code, again)
	}
	// watch follows the run to its end, then shows its status.
	if code, out = run("campaign", "watch", "-every", "100ms", "weekly"); code != 0 || !strings.Contains(out, ": completed") {
		t.Fatalf("watch: exit %d\n%s", code, out)
	}
	if code, busy := run("campaign", "start", "weekly"); code != 1 || !strings.Contains(busy, "completed") {
		t.Errorf("a start of a completed campaign: exit %d\n%s", code, busy)
	}
	code, out = run("campaign", "status", "weekly")
	for _, want := range []string{"campaign weekly: completed", "  sent    2\n", "  = total 2 of 2 planned, balanced", "gate decided: queued 2"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: exit %d, lacks %q:\n%s", code, want, out)
		}
	}
	if code, out := run("campaign", "status", "nope"); code != 1 || !strings.Contains(out, "not_found") {
		t.Errorf("status of an unknown campaign: exit %d\n%s", code, out)
	}
}

func TestParseFeedback(t *testing.T) {
	p, err := parseFeedback("4/2d:12h", "2.5%", "0.1%")
	if err != nil {
		t.Fatal(err)
	}
	if p.SoftBounces != 4 || p.SoftWindow != 48*time.Hour || p.SoftSuspend != 12*time.Hour || p.MaxBounceRate != 0.025 || p.MaxComplaintRate != 0.001 {
		t.Errorf("policy %+v", p)
	}
}
