package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// Preference saves are limited per contact: past the limit the page says
// so in the reader's language with Retry-After, and nothing is recorded.
// A save that changes nothing records nothing; leaving everything is
// never held back.
func TestPreferenceSavesAreLimited(t *testing.T) {
	t.Parallel()
	b := setupAna(t)
	u := b.prefURL(t, "ana")
	csrf := csrfOf(t, u)
	toggle := func(i int) url.Values {
		v := url.Values{"csrf": {csrf}, "do": {"save"}, "shown": {"email/newsletter", "email/promotions"}}
		if i%2 == 0 {
			v["on"] = []string{"email/promotions"}
		} else {
			v["on"] = []string{"email/newsletter"}
		}
		return v
	}
	before := len(b.ledger(t, "ana"))
	limited := -1
	for i := range 60 {
		resp, _ := postForm(t, u, toggle(i))
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = i
			break
		}
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("save %d: %d", i, resp.StatusCode)
		}
	}
	if limited < 0 || limited > prefSaveRate.Burst {
		t.Fatalf("first refused save: %d, want one past the burst of %d", limited, prefSaveRate.Burst)
	}
	grown := len(b.ledger(t, "ana")) - before
	if grown > 2*prefSaveRate.Burst {
		t.Errorf("%d ledger events after %d saves", grown, limited)
	}
	for lang, want := range map[string]string{"fr": "Trop de demandes", "en": "Too many requests"} {
		resp, body := postForm(t, u+"?lang="+lang, toggle(0))
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, want) {
			t.Errorf("refused save (%s): %d, lacks %q", lang, resp.StatusCode, want)
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
	}
	if got := len(b.ledger(t, "ana")) - before; got != grown {
		t.Errorf("refused saves recorded %d events", got-grown)
	}
	// Leaving is never refused.
	b.submitPreferences(t, u, url.Values{"csrf": {csrf}, "do": {"unsubscribe-all"}}, strings.TrimPrefix(u, b.srv.URL)+"?saved=all")
}
