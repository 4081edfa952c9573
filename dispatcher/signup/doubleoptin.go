package signup

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle"
)

const // ConfirmationTopic is the transactional topic of confirmation
// messages; it is created on first use.
ConfirmationTopic = "subscription-confirmation"

const pendingTTL = 48 * time.Hour

const MaxSignupTopics = 20

const maxUserAgent = 200

var // subscribeAddressRate limits confirmations sent to one address, so
// that the form cannot be used to bomb someone's inbox.
subscribeAddressRate = throttle.Rate{Count: 3, Per: time.Hour, Burst: 3}

var WordingPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Pending is what a sign-up leaves until it is confirmed; its Nonce makes
// the confirmation token again (signupToken).
type Pending = storepkg.PendingSignup

// Input is a parsed and validated sign-up request.
type Input struct {
	Topics  []string
	Channel channels.Kind
	Address string // normalised; never logged or echoed
	Locale  string
	Wording string
	Form    string
}

// CheckSignupTopics returns an error naming "topics" unless every id names
// a marketing topic: transactional topics need no sign-up.
func (d *Signups) CheckSignupTopics(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return dispatcher.Invalid("topics", "choose at least one topic")
	}
	ts, err := d.Store.TopicsByID(ctx, ids)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t == nil || t.Kind != dispatcher.Marketing {
			return dispatcher.Invalid("topics", "must name marketing topics open to sign-up")
		}
	}
	return nil
}

// signupToken derives the confirmation token of a sign-up from its nonce.
func (d *Signups) signupToken(nonce string) string {
	m := hmac.New(sha256.New, storepkg.DeriveKey(d.cfg.Secret, "signup-token"))
	m.Write([]byte(nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ValidToken reports whether s has the shape of a token: 32 bytes in
// unpadded URL-safe base64.
func ValidToken(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(32) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

// Submit records a pending sign-up and enqueues its confirmation. It does
// nothing, silently, when the address is suppressed or has had its share
// of confirmations: the caller answers the same in every case.
func (d *Signups) Submit(ctx context.Context, in *Input, ipHash, userAgent string) error {
	s := d.Store
	// The limit is the inbox's: sub-addresses reach the same one.
	addrHash := s.AddressHash(in.Channel, Mailbox(in.Channel, in.Address))
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
	contact, provisional, err := d.signupContact(ctx, in)
	if err != nil {
		return err
	}
	nonce := randomHex(16)
	h := TokenHash(d.signupToken(nonce))
	ps := &Pending{
		Nonce: nonce, Contact: contact, Channel: in.Channel, Topics: in.Topics, Wording: in.Wording, Form: in.Form,
		Locale: in.Locale, Created: d.cfg.Now().UTC(), IPHash: ipHash, UserAgent: cleanUserAgent(userAgent),
		Provisional: provisional != nil,
	}
	phone := ""
	if in.Channel == channels.SMS {
		phone = in.Address
	}
	// Each record after the one that leads erasure to it, since they live
	// in different slots: the address's index of sign-ups, then the
	// sign-up, which names its provisional record, then that record, which
	// holds the address. A crash in between leaves an index entry or a
	// sign-up leading nowhere, which readers skip, never an address that
	// an erasure cannot find.
	if err := s.IndexPendingByAddress(ctx, in.Channel, in.Address, h, pendingTTL); err != nil {
		return err
	}
	if err := s.PutPendingSignup(ctx, h, ps, phone, pendingTTL); err != nil {
		return err
	}
	if provisional != nil {
		if err := s.PutProvisionalContact(ctx, provisional, pendingTTL); err != nil {
			return fmt.Errorf("sign-up: %w", err)
		}
	}
	return d.sendConfirmation(ctx, h, contact, in.Channel)
}

// sendConfirmation decides the confirmation message of the pending sign-up
// h and queues it. It goes the way every send goes (the gate, a send
// record, the one send path with its claim and its policy for ambiguous
// outcomes), as a transactional message the recipient has just asked for:
// quiet hours do not hold it back. Its text is rendered at send time from
// the pending record (confirmationData).
func (d *Signups) sendConfirmation(ctx context.Context, h, contact string, k channels.Kind) error {
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

// signupContact returns the id of the contact holding the address, or,
// when none does, the id of a provisional record to make for the sign-up
// and that record: the address and the locale, to be sealed and kept as
// long as the pending sign-up, and found by no campaign and no lookup by
// address (PutProvisionalContact). The contact itself is made on
// confirmation (adopt).
func (d *Signups) signupContact(ctx context.Context, in *Input) (id string, provisional *dispatcher.Contact, err error) {
	s := d.Store
	id, err = s.ContactIDByAddress(ctx, in.Channel, in.Address)
	if err == nil {
		ok, err := s.ContactExists(ctx, id)
		if err != nil || ok {
			return id, nil, err
		}
	} else if !errors.Is(err, dispatcher.ErrNotFound) {
		return "", nil, err
	}
	c := d.newContact(in.Channel, in.Address, in.Locale)
	if err := c.Normalize(d.cfg.DefaultTimezone); err != nil {
		return "", nil, fmt.Errorf("sign-up: provisional contact: %w", err)
	}
	return c.ID, c, nil
}

// newContact is the minimal contact of a sign-up: the address and the
// locale, nothing else, under a new id.
func (d *Signups) newContact(k channels.Kind, addr, locale string) *dispatcher.Contact {
	c := &dispatcher.Contact{ID: "s-" + randomHex(8), Locale: locale}
	if k == channels.Email {
		c.Email = addr
	} else {
		c.Phone = addr
	}
	return c
}

// adopt makes the contact of the confirmed sign-up ps, whose contact is
// provisional, and returns its id: the contact that holds the address by
// now (made by the upstream system meanwhile), or else the provisional
// record made a contact under its id, in the index of contacts and the
// address index. The address index is claimed first (SETNX), so two
// confirmations at once make one contact. It returns "" when the
// provisional record is gone (expired or erased).
func (d *Signups) adopt(ctx context.Context, h string, ps *Pending) (string, error) {
	s := d.Store
	c, err := s.Contact(ctx, ps.Contact)
	if errors.Is(err, dispatcher.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	addr := c.Address(ps.Channel)
	owner, exists, err := s.ClaimAddress(ctx, ps.Channel, addr, ps.Contact)
	if err != nil {
		return "", err
	}
	// The claim is ours (now or by an earlier attempt, whose record is
	// the provisional one), or was left by a creation that died half way:
	// make the contact under the claim's id.
	if owner == ps.Contact || !exists {
		c.ID = owner
		if err := s.UpsertContact(ctx, c, d.cfg.DefaultTimezone); err != nil {
			return "", fmt.Errorf("sign-up: create contact: %w", err)
		}
	}
	if owner != ps.Contact {
		// The sign-up names its contact before the provisional record
		// goes: a confirmation that dies in between is finished by the
		// next, which would find neither the record nor the address.
		adopted := *ps
		adopted.Contact, adopted.Provisional = owner, false
		if err := s.RepointPendingSignup(ctx, h, &adopted); err != nil {
			return "", err
		}
		if err := s.DropProvisionalContact(ctx, ps.Contact); err != nil {
			return "", err
		}
	}
	return owner, nil
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

// ensureConfirmationTopic creates the transactional topic of confirmation
// messages unless it exists (a marketer may rename it).
func (d *Signups) ensureConfirmationTopic(ctx context.Context) (*dispatcher.Topic, error) {
	return d.Store.EnsureTopic(ctx, &dispatcher.Topic{ID: ConfirmationTopic, Name: "Subscription confirmation", Kind: dispatcher.Transactional,
		Description: "Double opt-in: asks a person who signed up to confirm."})
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

// ConfirmationData gives the template data of the confirmation of the
// pending sign-up h: the link with its token, the topics' names, the
// sender, in the locale of the sign-up. It returns errNothingToSend when
// the sign-up is gone (confirmed, expired or erased meanwhile).
func (d *Signups) ConfirmationData(ctx context.Context, h string) (attr map[string]string, locale string, err error) {
	ps, err := d.Pending(ctx, h)
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

// Pending returns the pending sign-up h, or nil and a nil error when there
// is none (never made, expired, confirmed or erased).
func (d *Signups) Pending(ctx context.Context, h string) (*Pending, error) {
	ps, err := d.Store.PendingSignup(ctx, h)
	if errors.Is(err, dispatcher.ErrNotFound) {
		return nil, nil
	}
	return ps, err
}

type confirmOutcome int

const (
	confirmUnknown confirmOutcome = iota // expired, unknown or for another channel
	OutcomeGranted
	OutcomeAlready
)

// Confirm grants the topics of the pending sign-up h, once: the
// ledger events and a marker in the contact's signups hash are written in
// one transaction watched on that hash, so two confirmations at once grant
// once. The pending record is deleted afterwards; a marker keeps telling
// that it was confirmed.
func (d *Signups) Confirm(ctx context.Context, h string, k channels.Kind, via string, extra map[string]string) (confirmOutcome, *Pending, error) {
	s := d.Store
	ps, err := d.Pending(ctx, h)
	if err != nil {
		return confirmUnknown, nil, err
	}
	if ps == nil {
		done, err := s.SignupConfirmed(ctx, h)
		if err != nil || !done {
			return confirmUnknown, nil, err
		}
		return OutcomeAlready, nil, nil
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
	if ps.Provisional {
		owner, err := d.adopt(ctx, h, ps)
		if err != nil {
			return confirmUnknown, nil, err
		}
		if owner == "" {
			return confirmUnknown, nil, nil
		}
		ps.Contact, ps.Provisional = owner, false
	}
	grant, err := s.GrantSignup(ctx, ps.Contact, h, events, now, pendingTTL)
	if err != nil {
		return confirmUnknown, nil, err
	}
	outcome := confirmUnknown
	switch grant {
	case storepkg.SignupGranted:
		outcome = OutcomeGranted
	case storepkg.SignupAlreadyGranted:
		outcome = OutcomeAlready
	}
	bg := context.WithoutCancel(ctx)
	if outcome == OutcomeGranted {
		for _, t := range ps.Topics {
			if err := s.CountFeedback(bg, "", t, storepkg.FeedbackConfirmations); err != nil {
				d.log.Warn("sign-up: count confirmation", "error", err)
			}
		}
		d.log.Info("sign-up confirmed", "contact", ps.Contact, "channel", string(ps.Channel), "topics", len(ps.Topics), "via", via)
	}
	// Granted, or granted before by a confirmation that has not ended the
	// pending sign-up (a process that died after the grant, or one still
	// at it): told either way, for the sequences the sign-up starts
	// (enrolling twice enrols once) and the webhooks, which hear at least
	// once. The counter is not: a crash here misses one confirmation in
	// it, rather than two at once counting two.
	if outcome != confirmUnknown {
		for _, e := range dispatcher.ConsentChanges(ps.Contact, events) {
			d.cfg.Events.Emit(bg, e)
		}
		for _, t := range ps.Topics {
			d.cfg.Events.Emit(bg, dispatcher.Event{Type: dispatcher.EventSignupConfirmed, Contact: ps.Contact, Time: now,
				Topic: t, Channel: string(ps.Channel), Reason: via})
		}
	}
	err = s.EndPendingSignup(bg, h, outcome != confirmUnknown, pendingTTL)
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
func (d *Signups) ConfirmSMSOptIn(ctx context.Context, phone, messageSID string) (confirmed bool, err error) {
	p, err := dispatcher.NormalizePhone(phone)
	if err != nil {
		return false, nil
	}
	s := d.Store
	h, err := s.PendingSMSSignup(ctx, p)
	if errors.Is(err, dispatcher.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sms opt-in: %w", err)
	}
	var extra map[string]string
	if messageSID != "" {
		extra = map[string]string{"message_sid": dispatcher.Truncate(messageSID, 64)}
	}
	outcome, _, err := d.Confirm(ctx, h, channels.SMS, "sms-yes", extra)
	if err != nil {
		return false, fmt.Errorf("sms opt-in: %w", err)
	}
	// Only this sign-up's index: a newer one may have replaced it.
	if err := s.ForgetPendingSMSSignup(context.WithoutCancel(ctx), p, h); err != nil {
		d.log.Warn("sms opt-in: forget the pending sign-up", "error", err)
	}
	return outcome == OutcomeGranted, nil
}

// TokenHash names a pending sign-up by the hash of its token: the token
// itself is never stored.
func TokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}
