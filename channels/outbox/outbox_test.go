package outbox_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
	"github.com/missive-dev/missive/channels/outbox"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func setup(t *testing.T) *outbox.Outbox {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "outbox")
	o, err := outbox.New(dir, outbox.WithEmailDefaults(email.Defaults{From: "news@missive.example"}))
	if err != nil {
		t.Fatal(err)
	}
	if o.Dir() != dir {
		t.Fatalf("Dir() = %q, want %q", o.Dir(), dir)
	}
	return o
}

func mail(id, subject string) channels.Message {
	return channels.Message{
		ID: id, Channel: channels.Email, To: "ada@example.org", Subject: subject,
		Text: "hello", HTML: "<p>hello</p>",
		Headers: map[string]string{"List-Unsubscribe": "<https://missive.example/u/t>"},
	}
}

func TestEmail(t *testing.T) {
	t.Parallel()
	o := setup(t)
	ctx := context.Background()
	res, err := o.Send(ctx, mail("run-1:contact-2", "first"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(res.ProviderID, ".eml") || strings.Contains(res.ProviderID, ":") {
		t.Fatalf("ProviderID %q is not a safe .eml name", res.ProviderID)
	}
	// Same id again: the file is replaced, not duplicated.
	if res2, err := o.Send(ctx, mail("run-1:contact-2", "second")); err != nil || res2 != res {
		t.Fatalf("second Send = %v, %v; want %v", res2, err, res)
	}
	entries, err := os.ReadDir(o.Dir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{res.ProviderID}, names); diff != "" {
		t.Errorf("files (-want +got), no temporary file may remain:\n%s", diff)
	}
	data, err := os.ReadFile(filepath.Join(o.Dir(), res.ProviderID))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the .eml does not parse: %v", err)
	}
	got := map[string]string{
		"Subject":          msg.Header.Get("Subject"),
		"From":             msg.Header.Get("From"),
		"To":               msg.Header.Get("To"),
		"List-Unsubscribe": msg.Header.Get("List-Unsubscribe"),
	}
	want := map[string]string{
		"Subject":          "second",
		"From":             "<news@missive.example>",
		"To":               "<ada@example.org>",
		"List-Unsubscribe": "<https://missive.example/u/t>",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if fi, _ := os.Stat(filepath.Join(o.Dir(), res.ProviderID)); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestSMS(t *testing.T) {
	t.Parallel()
	o := setup(t)
	ctx := context.Background()
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m := channels.Message{
				ID: fmt.Sprintf("sms-%d", i%25), Channel: channels.SMS, To: "+33612345678",
				From: "Missive", Body: "Soldes -20% \"ce soir\"\nSTOP au 36180",
			}
			res, err := o.Send(ctx, m)
			if err != nil || res.ProviderID != outbox.SMSFile {
				t.Errorf("Send = %v, %v", res, err)
			}
		})
	}
	wg.Wait()

	f, err := os.Open(filepath.Join(o.Dir(), outbox.SMSFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type line struct {
		ID   string `json:"id"`
		To   string `json:"to"`
		From string `json:"from"`
		Body string `json:"body"`
		At   string `json:"at"`
	}
	ids := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l line
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %q is not valid JSON: %v", sc.Text(), err)
		}
		ids[l.ID]++
		at, err := time.Parse(time.RFC3339, l.At)
		if err != nil || time.Since(at) > time.Minute {
			t.Errorf("at %q: %v", l.At, err)
		}
		l.ID, l.At = "", ""
		want := line{To: "+33612345678", From: "Missive", Body: "Soldes -20% \"ce soir\"\nSTOP au 36180"}
		if diff := cmp.Diff(want, l); diff != "" {
			t.Errorf("line (-want +got):\n%s", diff)
		}
	}
	if len(ids) != 25 {
		t.Errorf("%d distinct ids, want 25", len(ids))
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("id %s written %d times", id, c)
		}
	}
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	o := setup(t)
	tests := map[string]channels.Message{
		"no id":         {Channel: channels.SMS, To: "+33612345678", Body: "x"},
		"no channel":    {ID: "a", To: "+33612345678", Body: "x"},
		"sms no to":     {ID: "b", Channel: channels.SMS, Body: "x"},
		"email CRLF":    {ID: "c", Channel: channels.Email, To: "ada@example.org", Text: "x", Headers: map[string]string{"X-A": "1\r\nBcc: eve@example.org"}},
		"email invalid": {ID: "d", Channel: channels.Email, To: "not an address", Text: "x"},
	}
	for name, m := range tests {
		_, err := o.Send(context.Background(), m)
		var ce *channels.Error
		if !errors.As(err, &ce) || ce.Kind != channels.Permanent {
			t.Errorf("%s: error %v, want a permanent *channels.Error", name, err)
		}
	}
	if entries, _ := os.ReadDir(o.Dir()); len(entries) != 0 {
		t.Errorf("invalid messages left %d files", len(entries))
	}
}

func TestFileName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 120)
	got := map[string]string{}
	for _, id := range []string{"run-1.contact_2", "a:b", "a_b", "../../etc/passwd", ".hidden", long} {
		got[id] = outbox.FileName(id)
	}
	want := map[string]string{
		"run-1.contact_2":  "run-1.contact_2",
		"a:b":              "a_b-" + got["a:b"][4:],
		"a_b":              "a_b",
		"../../etc/passwd": "_._.._etc_passwd-" + got["../../etc/passwd"][17:],
		".hidden":          "_hidden-" + got[".hidden"][8:],
		long:               strings.Repeat("a", 100) + "-" + got[long][101:],
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FileName (-want +got):\n%s", diff)
	}
	if got["a:b"] == got["a_b"] {
		t.Error("two ids share a file name")
	}
	for _, name := range got {
		if strings.ContainsAny(name, "/\\") || len(name) > 110 {
			t.Errorf("unsafe name %q", name)
		}
	}
}
