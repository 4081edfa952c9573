package feedback

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

const (
	verpPrefix   = "bounces"
	verpMACBytes = 8
	maxLocalPart = 64
)

func (d *Handler) verpMAC(id string) string {
	m := hmac.New(sha256.New, storepkg.DeriveKey(d.secret, "verp"))
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil)[:verpMACBytes])
}

// ReturnPath returns the VERP envelope sender of a send, or "" when no
// bounce domain is configured.
func (d *Handler) ReturnPath(ctx context.Context, send string) (string, error) {
	if d.bounceDomain == "" {
		return "", nil
	}
	id := send
	if len(verpPrefix)+1+len(send)+1+2*verpMACBytes > maxLocalPart {
		_, id, _ = dispatcher.SplitSendID(send)
		if err := d.Store.SetVERPSend(ctx, id, send, d.sendTTL); err != nil {
			return "", err
		}
	}
	return verpPrefix + "+" + id + "." + d.verpMAC(id) + "@" + d.bounceDomain, nil
}

// ErrForgedVERP is returned for a VERP token whose MAC does not match.
var ErrForgedVERP = errors.New("VERP token with a wrong MAC")

// ValidVERP tells whether a VERP token's MAC verifies (compared in
// constant time), without any I/O: the bounce listener asks it at RCPT,
// before reading a message. A valid token may still name an expired send.
func (d *Handler) ValidVERP(token string) bool {
	_, ok := d.verpID(token)
	return ok
}

// verpID returns the id of a token whose MAC verifies.
func (d *Handler) verpID(token string) (string, bool) {
	i := strings.LastIndexByte(token, '.')
	if i <= 0 {
		return "", false
	}
	id, mac := token[:i], token[i+1:]
	return id, hmac.Equal([]byte(strings.ToLower(mac)), []byte(d.verpMAC(id)))
}

// SendForVERP checks a VERP token and returns the send id it names.
func (d *Handler) SendForVERP(ctx context.Context, token string) (string, error) {
	id, ok := d.verpID(token)
	if !ok {
		return "", ErrForgedVERP
	}
	if _, _, ok := dispatcher.SplitSendID(id); ok {
		return id, nil
	}
	send, err := d.Store.VERPSend(ctx, id)
	if err != nil {
		return "", ErrUnknownSend
	}
	return send, nil
}

// BounceRecipient is one recipient of a bounce or complaint report, as the
// bounce intake parsed it.
type BounceRecipient struct {
	// Class is hard, soft, delay, complaint or unsubscribe.
	Class string
	// Status is the enhanced status code, when the report gives one.
	Status string
}

// HandleBounce applies a report that arrived for the VERP token: each
// recipient's class becomes a delivery event of the send the token names.
// A forged token returns ErrForgedVERP and changes nothing; an expired
// send, ErrUnknownSend. Source is "dsn" or "arf".
func (d *Handler) HandleBounce(ctx context.Context, token, source string, rcpts []BounceRecipient) error {
	send, err := d.SendForVERP(ctx, token)
	if err != nil {
		return err
	}
	for _, r := range rcpts {
		var kind channels.FeedbackKind
		switch r.Class {
		case "hard":
			kind = channels.HardBounce
		case "soft":
			kind = channels.SoftBounce
		case "complaint":
			kind = channels.Complaint
		case "unsubscribe":
			kind = channels.Unsubscribed
		default:
			continue // a delay is news, not an outcome
		}
		if err := d.RecordDelivery(ctx, channels.Feedback{Send: send, Kind: kind, Code: r.Status, Source: source}); err != nil {
			return err
		}
	}
	return nil
}
