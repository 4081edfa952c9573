package outbound_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/dispatcher/outbound"
)

// The example of the Standard Webhooks specification and its reference
// libraries (libraries/go/webhook_test.go, TestWebhookSign).
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignSpecVector(t *testing.T) {
	got, err := outbound.Sign(specSecret, specID, time.Unix(specTimestamp, 0), []byte(specBody))
	if err != nil {
		t.Fatal(err)
	}
	if got != specSignature {
		t.Errorf("Sign = %s, want %s", got, specSignature)
	}
}

func specHeader(sig string, ts int64) http.Header {
	h := http.Header{}
	h.Set(outbound.HeaderID, specID)
	h.Set(outbound.HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(outbound.HeaderSignature, sig)
	return h
}

func TestVerify(t *testing.T) {
	at := time.Unix(specTimestamp, 0)
	other := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
	for _, tc := range []struct {
		name string
		h    http.Header
		body string
		now  time.Time
		want error
	}{
		{"the spec's example", specHeader(specSignature, specTimestamp), specBody, at, nil},
		{"one valid signature among others", specHeader(other+" v2,abc "+specSignature, specTimestamp), specBody, at.Add(time.Minute), nil},
		{"another body", specHeader(specSignature, specTimestamp), `{"test": 2432232315}`, at, outbound.ErrSignature},
		{"another signature", specHeader(other, specTimestamp), specBody, at, outbound.ErrSignature},
		{"signature of another version", specHeader(strings.Replace(specSignature, "v1,", "v2,", 1), specTimestamp), specBody, at, outbound.ErrSignature},
		{"too old", specHeader(specSignature, specTimestamp), specBody, at.Add(6 * time.Minute), outbound.ErrTimestamp},
		{"too new", specHeader(specSignature, specTimestamp), specBody, at.Add(-6 * time.Minute), outbound.ErrTimestamp},
		{"no id", func() http.Header { h := specHeader(specSignature, specTimestamp); h.Del(outbound.HeaderID); return h }(), specBody, at, outbound.ErrMissingHeaders},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := outbound.Verify(specSecret, tc.h, []byte(tc.body), tc.now, 5*time.Minute)
			if !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewSecret(t *testing.T) {
	s := outbound.NewSecret()
	if !strings.HasPrefix(s, "whsec_") || len(s) != len("whsec_")+44 {
		t.Fatalf("secret %q: want whsec_ and the base64 of 32 bytes", s)
	}
	if s == outbound.NewSecret() {
		t.Error("two secrets alike")
	}
	sig, err := outbound.Sign(s, "msg_1", time.Unix(1, 0), []byte("{}"))
	if err != nil || !strings.HasPrefix(sig, "v1,") {
		t.Errorf("Sign with a new secret: %q, %v", sig, err)
	}
}

func TestCheckURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://crm.example.com/hooks":     true,
		"http://localhost:8080/hooks":       true,
		"http://127.0.0.1:9/x":              true,
		"http://crm.example.com/hooks":      false,
		"ftp://crm.example.com/":            false,
		"https://user:pass@crm.example.com": false,
		"/hooks":                            false,
		"":                                  false,
		"https://crm.example.com/#frag":     false,
	} {
		if err := outbound.CheckURL(raw); (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v, want ok %v", raw, err, ok)
		}
	}
}
