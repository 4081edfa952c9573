package esp

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/missive-dev/missive/channels"
)

// Postmark reads Postmark's webhooks, authenticated by the basic-auth
// credentials set on the webhook URL.
type Postmark struct {
	user, password [sha256.Size]byte
}

// NewPostmark returns a Postmark reader expecting user and password. It
// returns an error when either is empty: the webhook is then not served.
func NewPostmark(user, password string) (*Postmark, error) {
	if user == "" || password == "" {
		return nil, errors.New("esp: postmark: no basic-auth user or password")
	}
	return &Postmark{user: sha256.Sum256([]byte(user)), password: sha256.Sum256([]byte(password))}, nil
}

// Authorize checks the basic-auth credentials of a request's header,
// both in constant time, both always. Call it before reading the body.
//
// It returns an *Error, 401 with Field "Authorization", when they are
// missing or wrong; answer it with WWW-Authenticate: Basic realm="missive".
func (p *Postmark) Authorize(header http.Header) error {
	user, pass, ok := (&http.Request{Header: header}).BasicAuth()
	gu, gp := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	match := subtle.ConstantTimeCompare(gu[:], p.user[:]) & subtle.ConstantTimeCompare(gp[:], p.password[:])
	if !ok || match != 1 {
		return refuse(http.StatusUnauthorized, "Authorization", "missing or wrong credentials")
	}
	return nil
}

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

// Parse authorizes a Postmark webhook (as Authorize) and reads the one
// record of its raw body; a record that changes nothing (open, click,
// subscription change...) counts as ignored.
//
// It returns an *Error: 401 as Authorize; 400 when the body is not a
// Postmark record ("body").
func (p *Postmark) Parse(header http.Header, body []byte) (Events, error) {
	if err := p.Authorize(header); err != nil {
		return Events{}, err
	}
	var e postmarkEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return Events{}, refuse(http.StatusBadRequest, "body", "is not a Postmark webhook")
	}
	kind := postmarkKind(e)
	if kind == "" {
		return Events{Ignored: 1}, nil
	}
	var mid string
	for _, hd := range e.Headers {
		if strings.EqualFold(hd.Name, "Message-ID") {
			mid = hd.Value
			break
		}
	}
	if mid == "" {
		// Sorted, so that keys differing in case always give the same.
		for _, k := range slices.Sorted(maps.Keys(e.Metadata)) {
			if s, ok := e.Metadata[k].(string); ok && strings.EqualFold(k, "Message-ID") {
				mid = s
			}
		}
	}
	id := ""
	if len(e.ID) <= 64 {
		id = string(e.ID)
	}
	var out Events
	out.add(SourcePostmark, event{send: sendOf(mid), addr: cmp.Or(e.Email, e.Recipient), kind: kind, code: e.Details,
		id: boundedID(e.RecordType, id, e.MessageID)})
	return out, nil
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
