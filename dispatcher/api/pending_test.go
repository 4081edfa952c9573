package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// An unconfirmed sign-up leaves nothing but its pending record: no
// contact, no address index entry, nothing a campaign reaches; the
// contact is made when the link is followed.
func TestUnconfirmedSignupIsNoContact(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	b.seedBasics(t)
	ctx := context.Background()
	s := b.d.Store
	if w := b.subscribeForm("198.51.100.20", signupValues("new@example.com", "newsletter")); w.Code != http.StatusAccepted {
		t.Fatalf("POST /subscribe: %d %s", w.Code, w.Body)
	}
	token := b.confirmToken(t, "new@example.com")
	if _, err := s.ContactIDByAddress(ctx, channels.Email, "new@example.com"); err == nil {
		t.Error("an unconfirmed address is in the address index")
	}
	if n, err := s.CountContacts(ctx); err != nil || n != 0 {
		t.Errorf("%d contacts (%v) before any confirmation, want 0", n, err)
	}
	// Whatever is left expires with the pending record.
	var keys []string
	must(t, s.Scan(ctx, b.redis.Prefix+":c:*", func(ks []string) error { keys = append(keys, ks...); return nil }))
	for _, k := range keys {
		if strings.HasSuffix(k, ":sends") {
			continue
		}
		if ttl := b.redis.Client.TTL(ctx, k).Val(); ttl <= 0 || ttl > 48*time.Hour {
			t.Errorf("key %s is kept %s before confirmation, want 48 h at most", k, ttl)
		}
	}

	// A transactional campaign to everyone does not reach the address.
	must(t, s.PutSegment(ctx, &dispatcher.Segment{ID: "all"}))
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "notice", Topic: "orders", Segment: "all",
		Channels: []channels.Kind{channels.Email}, Templates: map[channels.Kind]string{channels.Email: "news-mail"}}))
	run, err := b.d.Pipeline.StartRun(ctx, "notice", time.Now())
	must(t, err)
	b.waitRun(t, run, 20*time.Second)
	b.waitIdle(t, 20*time.Second)
	for _, m := range b.smtp.Messages() {
		if slices.Contains(m.To, "new@example.com") && !strings.Contains(string(m.Data), "/subscribe/confirm/") {
			t.Errorf("the campaign reached an unconfirmed address")
		}
	}

	// Confirming makes the contact, with its address index entry.
	if w := b.do("POST", "/subscribe/confirm/"+token, "203.0.113.9", formCT, ""); w.Code != http.StatusOK {
		t.Fatalf("POST confirm: %d %s", w.Code, w.Body)
	}
	id, err := s.ContactIDByAddress(ctx, channels.Email, "new@example.com")
	must(t, err)
	if ttl := b.redis.Client.TTL(ctx, s.ContactKey(id)).Val(); ttl != -1 {
		t.Errorf("the confirmed contact expires in %s", ttl)
	}
	if n, _ := s.CountContacts(ctx); n != 1 {
		t.Errorf("%d contacts after confirmation, want 1", n)
	}
	cur, err := s.Consents(ctx, id)
	must(t, err)
	if cur["email/newsletter"] != dispatcher.Granted {
		t.Errorf("consents after confirmation: %v", cur)
	}

	// A sign-up of an address that is a contact names that contact.
	if w := b.subscribeForm("198.51.100.21", signupValues("new@example.com", "promotions")); w.Code != http.StatusAccepted {
		t.Fatalf("second POST /subscribe: %d %s", w.Code, w.Body)
	}
	if got := b.pendingContact(t); got != id {
		t.Errorf("the sign-up of a contact's address names %q, want %q", got, id)
	}
	var again string
	waitFor(t, "the second confirmation", 10*time.Second, func() bool {
		for _, m := range b.smtp.Messages() {
			if sm := confirmLinkRe.FindStringSubmatch(strings.ReplaceAll(string(m.Data), "=\r\n", "")); sm != nil && sm[1] != token {
				again = sm[1]
			}
		}
		return again != ""
	})
	if w := b.do("POST", "/subscribe/confirm/"+again, "203.0.113.9", formCT, ""); w.Code != http.StatusOK {
		t.Fatalf("second POST confirm: %d %s", w.Code, w.Body)
	}
	if cur, _ := s.Consents(ctx, id); cur["email/promotions"] != dispatcher.Granted {
		t.Errorf("consents after the second confirmation: %v", cur)
	}
	if n, _ := s.CountContacts(ctx); n != 1 {
		t.Errorf("%d contacts after a second sign-up, want 1", n)
	}
}

// A contact the upstream system made while a sign-up of its address was
// pending gets the consents, and erasing it erases the pending sign-up.
func TestPendingSignupOfAnAddressThatBecomesAContact(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	ctx := context.Background()
	s := b.d.Store
	for i, addr := range []string{"late@example.com", "gone@example.com"} {
		if w := b.subscribeForm(fmt.Sprintf("198.51.100.%d", 30+i), signupValues(addr, "newsletter")); w.Code != http.StatusAccepted {
			t.Fatalf("POST /subscribe: %d %s", w.Code, w.Body)
		}
	}
	lateToken := b.confirmToken(t, "late@example.com")
	goneToken := b.confirmToken(t, "gone@example.com")
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "crm-1", Email: "late@example.com"}, "Europe/Paris"))
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "crm-2", Email: "gone@example.com"}, "Europe/Paris"))
	if w := b.do("POST", "/subscribe/confirm/"+lateToken, "203.0.113.9", formCT, ""); w.Code != http.StatusOK {
		t.Fatalf("POST confirm: %d %s", w.Code, w.Body)
	}
	if cur, _ := s.Consents(ctx, "crm-1"); cur["email/newsletter"] != dispatcher.Granted {
		t.Errorf("the contact holding the address was not granted: %v", cur)
	}
	if n, _ := s.CountContacts(ctx); n != 2 {
		t.Errorf("%d contacts, want 2", n)
	}
	rep, err := b.d.Privacy.EraseContact(ctx, "crm-2")
	must(t, err)
	if rep.Erased["pending_signups"] != 1 {
		t.Errorf("erasure found %d pending sign-ups, want 1", rep.Erased["pending_signups"])
	}
	if w := b.do("POST", "/subscribe/confirm/"+goneToken, "203.0.113.9", formCT, ""); w.Code != http.StatusNotFound {
		t.Errorf("confirming an erased sign-up: %d", w.Code)
	}
	if _, err := s.ContactIDByAddress(ctx, channels.Email, "gone@example.com"); err == nil {
		t.Error("an erased address came back")
	}
}

// pendingContact returns the contact id named by the one pending sign-up
// (a provisional one for an address that had no contact).
func (b *testBundle) pendingContact(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	s := b.d.Store
	var keys []string
	must(t, s.Scan(ctx, s.PendingKey("*"), func(ks []string) error { keys = append(keys, ks...); return nil }))
	if len(keys) != 1 {
		t.Fatalf("%d pending sign-ups, want 1", len(keys))
	}
	ps, err := s.PendingSignup(ctx, strings.TrimPrefix(keys[0], s.PendingKey("")))
	must(t, err)
	return ps.Contact
}
