package esp

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/missive-dev/missive/channels"
)

// Mailgun reads Mailgun's JSON webhooks.
type Mailgun struct {
	key []byte
}

// NewMailgun returns a Mailgun reader verifying with signingKey, the HTTP
// webhook signing key from Mailgun's settings. It returns an error when
// the key is empty: the webhook is then not served.
func NewMailgun(signingKey string) (*Mailgun, error) {
	if signingKey == "" {
		return nil, errors.New("esp: mailgun: no signing key")
	}
	return &Mailgun{key: []byte(signingKey)}, nil
}

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

// Parse authenticates a Mailgun webhook, the raw JSON body, at now: an
// HMAC-SHA256 of the timestamp and the token under the signing key, the
// timestamp at most five minutes old and five ahead. It returns the one
// event of the body (ignored when it changes nothing or cannot be read)
// and the token.
//
// The caller takes each token once: it remembers it for MailgunTokenTTL
// and refuses a token seen before with MailgunTokenReused, before it
// records anything.
//
// It returns an *Error: 400 when the body is not JSON ("body"); 403 for a
// missing or wrong "signature" (or a token empty or over 512 bytes), a
// stale or future "signature.timestamp".
func (m *Mailgun) Parse(body []byte, now time.Time) (ev Events, token string, err error) {
	var b mailgunBody
	if err := json.Unmarshal(body, &b); err != nil {
		return Events{}, "", refuse(http.StatusBadRequest, "body", "is not a Mailgun webhook")
	}
	sg := b.Signature
	got, err := hex.DecodeString(sg.Signature)
	if err != nil || sg.Token == "" || len(sg.Token) > maxID {
		return Events{}, "", refuse(http.StatusForbidden, "signature", "does not match the request")
	}
	mac := hmac.New(sha256.New, m.key)
	mac.Write([]byte(sg.Timestamp))
	mac.Write([]byte(sg.Token))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return Events{}, "", refuse(http.StatusForbidden, "signature", "does not match the request")
	}
	t, ok := unixTime(sg.Timestamp)
	if !ok || !fresh(t, now, mailgunMaxAge) {
		return Events{}, "", refuse(http.StatusForbidden, "signature.timestamp", "is stale or in the future")
	}
	var e mailgunEvent
	if json.Unmarshal(b.EventData, &e) != nil {
		ev.Ignored = 1
	} else if kind := mailgunKind(e); kind == "" {
		ev.Ignored = 1
	} else {
		code := cmp.Or(statusCode(e.DeliveryStatus.EnhancedCode), statusCode(e.DeliveryStatus.Message))
		code = cmp.Or(code, statusCode(e.DeliveryStatus.Description))
		code = cmp.Or(code, statusCode(string(e.DeliveryStatus.Code)))
		ev.add(SourceMailgun, event{send: sendOf(e.Message.Headers.MessageID), addr: e.Recipient, kind: kind, code: code,
			id: boundedID(e.ID)})
	}
	return ev, sg.Token, nil
}

// MailgunTokenReused is the refusal of a Mailgun request whose token was
// already taken: 403, Field "signature.token".
func MailgunTokenReused() *Error {
	return refuse(http.StatusForbidden, "signature.token", "was already used")
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
