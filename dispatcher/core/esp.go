package core

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
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
	"github.com/missive-dev/missive/dispatcher"
)

// ESPConfig holds the email providers' webhook settings.
type ESPConfig struct {
	// SESTopicARNs are the SNS topics whose notifications are accepted.
	// Empty: /webhooks/email/ses answers 404.
	SESTopicARNs []string
	// SendGridPublicKey verifies SendGrid's signed event webhook: the
	// base64 DER (or PEM) ECDSA public key from SendGrid's settings.
	// Empty: /webhooks/email/sendgrid answers 404.
	SendGridPublicKey string
	// MailgunSigningKey verifies Mailgun's webhook signatures (HMAC).
	// Empty: /webhooks/email/mailgun answers 404.
	MailgunSigningKey string
	// PostmarkUser and PostmarkPassword are the basic-auth credentials set
	// on Postmark's webhook URL. Empty: /webhooks/email/postmark answers 404.
	PostmarkUser, PostmarkPassword string
}

// Providers, as named in routes and in channels.Feedback.Source.
const (
	espSES      = "ses"
	espSendGrid = "sendgrid"
	espMailgun  = "mailgun"
	espPostmark = "postmark"
)

// Freshness windows, replay memory and limits.
const (
	// snsMaxAge: SNS signs the publication time; an older message is
	// taken for a replay.
	snsMaxAge      = time.Hour
	sendgridMaxAge = 10 * time.Minute
	mailgunMaxAge  = 5 * time.Minute
	// espMaxAhead is how far in the future a signed timestamp may be
	// (clock skew); further is refused like a stale one.
	espMaxAhead = 5 * time.Minute
	// mailgunTokenTTL outlives mailgunMaxAge: a token seen once is refused
	// for as long as its signature could still pass.
	mailgunTokenTTL = 15 * time.Minute
	// espEventTTL is how long a provider's event id is remembered, so that
	// a retried webhook does not count a soft bounce twice.
	espEventTTL = 24 * time.Hour
	// SNS signing certificates kept in memory, and for how long.
	snsCertCacheSize = 16
	snsCertCacheTTL  = 24 * time.Hour
	snsCertMaxBytes  = 64 << 10
	// espMaxID bounds the ids and tokens taken from a body.
	espMaxID = 512
)

// snsHost is the host of every SNS endpoint, in every region and in China.
var snsHost = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

// enhancedStatus finds an RFC 3463 enhanced status code ("5.1.1").
var enhancedStatus = regexp.MustCompile(`\b[245]\.[0-9]{1,3}\.[0-9]{1,3}\b`)

// espHooks serves the email providers' webhooks of one API handler. It
// keeps the parsed SendGrid key and the SNS certificates in memory.
type espHooks struct {
	d           *Dispatcher
	topics      map[string]bool
	sendgridKey *ecdsa.PublicKey
	certs       snsCerts
	// client is Config.HTTPClient, told not to follow redirects: a
	// certificate or a subscription is fetched from the checked URL only.
	client *http.Client
}

// mountESP adds the email providers' webhooks to the public routes. A
// provider without settings is not mounted and answers 404; so is
// SendGrid when its public key cannot be parsed (logged at start).
//
// Every webhook answers 200 with the count of events recorded and ignored
// once it has handled them (so that the provider stops retrying), 4xx for
// a bad signature or body with nothing changed, and 503 when Redis fails
// (or, for SES, when AWS cannot be reached), so that the provider retries.
func (a *api) mountESP() {
	cfg := a.d.cfg.ESP
	client := *a.d.cfg.HTTPClient
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	h := &espHooks{d: a.d, topics: map[string]bool{}, client: &client, certs: snsCerts{m: map[string]snsCert{}}}
	for _, arn := range cfg.SESTopicARNs {
		if arn != "" {
			h.topics[arn] = true
		}
	}
	if len(h.topics) > 0 {
		a.mux.HandleFunc("POST /webhooks/email/ses", h.ses)
	}
	if cfg.SendGridPublicKey != "" {
		key, err := parseSendGridKey(cfg.SendGridPublicKey)
		if err != nil {
			a.d.log.Error("sendgrid webhook not mounted: public key", "error", err)
		} else {
			h.sendgridKey = key
			a.mux.HandleFunc("POST /webhooks/email/sendgrid", h.sendgrid)
		}
	}
	if cfg.MailgunSigningKey != "" {
		a.mux.HandleFunc("POST /webhooks/email/mailgun", h.mailgun)
	}
	if cfg.PostmarkUser != "" && cfg.PostmarkPassword != "" {
		a.mux.HandleFunc("POST /webhooks/email/postmark", h.postmark)
	}
}

// espEvent is a delivery event read from a provider, before it is checked.
type espEvent struct {
	channels.Feedback
	// id names the event at the provider, for once-only handling; "" when
	// the provider gives none.
	id string
}

// espOutcome is the answer to a handled webhook.
type espOutcome struct {
	Recorded int `json:"recorded"`
	Ignored  int `json:"ignored"`
}

// apply checks and records events from provider: an event is kept when it
// names a send of ours or a valid address, and once per provider event
// id; ErrUnknownSend counts as ignored. It returns an error only when
// Redis fails; events recorded before stay recorded and are skipped by the
// provider's retry.
func (h *espHooks) apply(ctx context.Context, provider string, evs []espEvent) (espOutcome, error) {
	var out espOutcome
	s := h.d.Store
	for _, ev := range evs {
		ev.Channel, ev.Source = channels.Email, provider
		ev.Address = channels.Address(validAddress(string(ev.Address)))
		ev.Code = statusCode(ev.Code)
		if ev.Send != "" {
			if _, err := s.Send(ctx, ev.Send); dispatcher.IsCode(err, dispatcher.CodeNotFound) {
				ev.Send = "" // a Message-ID that looks like ours but is not
			} else if err != nil {
				return out, fmt.Errorf("%s webhook: read send: %w", provider, err)
			}
		}
		if ev.Kind == "" || (ev.Send == "" && (ev.Address == "" || ev.Kind == channels.Delivered)) {
			out.Ignored++ // nothing it could change
			continue
		}
		var claim string
		if ev.id != "" {
			claim = s.Key("esp", provider, "event", sha256hex(ev.id+"\x00"+string(ev.Kind)+"\x00"+string(ev.Address)))
			ok, err := s.Redis.SetNX(ctx, claim, 1, espEventTTL).Result()
			if err != nil {
				return out, fmt.Errorf("%s webhook: claim event: %w", provider, err)
			}
			if !ok {
				out.Ignored++ // a retry of an event already recorded
				continue
			}
		}
		switch err := h.d.RecordDelivery(ctx, ev.Feedback); {
		case err == nil:
			out.Recorded++
		case errors.Is(err, ErrUnknownSend):
			h.release(ctx, claim)
			out.Ignored++
		default:
			h.release(ctx, claim)
			return out, fmt.Errorf("%s webhook: %w", provider, err)
		}
	}
	return out, nil
}

// release drops a claim after a failure, with a fresh context: the
// request's may be what failed.
func (h *espHooks) release(ctx context.Context, key string) {
	if key == "" {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	h.d.Store.Redis.Del(dctx, key)
}

// finish answers a webhook whose events were read and authenticated.
func (h *espHooks) finish(w http.ResponseWriter, r *http.Request, provider string, evs []espEvent, ignored int) {
	out, err := h.apply(r.Context(), provider, evs)
	if err != nil {
		h.d.log.Error("esp webhook: events not recorded", "provider", provider, "recorded", out.Recorded, "error", err)
		w.Header().Set("Retry-After", "60")
		writeJSON(w, http.StatusServiceUnavailable, map[string]*dispatcher.Error{"error": {Code: dispatcher.CodeInternal, Message: "could not record the events; retry later"}})
		return
	}
	out.Ignored += ignored
	h.d.log.Info("esp webhook", "provider", provider, "recorded", out.Recorded, "ignored", out.Ignored)
	writeJSON(w, http.StatusOK, out)
}

// refuse answers 4xx with nothing changed and logs why, never with the
// request's values.
func (h *espHooks) refuse(w http.ResponseWriter, provider string, status int, field, msg string) {
	h.d.log.Warn("esp webhook refused", "provider", provider, "status", status, "field", field)
	code := dispatcher.CodeInvalid
	switch status {
	case http.StatusUnauthorized:
		code = dispatcher.CodeUnauthorized
	case http.StatusForbidden:
		code = dispatcher.CodeForbidden
	case http.StatusRequestEntityTooLarge:
		code = dispatcher.CodeTooLarge
	}
	writeJSON(w, status, map[string]*dispatcher.Error{"error": {Code: code, Field: field, Message: msg}})
}

// readBody reads a webhook body of at most maxJSONBody bytes; on failure
// it has answered.
func (h *espHooks) readBody(w http.ResponseWriter, r *http.Request, provider string) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			h.refuse(w, provider, http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("is larger than %d bytes", mb.Limit))
		} else {
			h.refuse(w, provider, http.StatusBadRequest, "body", "could not be read")
		}
		return nil, false
	}
	return b, true
}

// fresh reports whether a signed time is within maxAge of now and not
// further ahead than the clock skew allows.
func (h *espHooks) fresh(t time.Time, maxAge time.Duration) bool {
	now := h.d.cfg.Now()
	return !t.Before(now.Add(-maxAge)) && !t.After(now.Add(espMaxAhead))
}

// unixTime parses a signed Unix time in seconds.
func unixTime(s string) (time.Time, bool) {
	if len(s) == 0 || len(s) > 12 {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// validAddress returns addr normalised when it is one valid email
// address, else "": markup, control characters and oversized values are
// never an address and are dropped, not stored.
func validAddress(addr string) string {
	if addr == "" || len(addr) > 254 || strings.ContainsFunc(addr, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return ""
	}
	a, err := dispatcher.NormalizeEmail(addr)
	if err != nil {
		return ""
	}
	return a
}

// statusCode keeps an enhanced status code found in s ("5.1.1", or inside
// "smtp; 550 5.1.1 user unknown"), else a bare three-digit SMTP code,
// else nothing: the code is stored, so free text never is.
func statusCode(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 1000 {
		s = s[:1000]
	}
	if c := enhancedStatus.FindString(s); c != "" {
		return c
	}
	if len(s) == 3 && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' {
		return s
	}
	return ""
}

// sendFromMessageID returns the send id a Message-ID names when Missive
// wrote it (<send id@domain>, the id in base64url after "m-" when it is
// not a dot-atom), else "".
func sendFromMessageID(mid string) string {
	mid = strings.TrimSpace(mid)
	if mid == "" || len(mid) > espMaxID {
		return ""
	}
	mid = strings.TrimSuffix(strings.TrimPrefix(mid, "<"), ">")
	local, _, ok := strings.Cut(mid, "@")
	if !ok || local == "" {
		return ""
	}
	if enc, ok := strings.CutPrefix(local, "m-"); ok {
		if b, err := base64.RawURLEncoding.DecodeString(enc); err == nil {
			if _, _, ok := dispatcher.SplitSendID(string(b)); ok && !strings.ContainsFunc(string(b), isControl) {
				return string(b)
			}
		}
	}
	if _, _, ok := dispatcher.SplitSendID(local); ok {
		return local
	}
	return ""
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// boundedID returns an event id from a body, or "" when it is too long to
// be one.
func boundedID(parts ...string) string {
	id := strings.Join(parts, "\x00")
	if strings.Trim(id, "\x00") == "" || len(id) > espMaxID {
		return ""
	}
	return id
}

// --- Amazon SES, through SNS

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

// stringToSign is the canonical form SNS signs: "Name\nvalue\n" for each
// signed field, in this order, per message type.
func (m *snsMessage) stringToSign() []byte {
	var b strings.Builder
	add := func(k, v string) { b.WriteString(k + "\n" + v + "\n") }
	switch m.Type {
	case "Notification":
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

// ses handles Amazon SES notifications delivered by SNS: the message must
// come from an allowed topic, be signed by a certificate fetched from an
// SNS host, and be less than an hour old. A SubscriptionConfirmation is
// confirmed by visiting its SubscribeURL.
func (h *espHooks) ses(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r, espSES)
	if !ok {
		return
	}
	var m snsMessage
	if err := json.Unmarshal(body, &m); err != nil {
		h.refuse(w, espSES, http.StatusBadRequest, "body", "is not an SNS message")
		return
	}
	switch m.Type {
	case "Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation":
	default:
		h.refuse(w, espSES, http.StatusBadRequest, "Type", "is not an SNS message type")
		return
	}
	if !h.topics[m.TopicArn] {
		h.refuse(w, espSES, http.StatusForbidden, "TopicArn", "is not an accepted topic")
		return
	}
	if !snsURL(m.SigningCertURL, true) {
		h.refuse(w, espSES, http.StatusForbidden, "SigningCertURL", "is not an SNS certificate URL")
		return
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
	if err != nil || !h.fresh(ts, snsMaxAge) {
		h.refuse(w, espSES, http.StatusForbidden, "Timestamp", "is missing, stale or in the future")
		return
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil || len(sig) == 0 || (m.SignatureVersion != "1" && m.SignatureVersion != "2") {
		h.refuse(w, espSES, http.StatusForbidden, "Signature", "does not match the message")
		return
	}
	cert, err := h.snsCert(r.Context(), m.SigningCertURL)
	if errors.Is(err, errSNSUnreachable) {
		h.d.log.Warn("ses webhook: signing certificate unavailable", "error", err)
		w.Header().Set("Retry-After", "60")
		writeJSON(w, http.StatusServiceUnavailable, map[string]*dispatcher.Error{"error": {Code: dispatcher.CodeInternal, Message: "could not fetch the signing certificate; retry later"}})
		return
	}
	if err != nil || !snsSigned(cert, m.SignatureVersion, m.stringToSign(), sig) {
		h.refuse(w, espSES, http.StatusForbidden, "Signature", "does not match the message")
		return
	}

	switch m.Type {
	case "SubscriptionConfirmation":
		h.confirmSubscription(w, r, &m)
	case "UnsubscribeConfirmation":
		// Nothing to do: an unsubscription we did not ask for is the
		// operator's to notice in AWS.
		h.d.log.Warn("ses webhook: topic unsubscribed", "topic_arn", m.TopicArn)
		writeJSON(w, http.StatusOK, espOutcome{})
	default:
		evs, err := sesEvents(m.Message)
		ignored := 0
		if err != nil {
			ignored = 1 // signed by AWS but not an SES notification we read
		}
		for i := range evs {
			evs[i].id = boundedID(m.MessageID, strconv.Itoa(i))
		}
		h.finish(w, r, espSES, evs, ignored)
	}
}

// confirmSubscription visits the SubscribeURL of a signed confirmation.
// It answers 502 when AWS does not take it, so that SNS sends it again.
func (h *espHooks) confirmSubscription(w http.ResponseWriter, r *http.Request, m *snsMessage) {
	if !snsURL(m.SubscribeURL, false) {
		h.refuse(w, espSES, http.StatusForbidden, "SubscribeURL", "is not an SNS URL")
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, m.SubscribeURL, nil)
	if err != nil {
		h.refuse(w, espSES, http.StatusBadRequest, "SubscribeURL", "is not a URL")
		return
	}
	res, err := h.client.Do(req)
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			err = fmt.Errorf("status %d", res.StatusCode)
		}
	}
	if err != nil {
		// The URL holds the subscription token: never log it or the
		// error that quotes it.
		h.d.log.Warn("ses webhook: subscription not confirmed", "topic_arn", m.TopicArn)
		writeJSON(w, http.StatusBadGateway, map[string]*dispatcher.Error{"error": {Code: "upstream", Message: "could not confirm the subscription; retry later"}})
		return
	}
	h.d.log.Info("ses webhook: subscription confirmed", "topic_arn", m.TopicArn)
	writeJSON(w, http.StatusOK, map[string]bool{"confirmed": true})
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

// errSNSUnreachable means the certificate could not be fetched for a
// reason of the network or of AWS: a retry may succeed.
var errSNSUnreachable = errors.New("ses webhook: SNS certificate host unreachable")

// snsCerts caches signing certificates by URL, at most snsCertCacheSize,
// the oldest going first.
type snsCerts struct {
	mu    sync.Mutex
	m     map[string]snsCert
	order []string
}

type snsCert struct {
	cert    *x509.Certificate
	fetched time.Time
}

// snsCert returns the certificate at u, valid now, from the cache or
// fetched with Config.HTTPClient. It returns an error wrapping
// errSNSUnreachable when a retry may help.
func (h *espHooks) snsCert(ctx context.Context, u string) (*x509.Certificate, error) {
	now := h.d.cfg.Now()
	c := &h.certs
	c.mu.Lock()
	e, ok := c.m[u]
	c.mu.Unlock()
	if !ok || now.Sub(e.fetched) > snsCertCacheTTL || now.Before(e.fetched) {
		cert, err := h.fetchCert(ctx, u)
		if err != nil {
			return nil, err
		}
		e = snsCert{cert: cert, fetched: now}
		c.mu.Lock()
		if _, ok := c.m[u]; !ok {
			if len(c.order) >= snsCertCacheSize {
				delete(c.m, c.order[0])
				c.order = c.order[1:]
			}
			c.order = append(c.order, u)
		}
		c.m[u] = e
		c.mu.Unlock()
	}
	if now.Before(e.cert.NotBefore) || now.After(e.cert.NotAfter) {
		return nil, errors.New("ses webhook: signing certificate not valid now")
	}
	return e.cert, nil
}

func (h *espHooks) fetchCert(ctx context.Context, u string) (*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("ses webhook: certificate request: %w", err)
	}
	res, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSNSUnreachable, err)
	}
	defer res.Body.Close()
	if res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests {
		return nil, fmt.Errorf("%w: status %d", errSNSUnreachable, res.StatusCode)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ses webhook: certificate: status %d", res.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, snsCertMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSNSUnreachable, err)
	}
	if len(b) > snsCertMaxBytes {
		return nil, errors.New("ses webhook: certificate too large")
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("ses webhook: no certificate in the PEM file")
		}
		if block.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("ses webhook: certificate: %w", err)
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
func sesEvents(msg string) ([]espEvent, error) {
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
	send := sendFromMessageID(mid)
	var evs []espEvent
	add := func(kind channels.FeedbackKind, addr, code string) {
		evs = append(evs, espEvent{Feedback: channels.Feedback{Send: send, Address: channels.Address(addr), Kind: kind, Code: code}})
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

// --- SendGrid

// parseSendGridKey reads SendGrid's verification key: base64 DER, or PEM.
func parseSendGridKey(s string) (*ecdsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	var der []byte
	if block, _ := pem.Decode([]byte(s)); block != nil {
		der = block.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, errors.New("sendgrid: public key is neither PEM nor base64")
		}
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("sendgrid: public key: %w", err)
	}
	key, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("sendgrid: public key is not ECDSA")
	}
	return key, nil
}

type sendgridEvent struct {
	Email     string `json:"email"`
	Event     string `json:"event"`
	Type      string `json:"type"`
	Reason    string `json:"reason"`
	Status    string `json:"status"`
	SMTPID    string `json:"smtp-id"`
	EventID   string `json:"sg_event_id"`
	MessageID string `json:"sg_message_id"`
}

// sendgrid handles SendGrid's signed event webhook: an ECDSA signature
// over the timestamp and the raw body, less than ten minutes old.
func (h *espHooks) sendgrid(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r, espSendGrid)
	if !ok {
		return
	}
	ts := r.Header.Get("X-Twilio-Email-Event-Webhook-Timestamp")
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get("X-Twilio-Email-Event-Webhook-Signature"))
	if err != nil || len(sig) == 0 {
		h.refuse(w, espSendGrid, http.StatusForbidden, "X-Twilio-Email-Event-Webhook-Signature", "does not match the request")
		return
	}
	t, ok := unixTime(ts)
	if !ok || !h.fresh(t, sendgridMaxAge) {
		h.refuse(w, espSendGrid, http.StatusForbidden, "X-Twilio-Email-Event-Webhook-Timestamp", "is missing, stale or in the future")
		return
	}
	sum := sha256.New()
	sum.Write([]byte(ts))
	sum.Write(body)
	if !ecdsa.VerifyASN1(h.sendgridKey, sum.Sum(nil), sig) {
		h.refuse(w, espSendGrid, http.StatusForbidden, "X-Twilio-Email-Event-Webhook-Signature", "does not match the request")
		return
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		h.refuse(w, espSendGrid, http.StatusBadRequest, "body", "is not a JSON array of events")
		return
	}
	var evs []espEvent
	ignored := 0
	for _, item := range raw {
		var e sendgridEvent
		if json.Unmarshal(item, &e) != nil {
			ignored++
			continue
		}
		kind := sendgridKind(e)
		if kind == "" {
			ignored++
			continue
		}
		evs = append(evs, espEvent{
			Feedback: channels.Feedback{Send: sendFromMessageID(e.SMTPID), Address: channels.Address(e.Email), Kind: kind, Code: e.Status},
			id:       boundedID(cmp.Or(e.EventID, e.MessageID)),
		})
	}
	h.finish(w, r, espSendGrid, evs, ignored)
}

// sendgridKind maps a SendGrid event; "" for those that change nothing
// (processed, deferred, opens, clicks...).
func sendgridKind(e sendgridEvent) channels.FeedbackKind {
	switch e.Event {
	case "delivered":
		return channels.Delivered
	case "spamreport":
		return channels.Complaint
	case "bounce":
		if e.Type == "blocked" {
			return channels.SoftBounce
		}
		return channels.HardBounce
	case "dropped":
		// SendGrid drops what its own suppression lists hold: the reason
		// says which list. An unsubscribe at SendGrid names no topic of
		// ours, so it only fails the send.
		reason := strings.ToLower(e.Reason)
		switch {
		case strings.Contains(reason, "bounced address"):
			return channels.HardBounce
		case strings.Contains(reason, "spam reporting"):
			return channels.Complaint
		default:
			return channels.Undelivered
		}
	}
	return ""
}

// --- Mailgun

type mailgunBody struct {
	Signature struct {
		Timestamp string `json:"timestamp"`
		Token     string `json:"token"`
		Signature string `json:"signature"`
	} `json:"signature"`
	EventData json.RawMessage `json:"event-data"`
}

type mailgunEvent struct {
	ID        string `json:"id"`
	Event     string `json:"event"`
	Severity  string `json:"severity"`
	Recipient string `json:"recipient"`
	Message   struct {
		Headers struct {
			MessageID string `json:"message-id"`
		} `json:"headers"`
	} `json:"message"`
	DeliveryStatus struct {
		Code         json.RawMessage `json:"code"`
		EnhancedCode string          `json:"enhanced-code"`
		Message      string          `json:"message"`
		Description  string          `json:"description"`
	} `json:"delivery-status"`
}

// mailgun handles Mailgun's JSON webhooks: an HMAC-SHA256 of timestamp
// and token under the signing key, less than five minutes old, each token
// taken once.
func (h *espHooks) mailgun(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r, espMailgun)
	if !ok {
		return
	}
	var b mailgunBody
	if err := json.Unmarshal(body, &b); err != nil {
		h.refuse(w, espMailgun, http.StatusBadRequest, "body", "is not a Mailgun webhook")
		return
	}
	sg := b.Signature
	got, err := hex.DecodeString(sg.Signature)
	if err != nil || sg.Token == "" || len(sg.Token) > espMaxID {
		h.refuse(w, espMailgun, http.StatusForbidden, "signature", "does not match the request")
		return
	}
	mac := hmac.New(sha256.New, []byte(h.d.cfg.ESP.MailgunSigningKey))
	mac.Write([]byte(sg.Timestamp))
	mac.Write([]byte(sg.Token))
	if !hmac.Equal(got, mac.Sum(nil)) {
		h.refuse(w, espMailgun, http.StatusForbidden, "signature", "does not match the request")
		return
	}
	t, ok := unixTime(sg.Timestamp)
	if !ok || !h.fresh(t, mailgunMaxAge) {
		h.refuse(w, espMailgun, http.StatusForbidden, "signature.timestamp", "is stale or in the future")
		return
	}
	ctx := r.Context()
	s := h.d.Store
	key := s.Key("mailgun", "token", sha256hex(sg.Token))
	fresh, err := s.Redis.SetNX(ctx, key, 1, mailgunTokenTTL).Result()
	if err != nil {
		h.d.log.Error("mailgun webhook: token not recorded", "error", err)
		w.Header().Set("Retry-After", "60")
		writeJSON(w, http.StatusServiceUnavailable, map[string]*dispatcher.Error{"error": {Code: dispatcher.CodeInternal, Message: "could not record the event; retry later"}})
		return
	}
	if !fresh {
		h.refuse(w, espMailgun, http.StatusForbidden, "signature.token", "was already used")
		return
	}
	var e mailgunEvent
	var evs []espEvent
	ignored := 0
	if json.Unmarshal(b.EventData, &e) != nil {
		ignored = 1
	} else if kind := mailgunKind(e); kind == "" {
		ignored = 1
	} else {
		code := cmp.Or(statusCode(e.DeliveryStatus.EnhancedCode), statusCode(e.DeliveryStatus.Message))
		code = cmp.Or(code, statusCode(e.DeliveryStatus.Description))
		code = cmp.Or(code, statusCode(string(e.DeliveryStatus.Code)))
		evs = append(evs, espEvent{
			Feedback: channels.Feedback{Send: sendFromMessageID(e.Message.Headers.MessageID), Address: channels.Address(e.Recipient), Kind: kind, Code: code},
			id:       boundedID(e.ID),
		})
	}
	out, err := h.apply(ctx, espMailgun, evs)
	if err != nil {
		h.release(ctx, key) // the retry carries the same token
		h.d.log.Error("mailgun webhook: event not recorded", "error", err)
		w.Header().Set("Retry-After", "60")
		writeJSON(w, http.StatusServiceUnavailable, map[string]*dispatcher.Error{"error": {Code: dispatcher.CodeInternal, Message: "could not record the event; retry later"}})
		return
	}
	out.Ignored += ignored
	h.d.log.Info("esp webhook", "provider", espMailgun, "recorded", out.Recorded, "ignored", out.Ignored)
	writeJSON(w, http.StatusOK, out)
}

// mailgunKind maps a Mailgun event; "" for those that change nothing.
func mailgunKind(e mailgunEvent) channels.FeedbackKind {
	switch e.Event {
	case "delivered":
		return channels.Delivered
	case "complained":
		return channels.Complaint
	case "failed":
		switch e.Severity {
		case "permanent":
			return channels.HardBounce
		case "temporary":
			return channels.SoftBounce
		}
	}
	return ""
}

// --- Postmark

type postmarkEvent struct {
	RecordType string          `json:"RecordType"`
	ID         json.RawMessage `json:"ID"`
	Type       string          `json:"Type"`
	MessageID  string          `json:"MessageID"`
	Email      string          `json:"Email"`
	Recipient  string          `json:"Recipient"`
	Details    string          `json:"Details"`
	Headers    []struct {
		Name  string `json:"Name"`
		Value string `json:"Value"`
	} `json:"Headers"`
	Metadata map[string]any `json:"Metadata"`
}

// postmark handles Postmark's webhooks, authenticated by the basic-auth
// credentials set on the webhook URL.
func (h *espHooks) postmark(w http.ResponseWriter, r *http.Request) {
	if !h.postmarkAuthorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="missive"`)
		h.refuse(w, espPostmark, http.StatusUnauthorized, "Authorization", "missing or wrong credentials")
		return
	}
	body, ok := h.readBody(w, r, espPostmark)
	if !ok {
		return
	}
	var e postmarkEvent
	if err := json.Unmarshal(body, &e); err != nil {
		h.refuse(w, espPostmark, http.StatusBadRequest, "body", "is not a Postmark webhook")
		return
	}
	kind := postmarkKind(e)
	if kind == "" {
		h.finish(w, r, espPostmark, nil, 1)
		return
	}
	var mid string
	for _, hd := range e.Headers {
		if strings.EqualFold(hd.Name, "Message-ID") {
			mid = hd.Value
			break
		}
	}
	if mid == "" {
		for k, v := range e.Metadata {
			if s, ok := v.(string); ok && strings.EqualFold(k, "Message-ID") {
				mid = s
			}
		}
	}
	id := ""
	if len(e.ID) <= 64 {
		id = string(e.ID)
	}
	addr := cmp.Or(e.Email, e.Recipient)
	h.finish(w, r, espPostmark, []espEvent{{
		Feedback: channels.Feedback{Send: sendFromMessageID(mid), Address: channels.Address(addr), Kind: kind, Code: e.Details},
		id:       boundedID(e.RecordType, id, e.MessageID),
	}}, 0)
}

// postmarkAuthorized compares both credentials in constant time, both
// always.
func (h *espHooks) postmarkAuthorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	cfg := h.d.cfg.ESP
	gu, wu := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(cfg.PostmarkUser))
	gp, wp := sha256.Sum256([]byte(pass)), sha256.Sum256([]byte(cfg.PostmarkPassword))
	match := subtle.ConstantTimeCompare(gu[:], wu[:]) & subtle.ConstantTimeCompare(gp[:], wp[:])
	return ok && match == 1
}

// postmarkKind maps a Postmark record; "" for those that change nothing
// (auto-responders, opens, clicks, subscription changes...).
func postmarkKind(e postmarkEvent) channels.FeedbackKind {
	switch e.RecordType {
	case "Delivery":
		return channels.Delivered
	case "SpamComplaint":
		return channels.Complaint
	case "Bounce":
		switch e.Type {
		case "HardBounce", "BadEmailAddress":
			return channels.HardBounce
		case "SoftBounce", "Transient", "DnsError":
			return channels.SoftBounce
		case "SpamComplaint":
			return channels.Complaint
		case "Blocked", "DMARCPolicy":
			return channels.Undelivered
		}
	}
	return ""
}
