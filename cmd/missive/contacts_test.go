package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
)

// "missive contacts export" and "erase" against the running service.
func TestContactsCommands(t *testing.T) {
	base := startMain(t, smtptest.New(t), twiliotest.NewServer(t))
	c := client{t: t, base: base}
	c.do("PUT", "/v1/topics/news", map[string]any{"kind": "marketing"}, 200)
	c.do("PUT", "/v1/contacts/cli-1", map[string]any{"email": "cli-1@shop.example"}, 200)
	c.do("POST", "/v1/contacts/cli-1/consents", map[string]any{"channel": "email", "topic": "news", "state": "granted"}, 201)
	c.do("POST", "/v1/suppressions", map[string]any{"channel": "email", "address": "cli-1@shop.example", "reason": "unsubscribe"}, 201)
	env := func(k string) string {
		return map[string]string{"MISSIVE_API_URL": base, "MISSIVE_API_KEY": apiKey}[k]
	}
	run := func(args ...string) (int, string, string) {
		var out, errs bytes.Buffer
		code := Main(context.Background(), args, env, &out, &errs)
		return code, out.String(), errs.String()
	}
	if code, out, errs := run("contacts", "export", "cli-1"); code != 0 || !strings.Contains(out, `"email":"cli-1@shop.example"`) || !strings.Contains(out, `"consent_history"`) {
		t.Errorf("export: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := run("contacts", "erase", "cli-1")
	if code != 0 {
		t.Fatalf("erase: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"contact cli-1 erased", "contact ", "consents ", "addresses ", "suppressions (1)", "consent_ledger (1)", "CNIL", "Art. 7(1)"} {
		if !strings.Contains(out, want) {
			t.Errorf("erase output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cli-1@shop.example") {
		t.Error("erase output shows the address")
	}
	if code, out, errs := run("contacts", "erase", "cli-1"); code != 1 || !strings.Contains(errs, "not_found") {
		t.Errorf("second erase: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := run("contacts", "export", "cli-1"); code != 1 || !strings.Contains(errs, "not_found") {
		t.Errorf("export after erasure: exit %d\n%s", code, errs)
	}
	file := t.TempDir() + "/contacts.ndjson"
	if err := os.WriteFile(file, []byte(`{"id":"imp-1","email":"imp-1@shop.example","consents":[{"channel":"email","topic":"news","state":"granted"}]}
{"id":"imp-2","email":"imp-2@shop.example","nickname":"Bo"}
{"id":"imp-3","email":"imp-3@shop.example","consents":[{"channel":"email","topic":"promos","state":"granted"}]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = run("contacts", "import", file)
	if code != 1 || !strings.Contains(out, "imported 1 contacts, 2 lines refused (of 3 lines)") ||
		!strings.Contains(out, "line 2: nickname is not a known field") || !strings.Contains(out, "line 3: consents[0].topic names no topic") {
		t.Errorf("contacts import: exit %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out+errs, "imp-2@shop.example") || strings.Contains(out+errs, "Bo") {
		t.Error("contacts import echoes a refused value")
	}
	c.do("GET", "/v1/contacts/imp-1", nil, 200)
	c.do("GET", "/v1/contacts/imp-2", nil, 404)
	if code, _, _ := run("contacts", "forget", "cli-1"); code != 2 {
		t.Errorf("unknown verb: exit %d, want 2", code)
	}
}
