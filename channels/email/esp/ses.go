package esp

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/missive-dev/missive/channels"
)

// SNS message types.
const (
	SNSNotification             = "Notification"
	SNSSubscriptionConfirmation = "SubscriptionConfirmation"
	SNSUnsubscribeConfirmation  = "UnsubscribeConfirmation"
)

// SNS certificates kept in memory, and for how long.
const (
	certCacheSize = 16
	certCacheTTL  = 24 * time.Hour
	certMaxBytes  = 64 << 10
)

// snsHost is the host of every SNS endpoint, in every region and in China.
var snsHost = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

// ErrUnreachable means an SNS certificate could not be fetched for a
// reason of the network or of AWS: a retry may succeed.
var ErrUnreachable = errors.New("esp: SNS certificate host unreachable")

// SNS reads Amazon SES notifications delivered by SNS over HTTPS.
type SNS struct {
	topics map[string]bool
	certs  *CertCache
}

// NewSNS returns an SNS reader that accepts the topics topicARNs and
// fetches signing certificates through certs. It returns an error when no
// topic or no cache is given: the webhook is then not served.
func NewSNS(topicARNs []string, certs *CertCache) (*SNS, error) {
	s := &SNS{topics: map[string]bool{}, certs: certs}
	for _, arn := range topicARNs {
		if arn != "" {
			s.topics[arn] = true
		}
	}
	if len(s.topics) == 0 {
		return nil, errors.New("esp: no SNS topic ARN")
	}
	if certs == nil {
		return nil, errors.New("esp: no SNS certificate cache")
	}
	return s, nil
}

// SNSMessage is an authenticated SNS delivery.
type SNSMessage struct {
	// Type is SNSNotification, SNSSubscriptionConfirmation or
	// SNSUnsubscribeConfirmation.
	Type string
	// TopicARN is one of the accepted topics; it may be logged.
	TopicARN string
	// SubscribeURL, for a SubscriptionConfirmation, is an https URL on an
	// SNS host to GET (without following redirects) to confirm the
	// subscription; Confirm does it. It holds the subscription token:
	// never log it nor an error that quotes it.
	SubscribeURL string
	// Events are the SES events of a Notification: a signed Message that
	// is not an SES notification counts one ignored.
	Events
}

// snsMessage is an SNS HTTP(S) delivery. Subject is a pointer because it
// is signed only when present.
type snsMessage struct {
	Type             string  `json:"Type"`
	MessageID        string  `json:"MessageId"`
	Token            string  `json:"Token"`
	TopicArn         string  `json:"TopicArn"`
	Subject          *string `json:"Subject"`
	Message          string  `json:"Message"`
	Timestamp        string  `json:"Timestamp"`
	SignatureVersion string  `json:"SignatureVersion"`
	Signature        string  `json:"Signature"`
	SigningCertURL   string  `json:"SigningCertURL"`
	SubscribeURL     string  `json:"SubscribeURL"`
}

// Parse authenticates an SNS delivery, the raw request body, at now: it
// must come from an accepted topic, be signed (SignatureVersion 1,
// SHA1withRSA, or 2, SHA256withRSA) by a certificate fetched from an SNS
// host and valid now, and be at most an hour old (and at most five
// minutes ahead, for clock skew). For a Notification it reads the SES
// events of the Message.
//
// It returns an *Error: 400 when the body is not an SNS message (Field
// "body" or "Type"); 403 for a topic not accepted ("TopicArn"), a
// certificate URL off SNS ("SigningCertURL"), a stale or future
// "Timestamp", a "Signature" that does not verify (the certificate cannot
// be read, is not valid now, or does not match), a SubscribeURL off SNS
// ("SubscribeURL"); 503 wrapping ErrUnreachable when the certificate
// cannot be fetched for now.
func (s *SNS) Parse(ctx context.Context, body []byte, now time.Time) (SNSMessage, error) {
	var m snsMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return SNSMessage{}, refuse(http.StatusBadRequest, "body", "is not an SNS message")
	}
	switch m.Type {
	case SNSNotification, SNSSubscriptionConfirmation, SNSUnsubscribeConfirmation:
	default:
		return SNSMessage{}, refuse(http.StatusBadRequest, "Type", "is not an SNS message type")
	}
	if !s.topics[m.TopicArn] {
		return SNSMessage{}, refuse(http.StatusForbidden, "TopicArn", "is not an accepted topic")
	}
	if !snsURL(m.SigningCertURL, true) {
		return SNSMessage{}, refuse(http.StatusForbidden, "SigningCertURL", "is not an SNS certificate URL")
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
	if err != nil || !fresh(ts, now, snsMaxAge) {
		return SNSMessage{}, refuse(http.StatusForbidden, "Timestamp", "is missing, stale or in the future")
	}
	badSig := refuse(http.StatusForbidden, "Signature", "does not match the message")
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil || len(sig) == 0 || (m.SignatureVersion != "1" && m.SignatureVersion != "2") {
		return SNSMessage{}, badSig
	}
	cert, err := s.certs.Certificate(ctx, m.SigningCertURL, now)
	if errors.Is(err, ErrUnreachable) {
		return SNSMessage{}, &Error{Status: http.StatusServiceUnavailable, Field: "SigningCertURL",
			Message: "could not be fetched; retry later", Err: err}
	}
	if err != nil {
		badSig.Err = err
		return SNSMessage{}, badSig
	}
	if !snsSigned(cert, m.SignatureVersion, m.stringToSign(), sig) {
		return SNSMessage{}, badSig
	}

	out := SNSMessage{Type: m.Type, TopicARN: m.TopicArn}
	switch m.Type {
	case SNSSubscriptionConfirmation:
		if !snsURL(m.SubscribeURL, false) {
			return SNSMessage{}, refuse(http.StatusForbidden, "SubscribeURL", "is not an SNS URL")
		}
		out.SubscribeURL = m.SubscribeURL
	case SNSNotification:
		evs, err := sesEvents(m.Message)
		if err != nil {
			out.Ignored = 1 // signed by AWS but not an SES notification we read
		}
		for i, ev := range evs {
			ev.id = boundedID(m.MessageID, strconv.Itoa(i))
			out.add(SourceSES, ev)
		}
	}
	return out, nil
}

// Confirm confirms the subscription of m, a SubscriptionConfirmation from
// Parse, by a GET of its SubscribeURL with the cache's client, redirects
// not followed. It returns an *Error: 403 when m has no SNS SubscribeURL,
// 502 when AWS does not take it (SNS sends the confirmation again). Its
// errors never quote the URL, which holds the subscription token.
func (s *SNS) Confirm(ctx context.Context, m SNSMessage) error {
	if m.Type != SNSSubscriptionConfirmation || !snsURL(m.SubscribeURL, false) {
		return refuse(http.StatusForbidden, "SubscribeURL", "is not an SNS URL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.SubscribeURL, nil)
	if err != nil {
		return refuse(http.StatusBadRequest, "SubscribeURL", "is not a URL")
	}
	res, err := s.certs.client.Do(req)
	if err != nil {
		return refuse(http.StatusBadGateway, "SubscribeURL", "could not be confirmed; retry later")
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return &Error{Status: http.StatusBadGateway, Field: "SubscribeURL", Message: "could not be confirmed; retry later",
			Err: fmt.Errorf("status %d", res.StatusCode)}
	}
	return nil
}

// stringToSign is the canonical form SNS signs: "Name\nvalue\n" for each
// signed field, in this order, per message type.
func (m *snsMessage) stringToSign() []byte {
	var b strings.Builder
	add := func(k, v string) { b.WriteString(k + "\n" + v + "\n") }
	switch m.Type {
	case SNSNotification:
		add("Message", m.Message)
		add("MessageId", m.MessageID)
		if m.Subject != nil {
			add("Subject", *m.Subject)
		}
		add("Timestamp", m.Timestamp)
		add("TopicArn", m.TopicArn)
		add("Type", m.Type)
	default:
		add("Message", m.Message)
		add("MessageId", m.MessageID)
		add("SubscribeURL", m.SubscribeURL)
		add("Timestamp", m.Timestamp)
		add("Token", m.Token)
		add("TopicArn", m.TopicArn)
		add("Type", m.Type)
	}
	return []byte(b.String())
}

// snsURL reports whether raw is an https URL on an SNS host, with no port
// or credentials; a certificate URL must also name a .pem file.
func snsURL(raw string, cert bool) bool {
	if len(raw) > 2048 {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Opaque != "" || u.Port() != "" || !snsHost.MatchString(u.Host) {
		return false
	}
	return !cert || (strings.HasSuffix(u.Path, ".pem") && u.RawQuery == "" && u.Fragment == "")
}

// snsSigned verifies an SNS signature: version 1 is SHA1withRSA, version
// 2 SHA256withRSA.
func snsSigned(cert *x509.Certificate, version string, msg, sig []byte) bool {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return false
	}
	switch version {
	case "1":
		sum := sha1.Sum(msg)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA1, sum[:], sig) == nil
	case "2":
		sum := sha256.Sum256(msg)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil
	}
	return false
}

// CertCache fetches SNS signing certificates and keeps the last 16 for 24
// hours each, the oldest going first. It is safe for concurrent use.
type CertCache struct {
	// client is the caller's, told not to follow redirects: a certificate
	// or a subscription is fetched from the checked URL only.
	client *http.Client
	mu     sync.Mutex
	m      map[string]cachedCert
	order  []string
}

type cachedCert struct {
	cert    *x509.Certificate
	fetched time.Time
}

// NewCertCache returns a cache that fetches with a copy of client
// (http.DefaultClient when nil) that does not follow redirects.
func NewCertCache(client *http.Client) *CertCache {
	c := *cmp.Or(client, http.DefaultClient)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &CertCache{client: &c, m: map[string]cachedCert{}}
}

// Certificate returns the certificate at rawURL, an https .pem URL on an
// SNS host, valid at now: from the cache when fetched less than 24 hours
// before now, else fetched. It returns an error wrapping ErrUnreachable
// when a retry may help (network, 5xx, 429), another error when the URL is
// not an SNS certificate URL, the answer is not a PEM certificate of at
// most 64 KiB, or the certificate is not valid at now.
func (c *CertCache) Certificate(ctx context.Context, rawURL string, now time.Time) (*x509.Certificate, error) {
	if !snsURL(rawURL, true) {
		return nil, errors.New("esp: not an SNS certificate URL")
	}
	c.mu.Lock()
	e, ok := c.m[rawURL]
	c.mu.Unlock()
	if !ok || now.Sub(e.fetched) > certCacheTTL || now.Before(e.fetched) {
		cert, err := c.fetch(ctx, rawURL)
		if err != nil {
			return nil, err
		}
		e = cachedCert{cert: cert, fetched: now}
		c.mu.Lock()
		if _, ok := c.m[rawURL]; !ok {
			if len(c.order) >= certCacheSize {
				delete(c.m, c.order[0])
				c.order = c.order[1:]
			}
			c.order = append(c.order, rawURL)
		}
		c.m[rawURL] = e
		c.mu.Unlock()
	}
	if now.Before(e.cert.NotBefore) || now.After(e.cert.NotAfter) {
		return nil, errors.New("esp: SNS signing certificate not valid now")
	}
	return e.cert, nil
}

func (c *CertCache) fetch(ctx context.Context, u string) (*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("esp: SNS certificate request: %w", err)
	}
	res, err := c.client.Do(req)
	if err != nil {
		// A *url.Error repeats the URL, a body value: keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer res.Body.Close()
	if res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests {
		return nil, fmt.Errorf("%w: status %d", ErrUnreachable, res.StatusCode)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("esp: SNS certificate: status %d", res.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, certMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	if len(b) > certMaxBytes {
		return nil, errors.New("esp: SNS certificate too large")
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("esp: no certificate in the SNS PEM file")
		}
		if block.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("esp: SNS certificate: %w", err)
			}
			return cert, nil
		}
	}
}

// sesNotification is the part of an SES notification Missive reads, in
// either form: topic notifications (notificationType) or event publishing
// (eventType).
type sesNotification struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Mail             struct {
		Headers []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"headers"`
		CommonHeaders struct {
			MessageID string `json:"messageId"`
		} `json:"commonHeaders"`
	} `json:"mail"`
	Bounce struct {
		BounceType        string `json:"bounceType"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint struct {
		ComplainedRecipients []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
	} `json:"complaint"`
	Delivery struct {
		Recipients []string `json:"recipients"`
	} `json:"delivery"`
}

// sesEvents reads the events of an SES notification (the SNS Message).
func sesEvents(msg string) ([]event, error) {
	var n sesNotification
	if err := json.Unmarshal([]byte(msg), &n); err != nil {
		return nil, err
	}
	mid := n.Mail.CommonHeaders.MessageID
	if mid == "" {
		for _, hd := range n.Mail.Headers {
			if strings.EqualFold(hd.Name, "Message-ID") {
				mid = hd.Value
				break
			}
		}
	}
	send := sendOf(mid)
	var evs []event
	add := func(kind channels.FeedbackKind, addr, code string) {
		evs = append(evs, event{send: send, addr: addr, kind: kind, code: code})
	}
	switch cmp.Or(n.NotificationType, n.EventType) {
	case "Bounce":
		kind := channels.SoftBounce // Transient and Undetermined
		if n.Bounce.BounceType == "Permanent" {
			kind = channels.HardBounce
		}
		for _, rc := range n.Bounce.BouncedRecipients {
			add(kind, rc.EmailAddress, cmp.Or(statusCode(rc.Status), rc.DiagnosticCode))
		}
	case "Complaint":
		for _, rc := range n.Complaint.ComplainedRecipients {
			add(channels.Complaint, rc.EmailAddress, "")
		}
	case "Delivery":
		for _, rc := range n.Delivery.Recipients {
			add(channels.Delivered, rc, "")
		}
	}
	return evs, nil
}
