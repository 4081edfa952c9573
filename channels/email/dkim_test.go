package email_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
)

// Keys are generated once per test binary: a 2048-bit RSA key takes a
// noticeable time under -race.
var (
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
	edKey = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func dkimConfig(key crypto.Signer) *email.DKIM {
	return &email.DKIM{Domain: "missive.example", Selector: "mail2026", PrivateKey: key}
}

// lookupTXT answers the DNS query for the selector with key's public part,
// as an operator would publish it.
func lookupTXT(t testing.TB, key crypto.Signer) func(string) ([]string, error) {
	return func(domain string) ([]string, error) {
		if domain != "mail2026._domainkey.missive.example" {
			return nil, fmt.Errorf("unexpected lookup of %q", domain)
		}
		switch pub := key.Public().(type) {
		case *rsa.PublicKey:
			der, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				t.Error(err)
				return nil, err
			}
			return []string{"v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)}, nil
		case ed25519.PublicKey:
			return []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}, nil
		}
		return nil, fmt.Errorf("key type %T", key.Public())
	}
}

// verify checks the message's DKIM signatures and returns the first one.
func verify(t testing.TB, data []byte, key crypto.Signer) (*dkim.Verification, error) {
	t.Helper()
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{LookupTXT: lookupTXT(t, key)})
	if err != nil {
		return nil, err
	}
	if len(verifs) != 1 {
		t.Fatalf("%d signatures, want 1", len(verifs))
	}
	return verifs[0], verifs[0].Err
}

func TestDKIMSend(t *testing.T) {
	t.Parallel()
	keys := map[string]crypto.Signer{"rsa-2048": rsaKey(), "ed25519": edKey()}
	bodies := map[string]func(*channels.Message){
		"multipart": func(*channels.Message) {},
		"text only": func(m *channels.Message) { m.HTML = "" },
		"html only": func(m *channels.Message) { m.Text = "" },
		// Long lines, trailing spaces and a lone dot exercise QP, dot
		// stuffing and body canonicalisation.
		"awkward body": func(m *channels.Message) {
			m.HTML = ""
			m.Text = strings.Repeat("é long line ", 40) + "  \r\n.\r\n..\r\nend  \r\n\r\n\r\n"
		},
	}
	for keyName, key := range keys {
		t.Run(keyName, func(t *testing.T) {
			t.Parallel()
			b := setup(t, email.Config{DKIM: dkimConfig(key), Connections: 2})
			for bodyName, mutate := range bodies {
				t.Run(bodyName, func(t *testing.T) {
					m := message("dkim-" + keyName + "-" + strings.ReplaceAll(bodyName, " ", "-"))
					m.To = channels.Address(strings.ReplaceAll(m.ID, "-", ".") + "@example.org")
					mutate(&m)
					if _, err := b.sender.Send(context.Background(), m); err != nil {
						t.Fatalf("Send: %v", err)
					}
					got := receivedFor(t, b, string(m.To))
					if !bytes.HasPrefix(got, []byte("DKIM-Signature: ")) {
						t.Errorf("the message does not start with DKIM-Signature:\n%s", headerOf(got))
					}
					v, err := verify(t, got, key)
					if err != nil {
						t.Fatalf("verification failed: %v\n%s", err, headerOf(got))
					}
					if v.Domain != "missive.example" {
						t.Errorf("d= %q", v.Domain)
					}
					signed := map[string]bool{}
					for _, k := range v.HeaderKeys {
						signed[strings.ToLower(k)] = true
					}
					for _, k := range []string{"from", "to", "subject", "date", "message-id", "mime-version", "content-type", "list-unsubscribe", "list-unsubscribe-post", "list-id"} {
						if !signed[k] {
							t.Errorf("h=%s lacks %s", strings.Join(v.HeaderKeys, ":"), k)
						}
					}
					sig := headerOf(got)
					for _, tag := range []string{"c=relaxed/relaxed", "s=mail2026"} {
						if !strings.Contains(unfold(sig), tag) {
							t.Errorf("signature lacks %s:\n%s", tag, sig)
						}
					}
					for name, tamper := range map[string]func([]byte) []byte{
						"Subject": func(d []byte) []byte {
							return replaceLine(t, d, "Subject: ", "Subject: Win a prize")
						},
						"List-Unsubscribe": func(d []byte) []byte {
							return replaceLine(t, d, "List-Unsubscribe: ", "List-Unsubscribe: <https://evil.example/u/x>")
						},
						"an added List-Unsubscribe": func(d []byte) []byte {
							return append([]byte("List-Unsubscribe: <https://evil.example/u/x>\r\n"), d...)
						},
						"an added Subject": func(d []byte) []byte {
							return append([]byte("Subject: Win a prize\r\n"), d...)
						},
						"body": func(d []byte) []byte {
							return bytes.Replace(d, []byte("\r\n\r\n"), []byte("\r\n\r\nInjected line.\r\n"), 1)
						},
					} {
						if _, err := verify(t, tamper(bytes.Clone(got)), key); err == nil {
							t.Errorf("verification passed after tampering with the %s", name)
						}
					}
				})
			}
		})
	}
}

// TestDKIMSendConcurrent signs from many goroutines over few connections,
// and after a reconnect, where a message goes over a new connection after
// its envelope was lost with the old one.
func TestDKIMSendConcurrent(t *testing.T) {
	t.Parallel()
	key := edKey()
	b := setup(t, email.Config{DKIM: dkimConfig(key), Connections: 2})
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m := message(fmt.Sprintf("dkim-c-%d", i))
			m.To = channels.Address(fmt.Sprintf("c%d@example.org", i))
			if _, err := b.sender.Send(context.Background(), m); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	b.srv.Wait(n, 10*time.Second)
	b.srv.CloseConnections() // the next Send redials after its first try fails
	if _, err := b.sender.Send(context.Background(), message("dkim-after-reconnect")); err != nil {
		t.Fatal(err)
	}
	got := b.srv.Wait(n+1, 10*time.Second)
	if len(got) != n+1 {
		t.Fatalf("%d messages received, want %d", len(got), n+1)
	}
	for _, r := range got {
		if _, err := verify(t, r.Data, key); err != nil {
			t.Errorf("message to %s: %v", r.To[0], err)
		}
	}
}

func TestDKIMNotByDefault(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{})
	if _, err := b.sender.Send(context.Background(), message("no-dkim")); err != nil {
		t.Fatal(err)
	}
	if got := b.srv.Wait(1, 5*time.Second)[0].Data; bytes.Contains(got, []byte("DKIM-Signature")) {
		t.Error("a message was signed without DKIM configured")
	}
}

func TestDKIMHeaderReserved(t *testing.T) {
	t.Parallel()
	m := message("forged")
	m.Headers["DKIM-Signature"] = "v=1; d=evil.example"
	if _, err := email.Build(m, email.Defaults{From: sender}); err == nil {
		t.Error("Build accepted a DKIM-Signature header from the message")
	}
}

// failingSigner is a remote key that is down.
type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("kms: unavailable")
}

func TestDKIMSignerFails(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{DKIM: dkimConfig(failingSigner{edKey()})})
	m := message("kms-down")
	_, err := b.sender.Send(context.Background(), m)
	assertError(t, err, channels.Sender, "")
	assertClean(t, err, rcpt, m)
	if n := b.srv.Connections(); n != 0 {
		t.Errorf("%d connections opened for a message that could not be signed", n)
	}
}

func TestDKIMValidate(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec := ecKey(t)
	tests := []struct {
		name string
		d    email.DKIM
		want string
	}{
		{"rsa", email.DKIM{Domain: "missive.example", Selector: "s1", PrivateKey: rsaKey()}, ""},
		{"ed25519 dotted selector", email.DKIM{Domain: "mail.missive.example", Selector: "ed.2026-03", PrivateKey: edKey()}, ""},
		{"no domain", email.DKIM{Selector: "s1", PrivateKey: edKey()}, "email: DKIM Domain: is empty"},
		{"one label", email.DKIM{Domain: "localhost", Selector: "s1", PrivateKey: edKey()}, "email: DKIM Domain: must have at least two labels (example.com)"},
		{"bad domain", email.DKIM{Domain: "missive.example;", Selector: "s1", PrivateKey: edKey()}, `email: DKIM Domain: "missive.example;": only letters, digits, hyphens and dots are allowed`},
		{"empty label", email.DKIM{Domain: "missive..example", Selector: "s1", PrivateKey: edKey()}, `email: DKIM Domain: "missive..example": labels must have 1 to 63 characters`},
		{"hyphen", email.DKIM{Domain: "-missive.example", Selector: "s1", PrivateKey: edKey()}, `email: DKIM Domain: "-missive.example": labels must not start or end with a hyphen`},
		{"no selector", email.DKIM{Domain: "missive.example", PrivateKey: edKey()}, "email: DKIM Selector: is empty"},
		{"bad selector", email.DKIM{Domain: "missive.example", Selector: "s 1", PrivateKey: edKey()}, `email: DKIM Selector: "s 1": only letters, digits, hyphens and dots are allowed`},
		{"no key", email.DKIM{Domain: "missive.example", Selector: "s1"}, "email: DKIM PrivateKey is not set"},
		{"small rsa", email.DKIM{Domain: "missive.example", Selector: "s1", PrivateKey: small}, "email: DKIM PrivateKey: RSA key has 1024 bits, at least 2048 are required"},
		{"ecdsa", email.DKIM{Domain: "missive.example", Selector: "s1", PrivateKey: ec}, "email: DKIM PrivateKey: key type *ecdsa.PublicKey is not supported (use RSA or Ed25519)"},
	}
	for _, tt := range tests {
		err := tt.d.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || err.Error() != tt.want) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
	}
	// New refuses an invalid DKIM configuration.
	if _, err := email.New(email.Config{URL: "smtp://h", DKIM: &email.DKIM{Domain: "missive.example", Selector: "s1", PrivateKey: small}}); err == nil {
		t.Error("New accepted a 1024-bit DKIM key")
	}
}

func TestParseDKIMKey(t *testing.T) {
	t.Parallel()
	rk := rsaKey()
	pkcs8RSA, err := x509.MarshalPKCS8PrivateKey(rk)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8Ed, err := x509.MarshalPKCS8PrivateKey(edKey())
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8EC, err := x509.MarshalPKCS8PrivateKey(ecKey(t))
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	corrupt := x509.MarshalPKCS1PrivateKey(rk)
	corrupt = corrupt[:len(corrupt)/2]
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: x509.MarshalPKCS1PrivateKey(rk)})

	tests := []struct {
		name    string
		pem     []byte
		want    crypto.PublicKey
		wantErr string
	}{
		{name: "PKCS#1 RSA", pem: pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), want: rk.Public()},
		{name: "PKCS#8 RSA", pem: pemOf("PRIVATE KEY", pkcs8RSA), want: rk.Public()},
		{name: "PKCS#8 Ed25519", pem: pemOf("PRIVATE KEY", pkcs8Ed), want: edKey().Public()},
		{name: "with text around", pem: append(append([]byte("# opendkim-genkey output\n"), pemOf("PRIVATE KEY", pkcs8Ed)...), "trailer\n"...), want: edKey().Public()},
		{name: "1024-bit RSA", pem: pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small)), wantErr: "email: DKIM key: RSA key has 1024 bits, at least 2048 are required"},
		{name: "1024-bit RSA PKCS#8", pem: pemOf("PRIVATE KEY", mustPKCS8(t, small)), wantErr: "email: DKIM key: RSA key has 1024 bits, at least 2048 are required"},
		{name: "garbage", pem: []byte("not a key at all"), wantErr: "email: DKIM key: no PEM block found"},
		{name: "empty", pem: nil, wantErr: "email: DKIM key: no PEM block found"},
		{name: "truncated PKCS#1", pem: pemOf("RSA PRIVATE KEY", corrupt), wantErr: "email: DKIM key: RSA PRIVATE KEY block is not a valid PKCS#1 key"},
		{name: "PKCS#1 bytes labelled PKCS#8", pem: pemOf("PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), wantErr: "email: DKIM key: PRIVATE KEY block is not a valid PKCS#8 key"},
		{name: "EC PKCS#8", pem: pemOf("PRIVATE KEY", pkcs8EC), wantErr: "email: DKIM key: *ecdsa.PrivateKey keys are not supported (use RSA or Ed25519)"},
		{name: "EC SEC1", pem: pemOf("EC PRIVATE KEY", []byte{1, 2, 3}), wantErr: "email: DKIM key: EC keys are not supported by DKIM (use RSA or Ed25519)"},
		{name: "encrypted PKCS#8", pem: pemOf("ENCRYPTED PRIVATE KEY", pkcs8RSA), wantErr: "email: DKIM key: encrypted keys are not supported; decrypt it first"},
		{name: "legacy encrypted", pem: encrypted, wantErr: "email: DKIM key: encrypted keys are not supported; decrypt it first"},
		{name: "public key", pem: pemOf("PUBLIC KEY", []byte{1, 2, 3}), wantErr: `email: DKIM key: PEM block type "PUBLIC KEY" is not supported (want PRIVATE KEY or RSA PRIVATE KEY)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := email.ParseDKIMKey(tt.pem)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				assertNoKeyMaterial(t, err.Error(), tt.pem)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if eq, ok := got.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(tt.want) {
				t.Errorf("public key does not match")
			}
			// The parsed key signs a message that verifies.
			d := dkimConfig(got)
			if err := d.Validate(); err != nil {
				t.Fatal(err)
			}
			raw := []byte("From: <news@missive.example>\r\nSubject: hi\r\n\r\nbody\r\n")
			var signed bytes.Buffer
			if err := d.Sign(&signed, raw); err != nil {
				t.Fatal(err)
			}
			if _, err := verify(t, signed.Bytes(), got); err != nil {
				t.Errorf("verify: %v", err)
			}
		})
	}
}

func TestSignatureNeedsFrom(t *testing.T) {
	t.Parallel()
	_, err := dkimConfig(edKey()).Signature([]byte("Subject: hi\r\n\r\nbody\r\n"))
	if err == nil || err.Error() != "email: DKIM: the message has no From field" {
		t.Errorf("Signature without From = %v", err)
	}
}

// assertNoKeyMaterial checks that msg quotes no part of the PEM input: no
// line of it and no 16-byte run of its base64.
func assertNoKeyMaterial(t *testing.T, msg string, input []byte) {
	t.Helper()
	for line := range strings.Lines(string(input)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "-----") || strings.Contains(line, ":") || line == "" {
			continue // PEM armour and headers are not key material
		}
		for i := 0; i+16 <= len(line); i += 8 {
			if strings.Contains(msg, line[i:i+16]) {
				t.Errorf("error %q contains key material", msg)
				return
			}
		}
	}
	if len(input) > 0 && strings.Contains(msg, string(input)) {
		t.Errorf("error %q echoes its input", msg)
	}
}

func mustPKCS8(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// receivedFor waits for the message to addr and returns its data.
func receivedFor(t *testing.T, b *testBundle, addr string) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range b.srv.Messages() {
			if len(r.To) == 1 && r.To[0] == addr {
				return r.Data
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no message received for the test recipient")
	return nil
}

// headerOf returns the header block of a message.
func headerOf(data []byte) string {
	h, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	return string(h)
}

func unfold(s string) string { return strings.ReplaceAll(s, "\r\n", "") }

// replaceLine replaces the header line starting with prefix (and its
// continuation lines) with line.
func replaceLine(t *testing.T, data []byte, prefix, line string) []byte {
	t.Helper()
	i := bytes.Index(data, []byte("\r\n"+prefix))
	if i < 0 {
		t.Fatalf("no %s field", strings.TrimSuffix(prefix, ": "))
	}
	start := i + 2
	end := start
	for {
		n := bytes.Index(data[end:], []byte("\r\n"))
		end += n + 2
		if data[end] != ' ' && data[end] != '\t' {
			break
		}
	}
	return append(append(append([]byte{}, data[:start]...), line+"\r\n"...), data[end:]...)
}
