package core

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/templates"
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

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func (a *api) postSend(w http.ResponseWriter, r *http.Request) (int, any, error) {
	key := r.Header.Get("Idempotency-Key")
	if !validIdemKey(key) {
		return 0, nil, dispatcher.Invalid("Idempotency-Key", "header is required: 1-%d printable ASCII characters", maxIdemKeyLen)
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
	fp, _ := json.Marshal(in)
	rec := idemRecord{Fingerprint: sha256hex(string(fp))}
	ctx := r.Context()
	idemKey := a.d.Store.Key("idem", sha256hex(key))

	// Reserve the key, or find what happened to it.
	pending, _ := json.Marshal(rec)
	for attempt := 0; ; attempt++ {
		ok, err := a.d.Store.Redis.SetNX(ctx, idemKey, pending, idemPendingTTL).Result()
		if err != nil {
			return 0, nil, err
		}
		if ok {
			break
		}
		b, err := a.d.Store.Redis.Get(ctx, idemKey).Bytes()
		if errors.Is(err, redis.Nil) && attempt < 3 {
			continue // expired or released meanwhile
		}
		if err != nil {
			return 0, nil, err
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

	ans, err := a.d.sendOne(ctx, key, in)
	if err != nil {
		// Nothing to replay: release the key so that a retry runs again
		// (and finds the send, if it was decided).
		a.d.Store.Redis.Del(context.WithoutCancel(ctx), idemKey)
		return 0, nil, err
	}
	body, err := json.Marshal(ans)
	if err != nil {
		return 0, nil, err
	}
	rec.Done, rec.Status, rec.Body = true, http.StatusAccepted, body
	done, _ := json.Marshal(rec)
	if err := a.d.Store.Redis.Set(context.WithoutCancel(ctx), idemKey, done, idemTTL).Err(); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, json.RawMessage(body), nil
}

// sendOne decides the API send that key names and enqueues it when it may
// go. A retry after a failure finds the decided send and enqueues it again.
func (d *Dispatcher) sendOne(ctx context.Context, key string, in sendRequest) (*SendAnswer, error) {
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
	if d.cfg.Channels[in.Channel] == nil {
		return nil, dispatcher.Invalid("channel", "no %s channel is configured", in.Channel)
	}
	sd, err := d.Pipeline.DecideOne(ctx, pipeline.OneSend{Campaign: dispatcher.APICampaign, Key: "idem:" + sha256hex(key)[:16],
		Contact: c, Topic: topic, Tpl: tpl, Channel: in.Channel})
	if err != nil {
		return nil, err
	}
	return &SendAnswer{Send: sd.ID, State: sd.State, Reason: sd.Reason, Until: sd.Until}, nil
}

func (a *api) getSend(w http.ResponseWriter, r *http.Request) (int, any, error) {
	s, err := a.d.Store.Send(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s, nil
}

// --- one-click unsubscribe (RFC 8058): public, the token is the only
// credential. A GET only shows a page, since link scanners fetch URLs; the
// POST withdraws consent.

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.TitleFR}} / {{.TitleEN}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#222}
button{font:inherit;font-size:1rem;font-weight:600;padding:.6rem 1.2rem;border-radius:.3rem;border:1px solid #333;background:#333;color:#fff;cursor:pointer}
hr{border:0;border-top:1px solid #ddd;margin:1.5rem 0}</style>
</head>
<body>
<h1>{{.TitleFR}}</h1>
<p>{{.TextFR}}</p>
<hr>
<h1 lang="en">{{.TitleEN}}</h1>
<p lang="en">{{.TextEN}}</p>
{{if .Action}}<form method="post" action="{{.Action}}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Me désabonner / Unsubscribe</button>
</form>{{end}}
</body>
</html>
`))

type page struct {
	TitleFR, TextFR, TitleEN, TextEN string
	Action                           string
}

func writePage(w http.ResponseWriter, status int, p page) {
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, p); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("internal error\n")
	}
	pageHeaders(w, false)
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

var invalidLinkPage = page{
	TitleFR: "Lien non valide", TextFR: "Ce lien de désabonnement n'est pas valide. Utilisez le lien complet reçu dans le message.",
	TitleEN: "Invalid link", TextEN: "This unsubscribe link is not valid. Please use the full link from the message.",
}

var errorPage = page{
	TitleFR: "Erreur temporaire", TextFR: "Votre demande n'a pas pu être enregistrée. Réessayez dans quelques minutes.",
	TitleEN: "Temporary error", TextEN: "Your request could not be recorded. Please try again in a few minutes.",
}

// verifyToken checks a token and its claims.
func (a *api) verifyToken(token string) (templates.Claims, bool) {
	cl, err := a.d.signer.Verify(token)
	if err != nil || !channels.Kind(cl.Channel).Valid() || !dispatcher.NamePattern.MatchString(cl.Topic) || !dispatcher.ValidID(cl.Contact) {
		return templates.Claims{}, false
	}
	return cl, true
}

func (a *api) topicName(ctx context.Context, id string) string {
	if t, err := a.d.Store.Topic(ctx, id); err == nil {
		return t.Name
	}
	return id
}

func channelWords(k string) (fr, en string) {
	if k == string(channels.SMS) {
		return "SMS", "text messages"
	}
	return "e-mails", "emails"
}

func (a *api) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	cl, ok := a.verifyToken(token)
	if !ok {
		writePage(w, http.StatusBadRequest, invalidLinkPage)
		return
	}
	name := a.topicName(r.Context(), cl.Topic)
	fr, en := channelWords(cl.Channel)
	writePage(w, http.StatusOK, page{
		TitleFR: "Se désabonner", TextFR: "Confirmez pour ne plus recevoir de " + fr + " « " + name + " ».",
		TitleEN: "Unsubscribe", TextEN: "Confirm to stop receiving “" + name + "” " + en + ".",
		Action: "/u/" + token,
	})
}

func (a *api) unsubscribeOneClick(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	err := r.ParseMultipartForm(maxFormBody)
	if err != nil && !errors.Is(err, http.ErrNotMultipart) {
		writePage(w, http.StatusBadRequest, invalidLinkPage)
		return
	}
	cl, ok := a.verifyToken(r.PathValue("token"))
	if !ok || r.PostFormValue("List-Unsubscribe") != "One-Click" {
		writePage(w, http.StatusBadRequest, invalidLinkPage)
		return
	}
	ctx := r.Context()
	if err := a.d.consent.WithdrawOneClick(ctx, cl); err != nil {
		a.d.log.Error("one-click unsubscribe failed", "route", r.Pattern, "error", err)
		writePage(w, http.StatusServiceUnavailable, errorPage)
		return
	}
	name := a.topicName(ctx, cl.Topic)
	fr, en := channelWords(cl.Channel)
	writePage(w, http.StatusOK, page{
		TitleFR: "Désabonnement confirmé", TextFR: "Vous ne recevrez plus de " + fr + " « " + name + " ».",
		TitleEN: "You are unsubscribed", TextEN: "You will no longer receive “" + name + "” " + en + ".",
	})
}
