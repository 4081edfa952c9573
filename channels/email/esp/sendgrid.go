package esp

import (
	"cmp"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
)

// SendGrid's signed event webhook headers.
const (
	sendgridSignature = "X-Twilio-Email-Event-Webhook-Signature"
	sendgridTimestamp = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// SendGrid reads SendGrid's signed event webhook.
type SendGrid struct {
	key *ecdsa.PublicKey
}

// NewSendGrid returns a SendGrid reader verifying with publicKey, the
// ECDSA verification key from SendGrid's settings in base64 DER or PEM. It
// returns an error when the key is empty or cannot be read: the webhook is
// then not served.
func NewSendGrid(publicKey string) (*SendGrid, error) {
	s := strings.TrimSpace(publicKey)
	if s == "" {
		return nil, errors.New("esp: sendgrid: no public key")
	}
	var der []byte
	if block, _ := pem.Decode([]byte(s)); block != nil {
		der = block.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, errors.New("esp: sendgrid: public key is neither PEM nor base64")
		}
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("esp: sendgrid: public key: %w", err)
	}
	key, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("esp: sendgrid: public key is not ECDSA")
	}
	return &SendGrid{key: key}, nil
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

// Parse authenticates a SendGrid event webhook from its headers and raw
// body at now: an ECDSA signature over the timestamp header and the body,
// the timestamp at most ten minutes old and five ahead. It reads the
// events of the JSON array; an item that is not an event, or an event
// that changes nothing (processed, deferred, open, click...), counts as
// ignored.
//
// It returns an *Error: 403 for a missing or wrong signature (Field
// "X-Twilio-Email-Event-Webhook-Signature") or a missing, stale or future
// "X-Twilio-Email-Event-Webhook-Timestamp"; 400 when the signed body is
// not a JSON array ("body").
func (s *SendGrid) Parse(header http.Header, body []byte, now time.Time) (Events, error) {
	badSig := refuse(http.StatusForbidden, sendgridSignature, "does not match the request")
	ts := header.Get(sendgridTimestamp)
	sig, err := base64.StdEncoding.DecodeString(header.Get(sendgridSignature))
	if err != nil || len(sig) == 0 {
		return Events{}, badSig
	}
	t, ok := unixTime(ts)
	if !ok || !fresh(t, now, sendgridMaxAge) {
		return Events{}, refuse(http.StatusForbidden, sendgridTimestamp, "is missing, stale or in the future")
	}
	sum := sha256.New()
	sum.Write([]byte(ts))
	sum.Write(body)
	if !ecdsa.VerifyASN1(s.key, sum.Sum(nil), sig) {
		return Events{}, badSig
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return Events{}, refuse(http.StatusBadRequest, "body", "is not a JSON array of events")
	}
	var out Events
	for _, item := range raw {
		var e sendgridEvent
		if json.Unmarshal(item, &e) != nil {
			out.Ignored++
			continue
		}
		kind := sendgridKind(e)
		if kind == "" {
			out.Ignored++
			continue
		}
		out.add(SourceSendGrid, event{send: sendOf(e.SMTPID), addr: e.Email, kind: kind, code: e.Status,
			id: boundedID(cmp.Or(e.EventID, e.MessageID))})
	}
	return out, nil
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
