package twilioproto_test

import (
	"maps"
	"net/url"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"

	"github.com/missive-dev/missive/channels/sms/twilioproto"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
)

const (
	testToken = twiliotest.AuthToken
	statusURL = "https://missive.example/webhooks/twilio/status"
)

// twilioGo is the reference: twilio-go's own validator.
func twilioGo(authToken, fullURL string, params map[string]string, signature string) bool {
	v := client.NewRequestValidator(authToken)
	return v.Validate(fullURL, params, signature)
}

// params is form with one value per name, as the dispatcher passes it.
func params(form url.Values) map[string]string {
	p := make(map[string]string, len(form))
	for k, vs := range form {
		p[k] = vs[0]
	}
	return p
}

func TestValidSignature(t *testing.T) {
	t.Parallel()
	form := twiliotest.StatusForm(sid, to, "undelivered", "30005")
	sign := func(u string, f url.Values) string { return twiliotest.Sign(testToken, u, f) }
	changed := func(k, v string) map[string]string {
		p := params(form)
		p[k] = v
		return p
	}
	added := maps.Clone(params(form))
	added["Extra"] = "1"
	tests := []struct {
		name      string
		token     string
		url       string
		params    map[string]string
		signature string
		want      bool
	}{
		{"as Twilio signs", testToken, statusURL, params(form), sign(statusURL, form), true},
		{"with a query", testToken, statusURL + "?rc=3&rp=all", params(form), sign(statusURL+"?rc=3&rp=all", form), true},
		{"GET without parameters", testToken, statusURL + "?a=1", nil, sign(statusURL+"?a=1", nil), true},
		{"signed with the default port", testToken, statusURL, params(form), sign("https://missive.example:443/webhooks/twilio/status", form), true},
		{"called on the default port, signed without", testToken, "https://missive.example:443/webhooks/twilio/status", params(form), sign(statusURL, form), true},
		{"called on another port, signed without", testToken, "https://missive.example:8443/webhooks/twilio/status", params(form), sign(statusURL, form), true},
		{"http signed with port 80", testToken, "http://missive.example/x", nil, sign("http://missive.example:80/x", nil), true},
		// Twilio's scheme joins names and values without a separator: a
		// value's head can pass for its name's tail. Known, and harmless
		// while the handlers read fixed names.
		{"name and value shifted", testToken, statusURL, map[string]string{"ab": "c"}, sign(statusURL, url.Values{"a": {"bc"}}), true},
		{"unicode value", testToken, statusURL, map[string]string{"Body": "Arrêt ✓"}, sign(statusURL, url.Values{"Body": {"Arrêt ✓"}}), true},

		{"no signature", testToken, statusURL, params(form), "", false},
		{"garbage", testToken, statusURL, params(form), "c2lnbmF0dXJl", false},
		{"other testToken", strings.Repeat("0", 32), statusURL, params(form), sign(statusURL, form), false},
		{"empty testToken", "", statusURL, params(form), sign(statusURL, form), false},
		{"another host", testToken, statusURL, params(form), sign("https://evil.example/webhooks/twilio/status", form), false},
		{"http for https", testToken, statusURL, params(form), sign("http://missive.example/webhooks/twilio/status", form), false},
		{"https signed with port 80", testToken, statusURL, params(form), sign("https://missive.example:80/webhooks/twilio/status", form), false},
		{"without the query sent", testToken, statusURL + "?x=1", params(form), sign(statusURL, form), false},
		{"another query", testToken, statusURL + "?x=1", params(form), sign(statusURL+"?x=2", form), false},
		{"status changed", testToken, statusURL, changed("MessageStatus", "delivered"), sign(statusURL, form), false},
		{"code changed", testToken, statusURL, changed("ErrorCode", "21610"), sign(statusURL, form), false},
		{"number changed", testToken, statusURL, changed("To", "+33698765432"), sign(statusURL, form), false},
		{"parameter added", testToken, statusURL, added, sign(statusURL, form), false},
		{"truncated", testToken, statusURL, params(form), sign(statusURL, form)[:10], false},
	}
	for _, tt := range tests {
		got := twilioproto.ValidSignature(tt.token, tt.url, tt.params, tt.signature)
		ref := twilioGo(tt.token, tt.url, tt.params, tt.signature)
		if got != tt.want || ref != tt.want {
			t.Errorf("%s: ValidSignature = %v, twilio-go = %v, want %v", tt.name, got, ref, tt.want)
		}
	}
}

// FuzzValidSignature holds ValidSignature to twilio-go's validator on the
// same inputs, signed as Twilio signs or not, URLs with ports or not.
func FuzzValidSignature(f *testing.F) {
	for _, u := range []string{
		statusURL, statusURL + "?rc=3&rp=all", "https://missive.example:443/x", "http://missive.example:8080/x?y",
		"http://[::1]:8080/x", "https://[::1]/x", "https://host:/x", "HTTPS://Host/%7Ex", "https://h/a b",
		"%zz", "", "/relative?x=1", "https://user:pass@host:99/p#frag", "mailto:a@b", "http://h:99999/x",
	} {
		f.Add(testToken, u, "MessageSid", sid, "To", to, true, false)
		f.Add(testToken, u, "Body", "Arrêt", "", "", false, true)
	}
	f.Fuzz(func(t *testing.T, authToken, fullURL, k1, v1, k2, v2 string, signWithPort, signWithoutPort bool) {
		p := map[string]string{k1: v1, k2: v2}
		form := url.Values{}
		for k, v := range p {
			form.Set(k, v)
		}
		sigs := []string{v1, twiliotest.Sign(authToken, fullURL, form)}
		if signWithPort {
			sigs = append(sigs, twiliotest.Sign(authToken, fullURL+":443", form))
		}
		if u, err := url.Parse(fullURL); err == nil && signWithoutPort {
			u.Host = u.Hostname()
			sigs = append(sigs, twiliotest.Sign(authToken, u.String(), form))
		}
		if u, err := url.Parse(fullURL); err == nil {
			u.Host += ":443"
			sigs = append(sigs, twiliotest.Sign(authToken, u.String(), form))
			u.Host = strings.TrimSuffix(u.Host, ":443") + ":80"
			sigs = append(sigs, twiliotest.Sign(authToken, u.String(), form))
		}
		for _, sig := range sigs {
			got := twilioproto.ValidSignature(authToken, fullURL, p, sig)
			if want := twilioGo(authToken, fullURL, p, sig); got != want {
				t.Fatalf("ValidSignature(%q, %q, %q, %q) = %v, twilio-go = %v", authToken, fullURL, p, sig, got, want)
			}
		}
	})
}
