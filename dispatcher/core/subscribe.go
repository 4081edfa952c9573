package core

// Sign-up with double opt-in: a public, unauthenticated form that bots
// attack. Nothing is granted until the person confirms from the address
// they gave: by the link of the confirmation email, or by replying YES to
// the confirmation SMS (ConfirmSMSOptIn, called by the Twilio inbound
// webhook).
//
// What the request leaves behind until then is a pending record,
// P:pending:<sha256 of the token>, kept 48 hours; the consent ledger gets
// its Granted events, with the evidence, only at confirmation.
//
// The answer to POST /subscribe is the same, in status, body and time,
// whether the address is known, unknown, already subscribed, suppressed
// or over its own limit, so that the form cannot be used to find out who
// is on the list.
//
// Delivery of the confirmation. The confirmation is a send like any
// other, through the one send path (sendConfirmation): the gate (a
// suppressed address gets nothing; quiet hours do not hold back a message
// the person has just asked for), a send record in a run of the
// "signup" pseudo-campaign, the queue, the claim before the provider call
// and its one policy for ambiguous outcomes, the provider's rate limit,
// feedback on a refusal. Its text, with the link, is rendered at send time
// from the pending record (confirmationData): the send record names the
// pending sign-up by h, the queue holds ids only, and the token is
// HMAC(key, nonce), so neither the queue nor Redis holds anything that
// opens the link.
//
// Redis keys (P is the prefix):
//
//	P:pending:<h>          pending sign-up (JSON), 48 h; h = sha256(token)
//	P:c:{id}:pending       set of the h of the contact's pending sign-ups (erasure), 48 h
//	P:pendingsms:<hash>    h of the newest pending SMS sign-up of a number, 48 h
//	P:signupdone:<h>       the sign-up was confirmed (so a second POST says so), 48 h
//	P:c:{id}:signups       hash h -> confirmation time: grants happen once, 48 h

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/page"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle"
)

const (
	// ConfirmationTopic is the transactional topic of confirmation
	// messages; it is created on first use.
	ConfirmationTopic = "subscription-confirmation"

	pendingTTL       = 48 * time.Hour
	maxSubscribeBody = 16 << 10
	maxSignupTopics  = 20
	maxUserAgent     = 200
	// subscribeFloor is the least time an accepted sign-up takes to
	// answer, so that the work done for a known, unknown or suppressed
	// address does not show in the response time.
	subscribeFloor = 250 * time.Millisecond
)

var (
	// subscribeClientRate limits sign-ups per client IP.
	subscribeClientRate = throttle.Rate{Count: 5, Per: time.Minute, Burst: 5}
	// subscribeAddressRate limits confirmations sent to one address, so
	// that the form cannot be used to bomb someone's inbox.
	subscribeAddressRate = throttle.Rate{Count: 3, Per: time.Hour, Burst: 3}

	wordingPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// pendingSignup is what a sign-up leaves until it is confirmed.
type pendingSignup struct {
	// Nonce makes the confirmation token again when the confirmation is
	// rendered (signupToken): the token itself is never stored, and the
	// nonce alone does not make it without the secret.
	Nonce     string        `json:"nonce"`
	Contact   string        `json:"contact"`
	Channel   channels.Kind `json:"channel"`
	Topics    []string      `json:"topics"`
	Wording   string        `json:"wording"`
	Form      string        `json:"form,omitempty"`
	Locale    string        `json:"locale"`
	Created   time.Time     `json:"created"`
	IPHash    string        `json:"ip_hash"`
	UserAgent string        `json:"user_agent,omitempty"`
}

// signupInput is a parsed and validated sign-up request.
type signupInput struct {
	Topics  []string
	Channel channels.Kind
	Address string // normalised; never logged or echoed
	Locale  string
	Wording string
	Form    string
}

// --- routes

// mountSubscribe adds the public sign-up (double opt-in) routes.
func (a *api) mountSubscribe() {
	a.mux.HandleFunc("GET /subscribe/form", a.subscribeForm)
	a.mux.HandleFunc("POST /subscribe", a.subscribe)
	a.mux.HandleFunc("GET /subscribe/confirm/{token}", a.confirmSignupPage)
	a.mux.HandleFunc("POST /subscribe/confirm/{token}", a.confirmSignup)
}

// subscribe handles POST /subscribe.
func (a *api) subscribe(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
	d := a.d
	html := wantsHTML(r)
	ipHash := d.clientIPHash(r)

	allowed, retryIn, err := d.limiter.TakeRate(ctx, "subscribe:ip:"+ipHash, subscribeClientRate, 1)
	if err != nil {
		d.log.Error("sign-up: rate limit", "error", err)
		a.subscribeFailed(w, r, html, "")
		return
	}
	if allowed == 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryIn+time.Second-1)/time.Second)))
		if html {
			page.Message(w, http.StatusTooManyRequests, pageLang(r, ""), page.TooManyRequests)
			return
		}
		writeJSON(w, http.StatusTooManyRequests, map[string]*dispatcher.Error{"error": {Code: "rate_limited",
			Message: "too many sign-ups from this client; retry after the Retry-After delay"}})
		return
	}

	in, err := readSignup(w, r)
	if err == nil {
		err = d.checkSignupTopics(ctx, in.Topics)
	}
	if err != nil {
		status, e := dispatcher.HTTPStatus(err)
		if status == http.StatusInternalServerError {
			d.log.Error("sign-up: topics", "error", err)
			a.subscribeFailed(w, r, html, in.Locale)
			return
		}
		if html {
			a.rerenderForm(w, r, status, in, e)
			return
		}
		writeJSON(w, status, map[string]*dispatcher.Error{"error": e})
		return
	}

	if err := d.signup(ctx, in, ipHash, r.UserAgent()); err != nil {
		d.log.Error("sign-up failed", "error", err)
		a.subscribeFailed(w, r, html, in.Locale)
		return
	}
	// The same time for every address: wait out the floor.
	select {
	case <-time.After(time.Until(start.Add(subscribeFloor))):
	case <-ctx.Done():
		return
	}
	if html {
		answer := page.CheckInbox
		if in.Channel == channels.SMS {
			answer = page.CheckPhone
		}
		page.EmbeddedMessage(w, http.StatusAccepted, page.Lang(in.Locale), answer)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "pending",
		"message": "If the address can receive our messages, a confirmation request was sent to it. Nothing is subscribed until it is confirmed."})
}

// subscribeFailed answers a sign-up that could not be recorded; locale is
// the sign-up's, "" when it was not read.
func (a *api) subscribeFailed(w http.ResponseWriter, r *http.Request, html bool, locale string) {
	if html {
		page.Message(w, http.StatusServiceUnavailable, pageLang(r, locale), page.TemporaryError)
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, map[string]*dispatcher.Error{"error": {Code: dispatcher.CodeInternal,
		Message: "the sign-up could not be recorded; retry in a few minutes"}})
}

// wantsHTML reports whether the client is a browser posting a form: it
// gets pages, others get JSON.
func wantsHTML(r *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return ct == "application/x-www-form-urlencoded" && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// clientIPHash is the keyed hash of the client's IP, as limits and
// evidence keep it. The IP is the connection's peer: X-Forwarded-For is
// not trusted, since no configuration says which proxy may set it.
func (d *Dispatcher) clientIPHash(r *http.Request) string {
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	m := hmac.New(sha256.New, storepkg.DeriveKey(d.cfg.Secret, "client-ip"))
	m.Write([]byte(ip))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// --- parsing

type signupJSON struct {
	Topics  json.RawMessage `json:"topics"`
	Email   string          `json:"email"`
	Phone   string          `json:"phone"`
	Locale  string          `json:"locale"`
	Wording string          `json:"wording"`
	Form    string          `json:"form"`
}

// readSignup reads and validates a sign-up request body (a form or JSON,
// maxSubscribeBody bytes at most). Errors are *Error values naming the
// field; none echoes a value. The input is returned even on error, with
// the fields that could be read, for re-rendering a form.
func readSignup(w http.ResponseWriter, r *http.Request) (*signupInput, error) {
	in := &signupInput{}
	r.Body = http.MaxBytesReader(w, r.Body, maxSubscribeBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var topics []string
	var email, phone, locale string
	switch ct {
	case "application/json":
		var j signupJSON
		if err := decodeJSON(w, r, &j); err != nil {
			return in, err
		}
		if len(j.Topics) > 0 && string(j.Topics) != "null" {
			var one string
			if err := json.Unmarshal(j.Topics, &topics); err != nil {
				if err := json.Unmarshal(j.Topics, &one); err != nil {
					return in, dispatcher.Invalid("topics", "must be a list of topic ids or a comma-separated string")
				}
				topics = []string{one}
			}
		}
		email, phone, locale, in.Wording, in.Form = j.Email, j.Phone, j.Locale, j.Wording, j.Form
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			var mb *http.MaxBytesError
			if errors.As(err, &mb) {
				return in, &dispatcher.Error{Code: dispatcher.CodeTooLarge, Field: "body", Message: fmt.Sprintf("is larger than %d bytes", mb.Limit)}
			}
			return in, dispatcher.Invalid("body", "is not a valid form")
		}
		f := r.PostForm
		for _, name := range []string{"email", "phone", "locale", "wording", "form"} {
			if len(f[name]) > 1 {
				return in, dispatcher.Invalid(name, "is given more than once")
			}
		}
		topics = f["topics"]
		email, phone, locale, in.Wording, in.Form = f.Get("email"), f.Get("phone"), f.Get("locale"), f.Get("wording"), f.Get("form")
	default:
		return in, dispatcher.Invalid("Content-Type", "must be application/x-www-form-urlencoded or application/json")
	}

	// Locale first: a re-rendered form speaks it even when the rest fails.
	in.Locale = string(page.Negotiate(locale, "", r.Header.Get("Accept-Language")))
	if _, ok := page.ParseLang(locale); !ok && strings.TrimSpace(locale) != "" {
		return in, dispatcher.Invalid("locale", "must be fr or en")
	}
	if in.Form != "" && !wordingPattern.MatchString(in.Form) {
		in.Form = ""
		return in, dispatcher.Invalid("form", "must be 1-64 letters, digits, . _ -")
	}
	if !wordingPattern.MatchString(in.Wording) {
		in.Wording = ""
		return in, dispatcher.Invalid("wording", "is required: the version id of the consent text shown, 1-64 letters, digits, . _ -")
	}
	for _, t := range topics {
		for _, id := range strings.Split(t, ",") {
			id = strings.TrimSpace(id)
			if id == "" {
				continue
			}
			if !dispatcher.NamePattern.MatchString(id) {
				return in, dispatcher.Invalid("topics", "must be topic ids (lower case letters, digits, _ . -)")
			}
			if !slices.Contains(in.Topics, id) {
				in.Topics = append(in.Topics, id)
			}
			if len(in.Topics) > maxSignupTopics {
				return in, dispatcher.Invalid("topics", "at most %d topics", maxSignupTopics)
			}
		}
	}
	if len(in.Topics) == 0 {
		return in, dispatcher.Invalid("topics", "choose at least one topic")
	}
	email, phone = strings.TrimSpace(email), strings.TrimSpace(phone)
	switch {
	case email != "" && phone != "":
		return in, dispatcher.Invalid("email", "give an email address or a phone number, not both")
	case email != "":
		e, err := dispatcher.NormalizeEmail(email)
		if err != nil {
			return in, dispatcher.Invalid("email", "is not a valid email address")
		}
		in.Channel, in.Address = channels.Email, e
	case phone != "":
		p, err := dispatcher.NormalizePhone(phone)
		if err != nil {
			return in, dispatcher.Invalid("phone", "is not a valid phone number in international form (+33612345678)")
		}
		if !dispatcher.SMSCapable(p) {
			return in, dispatcher.Invalid("phone", "cannot receive text messages")
		}
		in.Channel, in.Address = channels.SMS, p
	default:
		return in, dispatcher.Invalid("email", "is required (or give a phone number)")
	}
	return in, nil
}

// checkSignupTopics returns an error naming "topics" unless every id names
// a marketing topic: transactional topics need no sign-up.
func (d *Dispatcher) checkSignupTopics(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return dispatcher.Invalid("topics", "choose at least one topic")
	}
	raw, err := d.Store.Redis.HMGet(ctx, d.Store.Key("topics"), ids...).Result()
	if err != nil {
		return err
	}
	for _, v := range raw {
		s, ok := v.(string)
		var t dispatcher.Topic
		if !ok || json.Unmarshal([]byte(s), &t) != nil || t.Kind != dispatcher.Marketing {
			return dispatcher.Invalid("topics", "must name marketing topics open to sign-up")
		}
	}
	return nil
}

// --- recording a sign-up

// signupToken derives the confirmation token of a sign-up from its nonce.
func (d *Dispatcher) signupToken(nonce string) string {
	m := hmac.New(sha256.New, storepkg.DeriveKey(d.cfg.Secret, "signup-token"))
	m.Write([]byte(nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validSignupToken reports whether s has the shape of a token: 32 bytes in
// unpadded URL-safe base64.
func validSignupToken(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(32) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

// signup records a pending sign-up and enqueues its confirmation. It does
// nothing, silently, when the address is suppressed or has had its share
// of confirmations: the caller answers the same in every case.
func (d *Dispatcher) signup(ctx context.Context, in *signupInput, ipHash, userAgent string) error {
	s := d.Store
	addrHash := s.AddressHash(in.Channel, in.Address)
	allowed, _, err := d.limiter.TakeRate(ctx, "subscribe:addr:"+addrHash, subscribeAddressRate, 1)
	if err != nil {
		return err
	}
	if allowed == 0 {
		d.log.Info("sign-up: address over its limit; nothing sent", "channel", string(in.Channel))
		return nil
	}
	if _, err := s.Suppression(ctx, in.Channel, in.Address); err == nil {
		d.log.Info("sign-up: address suppressed; nothing sent", "channel", string(in.Channel))
		return nil
	} else if !errors.Is(err, dispatcher.ErrNotFound) {
		return err
	}
	contact, err := d.signupContact(ctx, in)
	if err != nil {
		return err
	}
	nonce := randomHex(16)
	h := sha256hex(d.signupToken(nonce))
	rec, err := json.Marshal(pendingSignup{
		Nonce: nonce, Contact: contact, Channel: in.Channel, Topics: in.Topics, Wording: in.Wording, Form: in.Form,
		Locale: in.Locale, Created: d.cfg.Now().UTC(), IPHash: ipHash, UserAgent: cleanUserAgent(userAgent),
	})
	if err != nil {
		return err
	}
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.PendingKey(h), rec, pendingTTL)
		p.SAdd(ctx, s.PendingIndexKey(contact), h)
		p.Expire(ctx, s.PendingIndexKey(contact), pendingTTL)
		if in.Channel == channels.SMS {
			p.Set(ctx, s.Key("pendingsms", addrHash), h, pendingTTL)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return d.sendConfirmation(ctx, h, contact, in.Channel)
}

// sendConfirmation decides the confirmation message of the pending sign-up
// h and queues it. It goes the way every send goes (the gate, a send
// record, the one send path with its claim and its policy for ambiguous
// outcomes), as a transactional message the recipient has just asked for:
// quiet hours do not hold it back. Its text is rendered at send time from
// the pending record (confirmationData).
func (d *Dispatcher) sendConfirmation(ctx context.Context, h, contact string, k channels.Kind) error {
	c, err := d.Store.Contact(ctx, contact)
	if err != nil {
		return err
	}
	topic, err := d.ensureConfirmationTopic(ctx)
	if err != nil {
		return err
	}
	_, err = d.Pipeline.DecideOne(ctx, pipeline.OneSend{Campaign: dispatcher.SignupCampaign, Key: "signup:" + h[:32], Contact: c,
		Topic: topic, Tpl: &confirmationSource, Channel: k, Ref: h, Requested: true})
	return err
}

// signupContact finds the contact holding the address, or creates a
// minimal one: the address and the locale, nothing else. The address
// index is claimed first (SETNX), so two sign-ups at once create one
// contact.
func (d *Dispatcher) signupContact(ctx context.Context, in *signupInput) (string, error) {
	s := d.Store
	id := "s-" + randomHex(8)
	idx := s.Key("addr", s.AddressHash(in.Channel, in.Address))
	ok, err := s.Redis.SetNX(ctx, idx, id, 0).Result()
	if err != nil {
		return "", err
	}
	if !ok {
		if id, err = s.Redis.Get(ctx, idx).Result(); err != nil {
			return "", err
		}
		n, err := s.Redis.Exists(ctx, s.ContactKey(id)).Result()
		if err != nil || n == 1 {
			return id, err
		}
		// An index left by a creation that died half way: finish it.
	}
	c := &dispatcher.Contact{ID: id, Locale: in.Locale}
	if in.Channel == channels.Email {
		c.Email = in.Address
	} else {
		c.Phone = in.Address
	}
	if err := s.UpsertContact(ctx, c, d.cfg.DefaultTimezone); err != nil {
		return "", fmt.Errorf("sign-up: create contact: %w", err)
	}
	return id, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cleanUserAgent keeps the first maxUserAgent bytes of a user agent,
// without control characters and on a rune boundary.
func cleanUserAgent(ua string) string {
	ua = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, ua)
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
		for !utf8.ValidString(ua) {
			ua = ua[:len(ua)-1]
		}
	}
	return ua
}

// --- delivering the confirmation

// ensureConfirmationTopic creates the transactional topic of confirmation
// messages unless it exists (a marketer may rename it).
func (d *Dispatcher) ensureConfirmationTopic(ctx context.Context) (*dispatcher.Topic, error) {
	t := &dispatcher.Topic{ID: ConfirmationTopic, Name: "Subscription confirmation", Kind: dispatcher.Transactional,
		Description: "Double opt-in: asks a person who signed up to confirm."}
	b, _ := json.Marshal(t)
	if err := d.Store.Redis.HSetNX(ctx, d.Store.Key("topics"), t.ID, b).Err(); err != nil {
		return nil, err
	}
	return d.Store.Topic(ctx, ConfirmationTopic)
}

// confirmationTemplate is the built-in bilingual confirmation message. The
// link and the topic names come through the template data (Attr), filled
// for this message only: nothing is written to the contact.
var confirmationSource = templates.Template{ID: "subscription-confirmation", Version: 1,
	Email: &templates.Email{
		Subject: `Confirmez votre inscription / Confirm your subscription – {{.Attr.sender}}`,
		HTML: `<div lang="fr"><p>Bonjour,</p>
<p>Vous avez demandé à recevoir par e-mail « {{.Attr.topics}} » de {{.Attr.sender}}. Pour confirmer, ouvrez ce lien puis cliquez sur le bouton « Confirmer » :</p>
<p><a href="{{.Attr.confirm_url}}">Confirmer mon inscription</a></p>
<p>Ce lien est valable 48 heures. Si vous n'êtes pas à l'origine de cette demande, ignorez ce message : rien ne sera enregistré.</p></div>
<hr>
<div lang="en"><p>Hello,</p>
<p>You asked to receive “{{.Attr.topics}}” emails from {{.Attr.sender}}. To confirm, open this link and press “Confirm”:</p>
<p><a href="{{.Attr.confirm_url}}">Confirm my subscription</a></p>
<p>The link is valid for 48 hours. If you did not ask for this, ignore this message: nothing will be recorded.</p></div>`,
		Text: `Bonjour,

Vous avez demandé à recevoir par e-mail « {{.Attr.topics}} » de {{.Attr.sender}}. Pour confirmer, ouvrez ce lien puis cliquez sur « Confirmer » :

{{.Attr.confirm_url}}

Ce lien est valable 48 heures. Si vous n'êtes pas à l'origine de cette demande, ignorez ce message : rien ne sera enregistré.

---

Hello,

You asked to receive "{{.Attr.topics}}" emails from {{.Attr.sender}}. To confirm, open this link and press "Confirm":

{{.Attr.confirm_url}}

The link is valid for 48 hours. If you did not ask for this, ignore this message: nothing will be recorded.
`,
	},
	SMS: &templates.SMS{Body: `{{.Attr.sender}}: répondez YES pour confirmer votre inscription ({{.Attr.topics}}). Reply YES to confirm your subscription. Sinon/otherwise ignore.`},
}

// confirmationData gives the template data of the confirmation of the
// pending sign-up h: the link with its token, the topics' names, the
// sender, in the locale of the sign-up. It returns errNothingToSend when
// the sign-up is gone (confirmed, expired or erased meanwhile).
func (d *Dispatcher) confirmationData(ctx context.Context, h string) (attr map[string]string, locale string, err error) {
	ps, err := d.pendingSignup(ctx, h)
	if err != nil {
		return nil, "", err
	}
	if ps == nil || ps.Nonce == "" {
		return nil, "", pipeline.ErrNothingToSend
	}
	names := make([]string, len(ps.Topics))
	for i, id := range ps.Topics {
		names[i] = id
		if t, err := d.Store.Topic(ctx, id); err == nil {
			names[i] = t.Name
		}
	}
	return map[string]string{
		"confirm_url": d.cfg.PublicURL + "/subscribe/confirm/" + d.signupToken(ps.Nonce),
		"topics":      strings.Join(names, ", "),
		"sender":      d.cfg.SenderName,
	}, ps.Locale, nil
}

// --- confirming

func (d *Dispatcher) pendingSignup(ctx context.Context, h string) (*pendingSignup, error) {
	b, err := d.Store.Redis.Get(ctx, d.Store.PendingKey(h)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ps pendingSignup
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, fmt.Errorf("decode pending sign-up: %w", err)
	}
	return &ps, nil
}

type confirmOutcome int

const (
	confirmUnknown confirmOutcome = iota // expired, unknown or for another channel
	confirmGranted
	confirmAlready
)

// confirmSignup grants the topics of the pending sign-up h, once: the
// ledger events and a marker in the contact's signups hash are written in
// one transaction watched on that hash, so two confirmations at once grant
// once. The pending record is deleted afterwards; a marker keeps telling
// that it was confirmed.
func (d *Dispatcher) confirmSignup(ctx context.Context, h string, k channels.Kind, via string, extra map[string]string) (confirmOutcome, *pendingSignup, error) {
	s := d.Store
	ps, err := d.pendingSignup(ctx, h)
	if err != nil {
		return confirmUnknown, nil, err
	}
	if ps == nil {
		n, err := s.Redis.Exists(ctx, s.Key("signupdone", h)).Result()
		if err != nil || n == 0 {
			return confirmUnknown, nil, err
		}
		return confirmAlready, nil, nil
	}
	if ps.Channel != k {
		return confirmUnknown, nil, nil
	}
	now := d.cfg.Now().UTC()
	ev := map[string]string{
		"wording":       ps.Wording,
		"ip_hash":       ps.IPHash,
		"confirmed_via": via,
		"requested_at":  ps.Created.Format(time.RFC3339),
	}
	if ps.Form != "" {
		ev["form"] = ps.Form
	}
	if ps.UserAgent != "" {
		ev["user_agent"] = ps.UserAgent
	}
	for key, v := range extra {
		ev[key] = v
	}
	events := make([]dispatcher.ConsentEvent, len(ps.Topics))
	for i, t := range ps.Topics {
		events[i] = dispatcher.ConsentEvent{Channel: ps.Channel, Topic: t, State: dispatcher.Granted, Source: "signup", Evidence: ev, At: now}
		if err := events[i].Validate(); err != nil {
			return confirmUnknown, nil, err
		}
	}
	outcome := confirmUnknown
	signups := s.SignupsKey(ps.Contact)
	txn := func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, s.ContactKey(ps.Contact)).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			outcome = confirmUnknown // erased meanwhile: nothing to grant
			return nil
		}
		done, err := tx.HExists(ctx, signups, h).Result()
		if err != nil {
			return err
		}
		if done {
			outcome = confirmAlready
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, e := range events {
				s.WriteConsent(ctx, p, ps.Contact, e)
			}
			p.HSet(ctx, signups, h, now.Format(time.RFC3339))
			p.Expire(ctx, signups, pendingTTL)
			return nil
		})
		if err == nil {
			outcome = confirmGranted
		}
		return err
	}
	for attempt := 0; ; attempt++ {
		err = s.Redis.Watch(ctx, txn, s.ContactKey(ps.Contact), signups)
		if !errors.Is(err, redis.TxFailedErr) {
			break
		}
		if attempt == 4 {
			return confirmUnknown, nil, errors.New("sign-up confirm: kept conflicting")
		}
	}
	if err != nil {
		return confirmUnknown, nil, err
	}
	bg := context.WithoutCancel(ctx)
	if outcome == confirmGranted {
		for _, t := range ps.Topics {
			if err := s.CountFeedback(bg, "", t, storepkg.FeedbackConfirmations); err != nil {
				d.log.Warn("sign-up: count confirmation", "error", err)
			}
		}
		d.log.Info("sign-up confirmed", "contact", ps.Contact, "channel", string(ps.Channel), "topics", len(ps.Topics), "via", via)
	}
	if outcome != confirmUnknown {
		_, err = s.Redis.Pipelined(bg, func(p redis.Pipeliner) error {
			p.Set(bg, s.Key("signupdone", h), 1, pendingTTL)
			p.Del(bg, s.PendingKey(h))
			return nil
		})
	} else {
		err = s.Redis.Del(bg, s.PendingKey(h)).Err()
	}
	return outcome, ps, err
}

// ConfirmSMSOptIn confirms the newest pending SMS sign-up of phone (any
// form NormalizePhone accepts), as the Twilio inbound webhook does when
// the number replies YES (or another opt-in keyword). messageSID, the SID
// of the reply, is kept in the ledger evidence with confirmed_via
// "sms-yes".
//
// It returns true when topics were granted; false and a nil error when the
// number has no pending sign-up (none, expired, already confirmed, or not
// a valid number): the webhook then handles the keyword as it would
// without a sign-up. Errors are Redis errors; none names the number.
func (d *Dispatcher) ConfirmSMSOptIn(ctx context.Context, phone, messageSID string) (confirmed bool, err error) {
	p, err := dispatcher.NormalizePhone(phone)
	if err != nil {
		return false, nil
	}
	s := d.Store
	idx := s.Key("pendingsms", s.AddressHash(channels.SMS, p))
	h, err := s.Redis.Get(ctx, idx).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sms opt-in: %w", err)
	}
	var extra map[string]string
	if messageSID != "" {
		extra = map[string]string{"message_sid": dispatcher.Truncate(messageSID, 64)}
	}
	outcome, _, err := d.confirmSignup(ctx, h, channels.SMS, "sms-yes", extra)
	if err != nil {
		return false, fmt.Errorf("sms opt-in: %w", err)
	}
	// Only this sign-up's index: a newer one may have replaced it.
	s.Redis.Eval(context.WithoutCancel(ctx), `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`, []string{idx}, h)
	return outcome == confirmGranted, nil
}

// --- confirmation pages. A GET only shows a button (link scanners fetch
// URLs); the POST confirms.

func (a *api) confirmSignupPage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	var ps *pendingSignup
	var err error
	if validSignupToken(token) {
		ps, err = a.d.pendingSignup(r.Context(), sha256hex(token))
	}
	if err != nil {
		a.d.log.Error("sign-up: confirm page", "error", err)
		page.Message(w, http.StatusServiceUnavailable, pageLang(r, ""), page.TemporaryError)
		return
	}
	if ps == nil || ps.Channel != channels.Email {
		page.Message(w, http.StatusNotFound, pageLang(r, ""), page.ExpiredSignupLink)
		return
	}
	page.Confirm(w, page.ConfirmView{Lang: pageLang(r, ps.Locale), Topics: a.topicNames(r.Context(), ps.Topics),
		Action: "/subscribe/confirm/" + token})
}

func (a *api) confirmSignup(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxSubscribeBody)
	r.ParseForm()
	token := r.PathValue("token")
	if !validSignupToken(token) {
		page.Message(w, http.StatusNotFound, pageLang(r, ""), page.ExpiredSignupLink)
		return
	}
	outcome, ps, err := a.d.confirmSignup(r.Context(), sha256hex(token), channels.Email, "email-link", nil)
	if err != nil {
		a.d.log.Error("sign-up: confirm", "error", err)
		page.Message(w, http.StatusServiceUnavailable, pageLang(r, ""), page.TemporaryError)
		return
	}
	switch outcome {
	case confirmGranted:
		names := strings.Join(a.topicNames(r.Context(), ps.Topics), ", ")
		page.Message(w, http.StatusOK, pageLang(r, ps.Locale), page.SignupConfirmed, names)
	case confirmAlready:
		page.Message(w, http.StatusOK, pageLang(r, ""), page.AlreadyConfirmed)
	default:
		page.Message(w, http.StatusNotFound, pageLang(r, ""), page.ExpiredSignupLink)
	}
}

func (a *api) topicNames(ctx context.Context, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = a.topicName(ctx, id)
	}
	return out
}

// --- the form

// subscribeForm serves GET /subscribe/form?topics=a,b&locale=fr&channel=email&form=id:
// a form without script, made to be embedded in the site's pages.
// Several topics are offered as unchecked boxes (consent is an act, never
// a default); a single one is named above the button.
func (a *api) subscribeForm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lang := page.Negotiate(q.Get("locale"), "", r.Header.Get("Accept-Language"))
	var ids []string
	for _, t := range q["topics"] {
		for _, id := range strings.Split(t, ",") {
			if id = strings.TrimSpace(id); id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	form := q.Get("form")
	if form != "" && !wordingPattern.MatchString(form) {
		form = ""
	}
	k := channels.Email
	if q.Get("channel") == string(channels.SMS) {
		k = channels.SMS
	}
	v, err := a.formView(r.Context(), lang, ids, k, form)
	if err != nil {
		if st, _ := dispatcher.HTTPStatus(err); st == http.StatusInternalServerError {
			a.d.log.Error("sign-up: form", "error", err)
			page.EmbeddedMessage(w, http.StatusServiceUnavailable, lang, page.TemporaryError)
			return
		}
		page.EmbeddedMessage(w, http.StatusNotFound, lang, page.FormUnavailable)
		return
	}
	page.SignupForm(w, http.StatusOK, v)
}

// formView builds the form for marketing topics ids; an error with code
// invalid when one of them is not a marketing topic.
func (a *api) formView(ctx context.Context, lang page.Lang, ids []string, k channels.Kind, form string) (page.FormView, error) {
	if len(ids) == 0 || len(ids) > maxSignupTopics {
		return page.FormView{}, dispatcher.Invalid("topics", "name 1-%d marketing topics", maxSignupTopics)
	}
	for _, id := range ids {
		if !dispatcher.NamePattern.MatchString(id) {
			return page.FormView{}, dispatcher.Invalid("topics", "must be topic ids")
		}
	}
	if err := a.d.checkSignupTopics(ctx, ids); err != nil {
		return page.FormView{}, err
	}
	v := page.FormView{Lang: lang, Sender: a.d.cfg.SenderName, Channel: k, Form: form}
	for _, id := range ids {
		t, err := a.d.Store.Topic(ctx, id)
		if err != nil {
			return page.FormView{}, err
		}
		v.Topics = append(v.Topics, page.FormTopic{ID: t.ID, Name: t.Name, Description: t.Description})
	}
	return v, nil
}

// rerenderForm answers a browser's invalid sign-up with the form and the
// problem, in the request's locale. The address is never put back.
func (a *api) rerenderForm(w http.ResponseWriter, r *http.Request, status int, in *signupInput, e *dispatcher.Error) {
	lang := page.Negotiate(in.Locale, "", r.Header.Get("Accept-Language"))
	k := channels.Email
	if in.Channel == channels.SMS || (in.Channel == "" && r.PostForm.Get("phone") != "" && r.PostForm.Get("email") == "") {
		k = channels.SMS
	}
	// Offer the topics that were asked and exist; without any, a plain page.
	var ids []string
	for _, id := range in.Topics {
		if a.d.checkSignupTopics(r.Context(), []string{id}) == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		for _, t := range r.PostForm["topics"] {
			for _, id := range strings.Split(t, ",") {
				id = strings.TrimSpace(id)
				if dispatcher.NamePattern.MatchString(id) && !slices.Contains(ids, id) && len(ids) < maxSignupTopics &&
					a.d.checkSignupTopics(r.Context(), []string{id}) == nil {
					ids = append(ids, id)
				}
			}
		}
	}
	problem := signupProblem(e)
	v, err := a.formView(r.Context(), lang, ids, k, in.Form)
	if err != nil {
		page.EmbeddedMessage(w, status, lang, page.SignupFailed, problem)
		return
	}
	for i := range v.Topics {
		v.Topics[i].Checked = len(v.Topics) > 1 && slices.Contains(in.Topics, v.Topics[i].ID)
	}
	v.Error = problem
	page.SignupForm(w, status, v)
}

// signupProblem is what the form tells a person about e, an error of
// readSignup or checkSignupTopics.
func signupProblem(e *dispatcher.Error) page.Problem {
	switch e.Field {
	case "email":
		if strings.Contains(e.Message, "not both") {
			return page.EmailAndPhone
		}
		return page.BadEmail
	case "phone":
		return page.BadPhone
	case "topics":
		return page.NoTopic
	case "wording", "form", "locale":
		return page.OutdatedForm
	case "body":
		if e.Code == dispatcher.CodeTooLarge {
			return page.TooLarge
		}
	}
	return page.InvalidRequest
}
