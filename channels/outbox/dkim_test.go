package outbox_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/missive-dev/missive/channels/email"
	"github.com/missive-dev/missive/channels/outbox"
)

func TestEmailDKIM(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, err := x509.MarshalPKIXPublicKey(rsaKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		dkim   *email.DKIM
		record string
	}{
		{"rsa", &email.DKIM{Domain: "missive.example", Selector: "box", PrivateKey: rsaKey},
			"v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rsaDER)},
		{"ed25519", &email.DKIM{Domain: "missive.example", Selector: "box", PrivateKey: edKey},
			"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := outbox.New(filepath.Join(t.TempDir(), "outbox"),
				outbox.WithEmailDefaults(email.Defaults{From: "news@missive.example"}),
				outbox.WithDKIM(tt.dkim))
			if err != nil {
				t.Fatal(err)
			}
			m := mail("dkim-1", "signed")
			m.Headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
			res, err := o.Send(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(o.Dir(), res.ProviderID))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte("DKIM-Signature: ")) {
				t.Fatalf("the .eml does not start with a DKIM-Signature")
			}
			lookup := &dkim.VerifyOptions{LookupTXT: func(domain string) ([]string, error) {
				if domain != "box._domainkey.missive.example" {
					t.Errorf("lookup of %q", domain)
				}
				return []string{tt.record}, nil
			}}
			verifs, err := dkim.VerifyWithOptions(bytes.NewReader(data), lookup)
			if err != nil || len(verifs) != 1 {
				t.Fatalf("Verify = %v, %v", verifs, err)
			}
			if err := verifs[0].Err; err != nil {
				t.Fatalf("verification failed: %v", err)
			}
			h := strings.ToLower(strings.Join(verifs[0].HeaderKeys, ":"))
			for _, k := range []string{"from", "subject", "date", "list-unsubscribe", "list-unsubscribe-post"} {
				if !strings.Contains(":"+h+":", ":"+k+":") {
					t.Errorf("h=%s lacks %s", h, k)
				}
			}
			tampered := bytes.Replace(data, []byte("\r\nSubject: signed\r\n"), []byte("\r\nSubject: unsigned\r\n"), 1)
			if bytes.Equal(tampered, data) {
				t.Fatal("no Subject line to tamper with")
			}
			if verifs, err := dkim.VerifyWithOptions(bytes.NewReader(tampered), lookup); err != nil || verifs[0].Err == nil {
				t.Errorf("a tampered .eml verifies (%v)", err)
			}
		})
	}
}

func TestWithDKIMValidates(t *testing.T) {
	t.Parallel()
	_, err := outbox.New(t.TempDir(), outbox.WithDKIM(&email.DKIM{Domain: "missive.example"}))
	if err == nil || err.Error() != "outbox: email: DKIM Selector: is empty" {
		t.Errorf("New with an invalid DKIM = %v", err)
	}
}
