package feedback_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/consent"
	"github.com/missive-dev/missive/dispatcher/feedback"
)

// verpToken returns the token of a VERP return path: its local part
// without "bounces+".
func verpToken(t testing.TB, rp string) string {
	t.Helper()
	local, domain, ok := strings.Cut(rp, "@")
	token, isVERP := strings.CutPrefix(local, "bounces+")
	if !ok || !isVERP || domain != bounceDomain {
		t.Fatalf("return path %q is not a VERP address of %s", rp, bounceDomain)
	}
	return token
}

var macRe = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestReturnPath(t *testing.T) {
	t.Parallel()
	// A send id of 39 octets is the longest that fits a local part of 64
	// with "bounces+", a dot and the MAC.
	longest := strings.Repeat("r", 39-len("~")-24)
	tests := []struct {
		name string
		run  string
		// wantInline says the token carries the send id itself, not its
		// hash.
		wantInline bool
	}{
		{"a short send id travels whole", "r1", true},
		{"the longest send id that fits", longest, true},
		{"one octet more travels as its hash", longest + "x", false},
		{"a long one", "a-very-long-campaign-identifier-for-the-spring-sale-2026", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, feedback.Policy{})
			ctx := context.Background()
			send := dispatcher.SendID(tt.run, "c1", channels.Email)
			rp, err := b.h.ReturnPath(ctx, send)
			if err != nil {
				t.Fatal(err)
			}
			token := verpToken(t, rp)
			if local, _, _ := strings.Cut(rp, "@"); len(local) > 64 {
				t.Errorf("local part of %d octets: %q", len(local), local)
			}
			id, mac, _ := strings.Cut(token, ".")
			if !macRe.MatchString(mac) {
				t.Errorf("MAC %q is not 16 lower-case hex digits", mac)
			}
			_, hash, _ := dispatcher.SplitSendID(send)
			wantID := hash
			if tt.wantInline {
				wantID = send
			}
			if id != wantID {
				t.Errorf("token names %q, want %q", id, wantID)
			}
			got, err := b.h.SendForVERP(ctx, token)
			if err != nil || got != send {
				t.Errorf("SendForVERP(%q) = %q, %v; want %q", token, got, err, send)
			}
			again, err := b.h.ReturnPath(ctx, send)
			if err != nil || again != rp {
				t.Errorf("ReturnPath again = %q, %v; want the same %q", again, err, rp)
			}
		})
	}
}

func TestReturnPathWithoutBounceDomain(t *testing.T) {
	t.Parallel()
	b := setup(t, feedback.Policy{})
	h, err := feedback.New(feedback.Config{Store: b.st, Consent: consent.New(b.st, b.clock.Now), Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	rp, err := h.ReturnPath(context.Background(), dispatcher.SendID("r1", "c1", channels.Email))
	if err != nil || rp != "" {
		t.Errorf("ReturnPath = %q, %v; want the channel's own", rp, err)
	}
}

func TestSendForVERP(t *testing.T) {
	t.Parallel()
	b := setup(t, feedback.Policy{})
	ctx := context.Background()
	returnPath := func(h *feedback.Handler, send string) string {
		rp, err := h.ReturnPath(ctx, send)
		if err != nil {
			t.Fatal(err)
		}
		return verpToken(t, rp)
	}
	send := dispatcher.SendID("r1", "c1", channels.Email)
	other := dispatcher.SendID("r1", "c2", channels.Email)
	token, otherToken := returnPath(b.h, send), returnPath(b.h, other)
	mac := token[strings.LastIndexByte(token, '.')+1:]
	otherMAC := otherToken[strings.LastIndexByte(otherToken, '.')+1:]
	longSend := dispatcher.SendID("a-very-long-campaign-identifier-for-the-spring-sale-2026", "c1", channels.Email)
	longToken := returnPath(b.h, longSend)
	// A hashed token whose record expired.
	expiredSend := dispatcher.SendID("a-very-long-campaign-identifier-for-the-spring-sale-2026", "c2", channels.Email)
	expiredToken := returnPath(b.h, expiredSend)
	_, expiredHash, _ := dispatcher.SplitSendID(expiredSend)
	if err := b.r.Client.Del(ctx, b.st.Key("verp", expiredHash)).Err(); err != nil {
		t.Fatal(err)
	}

	// A deployment with another secret makes MACs this one refuses.
	stranger, err := feedback.New(feedback.Config{Store: b.st, Consent: consent.New(b.st, b.clock.Now), Secret: bytes.Repeat([]byte("t"), 32),
		BounceDomain: bounceDomain, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		token   string
		want    string
		wantErr error
	}{
		{"the token", token, send, nil},
		{"its MAC in upper case (a mail system that folds case)", send + "." + strings.ToUpper(mac), send, nil},
		{"a hashed token", longToken, longSend, nil},
		{"a MAC of zeros", send + ".0000000000000000", "", feedback.ErrForgedVERP},
		{"another send's MAC", send + "." + otherMAC, "", feedback.ErrForgedVERP},
		{"another send's id with this MAC", other + "." + mac, "", feedback.ErrForgedVERP},
		{"the id in upper case", strings.ToUpper(send) + "." + mac, "", feedback.ErrForgedVERP},
		{"a MAC cut short", token[:len(token)-1], "", feedback.ErrForgedVERP},
		{"a MAC too long", token + "0", "", feedback.ErrForgedVERP},
		{"another secret's MAC", returnPath(stranger, send), "", feedback.ErrForgedVERP},
		{"no MAC", send, "", feedback.ErrForgedVERP},
		{"a MAC alone", "." + mac, "", feedback.ErrForgedVERP},
		{"empty", "", "", feedback.ErrForgedVERP},
		{"a valid hashed token whose record expired", expiredToken, "", feedback.ErrUnknownSend},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := b.h.SendForVERP(ctx, tt.token)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("SendForVERP(%q) = %q, %v; want %q, %v", tt.token, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// A bounce report that arrives for a VERP token becomes delivery reports
// of the send it names; a forged token changes nothing.
func TestHandleBounce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		forge   bool
		expired bool // the send's record is gone
		rcpts   []feedback.BounceRecipient
		wantErr error
		want    outcome
	}{
		{
			name:  "hard, after a delay notice",
			rcpts: []feedback.BounceRecipient{{Class: "delay", Status: "4.4.7"}, {Class: "hard", Status: "5.1.1"}},
			want: outcome{State: dispatcher.StateBounced, Reason: string(channels.HardBounce), ErrorCode: "5.1.1",
				Feedback:    map[string]int64{feedback.FeedbackHardBounces: 1},
				Suppression: &dispatcher.Suppression{Reason: dispatcher.SuppressBounce, At: start}, Consents: consentsOf()},
		},
		{
			name:  "a delay notice alone is no outcome",
			rcpts: []feedback.BounceRecipient{{Class: "delay", Status: "4.4.7"}},
			want:  outcome{State: dispatcher.StateSent, Feedback: map[string]int64{}, Consents: consentsOf()},
		},
		{
			name:  "soft",
			rcpts: []feedback.BounceRecipient{{Class: "soft", Status: "4.2.2"}},
			want:  outcome{State: dispatcher.StateSent, Feedback: map[string]int64{feedback.FeedbackSoftBounces: 1}, Consents: consentsOf()},
		},
		{
			name:  "an ARF complaint",
			rcpts: []feedback.BounceRecipient{{Class: "complaint"}},
			want: outcome{State: dispatcher.StateSent, Feedback: map[string]int64{feedback.FeedbackComplaints: 1},
				Suppression: &dispatcher.Suppression{Reason: dispatcher.SuppressComplaint, At: start}, Consents: consentsOf("email/news")},
		},
		{
			name:    "a forged token",
			forge:   true,
			rcpts:   []feedback.BounceRecipient{{Class: "hard", Status: "5.1.1"}, {Class: "complaint"}},
			wantErr: feedback.ErrForgedVERP,
			want:    outcome{State: dispatcher.StateSent, Feedback: map[string]int64{}, Consents: consentsOf()},
		},
		{
			name:    "a send that expired",
			expired: true,
			rcpts:   []feedback.BounceRecipient{{Class: "hard", Status: "5.1.1"}},
			wantErr: feedback.ErrUnknownSend,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, send := setupSent(t, channels.Email)
			ctx := context.Background()
			rp, err := b.h.ReturnPath(ctx, send)
			if err != nil {
				t.Fatal(err)
			}
			token := verpToken(t, rp)
			if tt.forge {
				token = send + ".0123456789abcdef"
			}
			if tt.expired {
				if err := b.r.Client.Del(ctx, b.st.SendKey(send)).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.h.HandleBounce(ctx, token, "dsn", tt.rcpts); !errors.Is(err, tt.wantErr) {
				t.Fatalf("HandleBounce: %v, want %v", err, tt.wantErr)
			}
			if tt.expired {
				if sup := b.suppression(t, channels.Email); sup != nil {
					t.Errorf("suppression %+v for a report on an expired send without address", sup)
				}
				return
			}
			if diff := cmp.Diff(tt.want, b.outcome(t, send)); diff != "" {
				t.Errorf("after the report (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzSendForVERP checks that a token is taken only when it is the token
// of the send it names, up to the case of its MAC.
func FuzzSendForVERP(f *testing.F) {
	b := setup(f, feedback.Policy{})
	ctx := context.Background()
	for _, send := range []string{dispatcher.SendID("r1", "c1", channels.Email), dispatcher.SendID(strings.Repeat("long", 12), "c1", channels.SMS)} {
		rp, err := b.h.ReturnPath(ctx, send)
		if err != nil {
			f.Fatal(err)
		}
		token := verpToken(f, rp)
		f.Add(token)
		f.Add(strings.ToUpper(token))
		f.Add(send + ".0000000000000000")
	}
	for _, s := range []string{"", ".", "..", "~.", "a~b.", "bounces+x.y", "\x00.\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		send, err := b.h.SendForVERP(ctx, token)
		if err != nil {
			if !errors.Is(err, feedback.ErrForgedVERP) && !errors.Is(err, feedback.ErrUnknownSend) {
				t.Fatalf("SendForVERP(%q): unexpected error %v", token, err)
			}
			return
		}
		rp, err := b.h.ReturnPath(ctx, send)
		if err != nil {
			t.Fatal(err)
		}
		want := verpToken(t, rp)
		i, j := strings.LastIndexByte(token, '.'), strings.LastIndexByte(want, '.')
		if i < 0 || token[:i] != want[:j] || !strings.EqualFold(token[i+1:], want[j+1:]) {
			t.Fatalf("SendForVERP(%q) took it for %q, whose token is %q", token, send, want)
		}
	})
}
