package signup_test

import (
	"context"
	"testing"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher/signup"
)

// Sub-addresses and, where the provider ignores them, dots reach one
// inbox: they share its limit of confirmations.
func TestConfirmationLimitIsPerMailbox(t *testing.T) {
	t.Parallel()
	s, _, snd := setup(t)
	ctx := context.Background()
	for _, addrs := range [][]string{
		{"victim+0@example.com", "victim+1@example.com", "Victim+2@example.com", "victim+3@example.com", "victim@example.com", "victim+x+y@example.com"},
		{"v.i.c.t.i.m@gmail.com", "victim+a@googlemail.com", "vic.tim@gmail.com", "victim@gmail.com", "v.ictim+b@gmail.com"},
	} {
		before := len(snd.all())
		for _, a := range addrs {
			in := &signup.Input{Topics: []string{"newsletter"}, Channel: channels.Email, Address: a, Locale: "en", Wording: "v3"}
			if err := s.Submit(ctx, in, "iphash", ""); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(snd.all()) - before; n != 3 {
			t.Errorf("%d confirmations to the inbox of %s, want 3", n, addrs[0])
		}
	}
	// Dots count at providers that do not ignore them.
	before := len(snd.all())
	for _, a := range []string{"a.b@example.com", "ab@example.com", "ab@example.org"} {
		in := &signup.Input{Topics: []string{"newsletter"}, Channel: channels.Email, Address: a, Locale: "en", Wording: "v3"}
		if err := s.Submit(ctx, in, "iphash", ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(snd.all()) - before; n != 3 {
		t.Errorf("%d confirmations to three mailboxes, want 3", n)
	}
}

func TestMailbox(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Victim+tag@Example.com":       "victim@example.com",
		"victim+a+b@example.com":       "victim@example.com",
		"+only@example.com":            "+only@example.com",
		"v.i.c.t.i.m+x@GoogleMail.com": "victim@gmail.com",
		"first.last@example.com":       "first.last@example.com",
	} {
		if got := signup.Mailbox(channels.Email, in); got != want {
			t.Errorf("Mailbox(%q) = %q, want %q", in, got, want)
		}
	}
	if got := signup.Mailbox(channels.SMS, "+33612345678"); got != "+33612345678" {
		t.Errorf("Mailbox of a phone number: %q", got)
	}
}
