package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
)

// API sends: one message to one contact, triggered by an upstream system
// (an order confirmation, a password reset). Retries are safe: the
// Idempotency-Key names the send, so the same key never sends twice, and
// its record replays the first answer for 24 hours.

const (
	idemTTL = 24 * time.Hour
	// idemPendingTTL bounds how long a crashed request holds its key: after
	// it, a retry runs again, which is safe since the send id derives from
	// the key.
	idemPendingTTL = 2 * time.Minute
	maxIdemKeyLen  = 128
)

type sendRequest struct {
	Contact  string        `json:"contact"`
	Topic    string        `json:"topic"`
	Channel  channels.Kind `json:"channel"`
	Template string        `json:"template"`
	// Data is what the templates reach as .Data (dispatcher.ParseSendData);
	// the fingerprint holds its keyed digest (store.SendDataDigest), so the
	// same key with other data is another body.
	Data json.RawMessage `json:"data,omitempty"`
}

// SendAnswer is the answer to POST /v1/sends.
type SendAnswer struct {
	Send   string    `json:"send"`
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Until  time.Time `json:"until,omitzero"`
}

// idemRecord is what the key record holds: the request's fingerprint and,
// once answered, the answer.
type idemRecord struct {
	Fingerprint string          `json:"fp"`
	Done        bool            `json:"done,omitempty"`
	Status      int             `json:"status,omitempty"`
	Body        json.RawMessage `json:"body,omitempty"`
}

func validIdemKey(k string) bool {
	if len(k) == 0 || len(k) > maxIdemKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// requiredIdemKey returns the request's Idempotency-Key, which a send and
// an enrolment require: it returns an invalid error naming the header if
// it is missing or not 1-maxIdemKeyLen printable ASCII characters.
func requiredIdemKey(r *http.Request) (string, error) {
	key := r.Header.Get("Idempotency-Key")
	if !validIdemKey(key) {
		return "", dispatcher.Invalid("Idempotency-Key", "header is required: 1-%d printable ASCII characters", maxIdemKeyLen)
	}
	return key, nil
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func (a *handler) postSend(w http.ResponseWriter, r *http.Request) (int, any, error) {
	key, err := requiredIdemKey(r)
	if err != nil {
		return 0, nil, err
	}
	var in sendRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	switch {
	case !dispatcher.ValidID(in.Contact):
		return 0, nil, dispatcher.Invalid("contact", "must be a contact id")
	case !dispatcher.NamePattern.MatchString(in.Topic):
		return 0, nil, dispatcher.Invalid("topic", "must name a topic")
	case !in.Channel.Valid():
		return 0, nil, dispatcher.Invalid("channel", "must be email or sms")
	case !dispatcher.NamePattern.MatchString(in.Template):
		return 0, nil, dispatcher.Invalid("template", "must name a template")
	}
	data, err := a.sendData(&in.Data)
	if err != nil {
		return 0, nil, err
	}
	fp, _ := json.Marshal(in)
	return a.idempotent(r.Context(), key, "", fp, func(ctx context.Context) (int, any, error) {
		ans, err := a.sendOne(ctx, key, in, data)
		return http.StatusAccepted, ans, err
	})
}

// sendData parses the data of a request (POST /v1/sends, an enrolment)
// and puts in its place, for the request's fingerprint, a keyed digest of
// it: an idempotency record never holds the data.
func (a *handler) sendData(raw *json.RawMessage) (map[string]any, error) {
	data, err := dispatcher.ParseSendData(*raw)
	if err != nil {
		return nil, err
	}
	*raw = nil
	if data != nil {
		digest, err := a.d.Store.SendDataDigest(data)
		if err != nil {
			return nil, err
		}
		*raw, _ = json.Marshal(digest)
	}
	return data, nil
}

// idempotent runs do once for the Idempotency-Key key and a request whose
// fingerprint is fp (on route, "" for POST /v1/sends, whose records came
// first): a retry with the same key and request gets do's answer again,
// and another request with the key is refused. A do that
// fails releases the key, so that a retry runs again.
func (a *handler) idempotent(ctx context.Context, key, route string, fp []byte, do func(context.Context) (int, any, error)) (int, any, error) {
	if route != "" {
		key = route + "\x00" + key
	}
	rec := idemRecord{Fingerprint: sha256hex(string(fp))}
	st := a.d.Store

	// Reserve the key, or find what happened to it.
	pending, _ := json.Marshal(rec)
	for attempt := 0; ; attempt++ {
		ok, b, err := st.ReserveIdempotency(ctx, key, pending, idemPendingTTL)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			break
		}
		if b == nil {
			if attempt < 3 {
				continue // expired or released meanwhile
			}
			return 0, nil, dispatcher.Conflict("a request with this Idempotency-Key keeps changing; retry later")
		}
		var prev idemRecord
		if err := json.Unmarshal(b, &prev); err != nil {
			return 0, nil, err
		}
		if prev.Fingerprint != rec.Fingerprint {
			return 0, nil, &dispatcher.Error{Code: dispatcher.CodeIdempotency, Field: "Idempotency-Key",
				Message: "was used with another request body"}
		}
		if !prev.Done {
			return 0, nil, dispatcher.Conflict("a request with this Idempotency-Key is in progress; retry later")
		}
		return prev.Status, prev.Body, nil
	}

	status, ans, err := do(ctx)
	if err != nil {
		// Nothing to replay: release the key so that a retry runs again
		// (and finds what was done, if anything was).
		_ = st.ReleaseIdempotency(context.WithoutCancel(ctx), key)
		return 0, nil, err
	}
	body, err := json.Marshal(ans)
	if err != nil {
		return 0, nil, err
	}
	rec.Done, rec.Status, rec.Body = true, status, body
	done, _ := json.Marshal(rec)
	if err := st.SetIdempotency(context.WithoutCancel(ctx), key, done, idemTTL); err != nil {
		return 0, nil, err
	}
	return status, json.RawMessage(body), nil
}

// sendOne decides the API send that key names and enqueues it when it may
// go. A retry after a failure finds the decided send and enqueues it again.
func (a *handler) sendOne(ctx context.Context, key string, in sendRequest, data map[string]any) (*SendAnswer, error) {
	d := a.d
	s := d.Store
	c, err := s.Contact(ctx, in.Contact)
	if errors.Is(err, dispatcher.ErrNotFound) {
		return nil, dispatcher.Invalid("contact", "names no contact")
	}
	if err != nil {
		return nil, err
	}
	topic, err := s.Topic(ctx, in.Topic)
	if dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		return nil, dispatcher.Invalid("topic", "names no topic")
	}
	if err != nil {
		return nil, err
	}
	tpl, err := s.Template(ctx, in.Template)
	if dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		return nil, dispatcher.Invalid("template", "names no template")
	}
	if err != nil {
		return nil, err
	}
	if (in.Channel == channels.Email && tpl.Email == nil) || (in.Channel == channels.SMS && tpl.SMS == nil) {
		return nil, dispatcher.Invalid("template", "the template has no %s part", in.Channel)
	}
	if d.Config.Channels[in.Channel] == nil {
		return nil, dispatcher.Invalid("channel", "no %s channel is configured", in.Channel)
	}
	sd, err := d.Pipeline.DecideOne(ctx, pipeline.OneSend{Campaign: dispatcher.APICampaign, Key: "idem:" + sha256hex(key)[:16],
		Contact: c, Topic: topic, Tpl: tpl, Channel: in.Channel, Data: data})
	if err != nil {
		return nil, err
	}
	return &SendAnswer{Send: sd.ID, State: sd.State, Reason: sd.Reason, Until: sd.Until}, nil
}

func (a *handler) getSend(w http.ResponseWriter, r *http.Request) (int, any, error) {
	s, err := a.d.Store.Send(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s, nil
}

// --- one-click unsubscribe (RFC 8058): public, the token is the only
// credential. A GET only shows a page, since link scanners fetch URLs; the
// POST withdraws consent.
