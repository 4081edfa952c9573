package email

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/wneessen/go-mail"
)

// MinRSABits is the smallest RSA key accepted for DKIM. RFC 8301 requires
// verifiers to accept 1024 to 4096 bits; Gmail and Yahoo expect 2048.
const MinRSABits = 2048

// DKIM signs outgoing messages (RFC 6376) with relaxed/relaxed
// canonicalisation and SHA-256. The public key is published by the operator
// as a TXT record at <Selector>._domainkey.<Domain>.
type DKIM struct {
	// Domain is the signing domain (d=), usually the From domain or a parent
	// of it, so that DMARC aligns. Required.
	Domain string
	// Selector names the key (s=) under Domain. Required.
	Selector string
	// PrivateKey signs: an *rsa.PrivateKey of at least MinRSABits bits or an
	// ed25519.PrivateKey (RFC 8463), or any crypto.Signer whose Public is one
	// of those (a key held in a KMS). See ParseDKIMKey. Required.
	PrivateKey crypto.Signer
}

// signedHeaders are the fields put in h=, in this order, when the message
// has them. From is always there. List-Unsubscribe and List-Unsubscribe-Post
// must be signed for one-click unsubscribe to be honoured (RFC 8058 §4).
var signedHeaders = []string{
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "List-Id", "List-Unsubscribe",
	"List-Unsubscribe-Post", "List-Help", "Feedback-ID",
}

// oversigned are listed in h= once more than they occur.
var oversigned = []string{"From", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post"}

// dkimHeader is the name of the header field a signature is carried in.
const dkimHeader = "DKIM-Signature"

// Validate checks the domain and selector syntax and the key type and size.
// Its errors name the field and never contain key material.
func (d DKIM) Validate() error {
	if err := checkDomain(d.Domain, 2); err != nil {
		return fmt.Errorf("email: DKIM Domain: %w", err)
	}
	if err := checkDomain(d.Selector, 1); err != nil {
		return fmt.Errorf("email: DKIM Selector: %w", err)
	}
	if d.PrivateKey == nil {
		return errors.New("email: DKIM PrivateKey is not set")
	}
	if err := checkPublicKey(d.PrivateKey.Public()); err != nil {
		return fmt.Errorf("email: DKIM PrivateKey: %w", err)
	}
	return nil
}

// checkPublicKey accepts RSA keys of MinRSABits or more and Ed25519 keys.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA key has %d bits, at least %d are required", k.N.BitLen(), MinRSABits)
		}
		return nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return errors.New("Ed25519 key has the wrong size")
		}
		return nil
	}
	return fmt.Errorf("key type %T is not supported (use RSA or Ed25519)", pub)
}

// checkDomain checks a dot-separated name of at least minLabels labels of
// letters, digits and inner hyphens (RFC 6376 §3.1 and §3.5: selectors and
// domains are sub-domains). A trailing dot is refused: d= and s= are written
// without it.
func checkDomain(s string, minLabels int) error {
	if s == "" {
		return errors.New("is empty")
	}
	if len(s) > 253 {
		return errors.New("is longer than 253 characters")
	}
	labels := strings.Split(s, ".")
	if len(labels) < minLabels {
		return errors.New("must have at least two labels (example.com)")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%q: labels must have 1 to 63 characters", s)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q: labels must not start or end with a hyphen", s)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("%q: only letters, digits, hyphens and dots are allowed", s)
			}
		}
	}
	return nil
}

// ParseDKIMKey parses a PEM private key for DKIM: PKCS#1 RSA ("RSA PRIVATE
// KEY"), or PKCS#8 RSA or Ed25519 ("PRIVATE KEY"), as written by
// `openssl genrsa`, `openssl genpkey -algorithm ed25519` or opendkim-genkey.
//
// It returns an error for a missing PEM block, an encrypted key, another key
// type (EC, DSA), a key that does not parse, or an RSA key of fewer than
// MinRSABits bits. The error never contains key material.
func ParseDKIMKey(pemBytes []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("email: DKIM key: no PEM block found")
	}
	if _, ok := block.Headers["Proc-Type"]; ok || block.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, errors.New("email: DKIM key: encrypted keys are not supported; decrypt it first")
	}
	var key crypto.Signer
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			// x509's text is generic, but keep ours so that nothing from
			// the input can ever be echoed.
			return nil, errors.New("email: DKIM key: RSA PRIVATE KEY block is not a valid PKCS#1 key")
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("email: DKIM key: PRIVATE KEY block is not a valid PKCS#8 key")
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			key = k
		case ed25519.PrivateKey:
			key = k
		default:
			return nil, fmt.Errorf("email: DKIM key: %T keys are not supported (use RSA or Ed25519)", k)
		}
	case "EC PRIVATE KEY":
		return nil, errors.New("email: DKIM key: EC keys are not supported by DKIM (use RSA or Ed25519)")
	default:
		return nil, fmt.Errorf("email: DKIM key: PEM block type %q is not supported (want PRIVATE KEY or RSA PRIVATE KEY)", block.Type)
	}
	if err := checkPublicKey(key.Public()); err != nil {
		return nil, fmt.Errorf("email: DKIM key: %w", err)
	}
	return key, nil
}

// Signature signs message, a complete RFC 5322 message with CRLF line ends
// (as Build's message writes it), and returns the DKIM-Signature header
// field to prepend to it, name and final CRLF included.
//
// h= lists the fields of signedHeaders that the message has; From is
// required. Signature returns an error when the message has no From, when
// its header cannot be read, or when the key fails to sign; the error never
// contains the message or the key.
func (d DKIM) Signature(message []byte) (string, error) {
	keys, err := presentHeaders(message)
	if err != nil {
		return "", err
	}
	signer, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 d.Domain,
		Selector:               d.Selector,
		Signer:                 d.PrivateKey,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return "", fmt.Errorf("email: DKIM: %w", err)
	}
	if _, err := signer.Write(message); err != nil {
		_ = signer.Close()
		return "", fmt.Errorf("email: DKIM signing: %w", err)
	}
	if err := signer.Close(); err != nil {
		// The header was read above, so what fails here is the
		// crypto.Signer. go-msgauth's errors never quote the message.
		return "", &signError{err}
	}
	return signer.Signature(), nil
}

// Sign writes message to w with a DKIM-Signature field in front of it.
// Errors are those of Signature and of w.
func (d DKIM) Sign(w io.Writer, message []byte) error {
	sig, err := d.Signature(message)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, sig); err != nil {
		return err
	}
	_, err = w.Write(message)
	return err
}

// signError is a failure of the key to sign: the operator's problem, not
// the message's.
type signError struct{ err error }

func (e *signError) Error() string { return "email: DKIM signing: " + e.err.Error() }
func (e *signError) Unwrap() error { return e.err }

// presentHeaders returns the names of signedHeaders that message has.
func presentHeaders(message []byte) ([]string, error) {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(message)))
	h, err := r.ReadMIMEHeader()
	if err != nil && !(errors.Is(err, io.EOF) && len(h) > 0) {
		return nil, errors.New("email: DKIM: the message header cannot be read")
	}
	var keys []string
	for _, k := range signedHeaders {
		if _, ok := h[textproto.CanonicalMIMEHeaderKey(k)]; ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 || keys[0] != "From" {
		return nil, errors.New("email: DKIM: the message has no From field")
	}
	// Over-sign the fields a forger would most like to add a second copy
	// of: naming them once more than they occur makes any added copy break
	// the signature (RFC 6376 §8.15).
	for _, k := range oversigned {
		if _, ok := h[textproto.CanonicalMIMEHeaderKey(k)]; ok {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// signMsg signs msg as go-mail will write it and adds the DKIM-Signature
// field to it, so that the msg.WriteTo that sends it (transactions.data)
// carries the signature in front of the other fields.
//
// This relies on go-mail writing the same Msg twice to the same fields and
// body. It does:
// Build fixes Date and Message-ID, go-mail keeps the multipart boundary it
// drew on the first write, and the fields are written in an order that DKIM
// does not depend on anyway (each name occurs once; verifiers pick fields by
// name). The signature is set as a generic field, which go-mail writes
// first (fields are sorted and "DKIM-Signature" sorts before "Date") and
// may fold at its spaces only: relaxed canonicalisation ignores that.
// TestDKIMSend verifies signatures on the bytes the SMTP server received.
func (d DKIM) signMsg(msg *mail.Msg) error {
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return fmt.Errorf("email: rendering the message: %w", err)
	}
	sig, err := d.Signature(buf.Bytes())
	if err != nil {
		return err
	}
	value, ok := strings.CutPrefix(sig, dkimHeader+":")
	if !ok {
		return errors.New("email: DKIM: unexpected signature field")
	}
	// Unfold: go-msgauth folds as CRLF SP, so dropping the CRLFs leaves
	// the spaces go-mail may fold at again.
	value = strings.TrimSpace(strings.ReplaceAll(value, "\r\n", ""))
	msg.SetGenHeader(mail.Header(dkimHeader), value)
	return nil
}
