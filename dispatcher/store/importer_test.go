package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// A line is imported whole or refused whole, naming its number and the
// field at fault; the others are imported.
func TestImportRefusesLinesTheAPIWouldRefuse(t *testing.T) {
	s, ctx := setup(t)
	if err := s.PutTopic(ctx, &dispatcher.Topic{ID: "news", Kind: dispatcher.Marketing}); err != nil {
		t.Fatal(err)
	}
	lines := []string{
		/* 1 */ `{"id":"ok1","email":"ok1@example.com","consents":[{"channel":"email","topic":"news","state":"granted"}]}`,
		/* 2 */ `{"id":"bad2","email":"bad2@example.com","mail":"x"}`,
		/* 3 */ `{"id":"bad3","email":"bad3@example.com","consents":[{"channel":"email","topic":"news","state":"granted"},{"channel":"email","topic":"news","state":"granted","scope":"all"}]}`,
		/* 4 */ `{"id":"bad4","email":"bad4@example.com","consents":[{"channel":"email","topic":"news","state":"granted"},{"channel":"email","topic":"promos","state":"granted"}]}`,
		/* 5 */ `{"id":"bad5","email":"bad5@example.com","created_at":"2020-01-01T00:00:00Z"}`,
		/* 6 */ `{"id":"bad6","email":"bad6@example.com","tags":"vip"}`,
		/* 7 */ `not json`,
		/* 8 */ ``,
		/* 9 */ `{"id":"bad9","email":"bad9@example.com"} {"id":"x"}`,
		/* 10 */ `["bad10"]`,
		/* 11 */ `{"id":"bad11","email":"bad11@example.com","consents":[{"channel":"fax","topic":"news","state":"granted"}]}`,
		/* 12 */ `{"id":"bad12","email":"bad12@example.com","attributes":{"note":"` + strings.Repeat("x", maxImportLine) + `"}}`,
		/* 13 */ `{"id":"ok13","phone":"+33612345678"}` + "\r",
		/* 14 */ `{"id":"bad14","email":"bad14@example.com","consents":[{"channel":"email","topic":"news","state":"granted","at":"yesterday"}]}`,
		/* 15 */ `{"id":"ok15","email":"ok15@example.com"}`,
	}
	res, err := s.ImportContacts(ctx, strings.NewReader(strings.Join(lines, "\n")), "Europe/Paris", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &ImportResult{Lines: 14, Imported: 3, Failed: 11, Errors: []ImportError{
		{Line: 2, Field: "mail", Message: "is not a known field"},
		{Line: 3, Field: "consents[1].scope", Message: "is not a known field"},
		{Line: 4, Field: "consents[1].topic", Message: "names no topic"},
		{Line: 5, Field: "created_at", Message: "is not a known field"},
		{Line: 6, Field: "tags", Message: "must be an array"},
		{Line: 7, Message: "is not valid JSON"},
		{Line: 9, Message: "must hold one JSON object and nothing after it"},
		{Line: 10, Message: "must be a JSON object"},
		{Line: 11, Field: "consents[0].channel", Message: "must be email or sms"},
		{Line: 12, Message: fmt.Sprintf("is longer than %d bytes", maxImportLine)},
		{Line: 14, Field: "consents[].at", Message: "must be a time in RFC 3339 form (2026-03-01T10:00:00Z)"},
	}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("ImportContacts (-want +got):\n%s", diff)
	}
	for _, id := range []string{"ok1", "ok13", "ok15"} {
		if _, err := s.Contact(ctx, id); err != nil {
			t.Errorf("contact %s: %v", id, err)
		}
	}
	if cur, err := s.Consents(ctx, "ok1"); err != nil || len(cur) != 1 {
		t.Errorf("ok1's consents: %v, %v; want the one granted", cur, err)
	}

	// Nothing of a refused line is written: no record, no index entry, no
	// consent, no address.
	if n, err := s.Redis.ZCard(ctx, s.Key("contacts")).Result(); err != nil || n != 3 {
		t.Errorf("contact index holds %d (%v), want the 3 imported", n, err)
	}
	for i := 2; i <= 14; i++ {
		id := fmt.Sprintf("bad%d", i)
		if _, err := s.Contact(ctx, id); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("refused contact %s: %v, want not found", id, err)
		}
		keys, err := s.Redis.Keys(ctx, s.ContactKey(id)+"*").Result()
		if err != nil || len(keys) != 0 {
			t.Errorf("refused contact %s left keys %v (%v)", id, keys, err)
		}
		if got, err := s.Redis.Exists(ctx, s.Key("addr", s.AddressHash(channels.Email, id+"@example.com"))).Result(); err != nil || got != 0 {
			t.Errorf("refused contact %s left its address index (%v)", id, err)
		}
	}
	if b, _ := json.Marshal(res); strings.Contains(string(b), "@example.com") || strings.Contains(string(b), "promos") {
		t.Errorf("the result quotes a value: %s", b)
	}
}

func TestImportListsTheFirstRefusedLinesAndCountsAll(t *testing.T) {
	s, ctx := setup(t)
	var b strings.Builder
	for i := range MaxImportErrors + 5 {
		fmt.Fprintf(&b, `{"id":"c%d","e-mail":"x"}`+"\n", i)
	}
	b.WriteString(`{"id":"last"}` + "\n")
	res, err := s.ImportContacts(ctx, strings.NewReader(b.String()), "Europe/Paris", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines != MaxImportErrors+6 || res.Imported != 1 || res.Failed != MaxImportErrors+5 || len(res.Errors) != MaxImportErrors || !res.ErrorsCapped {
		t.Errorf("lines %d, imported %d, failed %d, %d errors listed, capped %v; want %d, 1, %d, %d, true",
			res.Lines, res.Imported, res.Failed, len(res.Errors), res.ErrorsCapped, MaxImportErrors+6, MaxImportErrors+5, MaxImportErrors)
	}
	if last := res.Errors[len(res.Errors)-1]; last.Line != MaxImportErrors || last.Field != "e-mail" {
		t.Errorf("last listed error %+v, want line %d, field e-mail", last, MaxImportErrors)
	}
}

// An ImportLine marshals to a line ImportContacts takes: the contact's
// times, which are Missive's, are left out.
func TestImportLineMarshalsWhatImportReads(t *testing.T) {
	s, ctx := setup(t)
	if err := s.PutTopic(ctx, &dispatcher.Topic{ID: "news", Kind: dispatcher.Marketing}); err != nil {
		t.Fatal(err)
	}
	l := ImportLine{Contact: dispatcher.Contact{ID: "m1", Email: "m1@example.com", Tags: []string{"vip"}, CreatedAt: testNow},
		Consents: []dispatcher.ConsentEvent{{Channel: channels.Email, Topic: "news", State: dispatcher.Granted, At: testNow}}}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "created_at") {
		t.Errorf("an import line holds the contact's times: %s", b)
	}
	res, err := s.ImportContacts(ctx, strings.NewReader(string(b)+"\n"), "Europe/Paris", nil)
	if err != nil || res.Imported != 1 {
		t.Fatalf("import of a marshalled line: %+v, %v", res, err)
	}
	ledger, err := s.ConsentLedger(ctx, "m1")
	if err != nil || len(ledger) != 1 || ledger[0].Source != "import" || !ledger[0].At.Equal(testNow) {
		t.Errorf("ledger %+v, %v; want one grant from the import at the given time", ledger, err)
	}
}

// An import line is untrusted input: whatever its bytes, it is imported
// with a valid id or refused with a reason, and a refusal quotes no value.
func FuzzParseImportLine(f *testing.F) {
	for _, seed := range []string{
		`{"id":"ok1","email":"ok1@example.com","consents":[{"channel":"email","topic":"news","state":"granted"}]}`,
		`{"id":"c","email":"secret-value@example.com","mail":"secret-value"}`,
		`{"id":"c","consents":[{"channel":"email","topic":"news","state":"granted","scope":"secret-value"}]}`,
		`{"id":"c","tags":"secret-value"}`,
		`{"id":"c","consents":[{"channel":"email","topic":"news","state":"granted","at":"secret-value"}]}`,
		`{"id":"c"} {"id":"secret-value"}`, `["secret-value"]`, `"secret-value"`, `{`, `null`, `{"id":"c","phone":"+33612345678"}`,
	} {
		f.Add([]byte(seed))
	}
	s := &Store{}
	topics := func(id string) (bool, error) { return id == "news", nil }
	f.Fuzz(func(t *testing.T, b []byte) {
		l, bad, err := s.parseImportLine(b, false, "Europe/Paris", topics)
		switch {
		case err != nil:
			t.Fatalf("error without Redis: %v", err)
		case bad == nil && !dispatcher.ValidID(l.ID):
			t.Fatalf("imported a contact whose id %q is not valid", l.ID)
		case bad != nil && bad.Message == "":
			t.Fatal("refused without a reason")
		case bad != nil && strings.Contains(bad.Message, "secret-value"),
			// An unknown field is named: its name, not a value.
			bad != nil && bad.Message != "is not a known field" && strings.Contains(bad.Field, "secret-value"):
			t.Fatalf("the refusal quotes a value: %+v", bad)
		}
	})
}
