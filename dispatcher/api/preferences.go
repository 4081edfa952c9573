package api

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/consent"
	"github.com/missive-dev/missive/dispatcher/page"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle"
)

// The preference centre: public, no account, the token of a message's
// link is the credential and names the only contact it can act on. The
// page lets the recipient choose topics per channel, leave everything at
// once, and shows what is held on them (GDPR Art. 15). It needs no
// JavaScript: plain forms, Post/Redirect/Get.

const (

	// prefCSRFBucket is the step of the CSRF token's clock; prefCSRFTTL is
	// how long a token is accepted (at most; at least prefCSRFTTL minus
	// one bucket).
	prefCSRFBucket = 10 * time.Minute
	prefCSRFTTL    = 2 * time.Hour
	// prefMaxHistory bounds the ledger lines the page shows.
	prefMaxHistory = 500
)

// prefSaveRate limits the preference saves of one contact, whatever the
// token: each save that changes something appends to the consent ledger,
// which is kept.
var prefSaveRate = throttle.Rate{Count: 20, Per: time.Hour, Burst: 10}

// mountPreferences adds the preference centre to the public routes.
func (a *handler) mountPreferences() {
	a.mux.HandleFunc("GET /preferences/{token}", a.preferencesPage)
	a.mux.HandleFunc("POST /preferences/{token}", a.preferencesPost)
}

func (a *handler) preferencesPage(w http.ResponseWriter, r *http.Request) {
	token, cl, ok := a.linkClaims(w, r, preferencesLink)
	if !ok {
		return
	}
	ctx := r.Context()
	c, err := a.d.Store.Contact(ctx, cl.Contact)
	if errors.Is(err, dispatcher.ErrNotFound) {
		page.Message(w, http.StatusNotFound, pageLang(r, ""), page.NoData)
		return
	}
	if err != nil {
		a.d.Logger.Error("preference page failed", "route", r.Pattern, "error", err)
		page.Message(w, http.StatusServiceUnavailable, pageLang(r, ""), page.TemporaryError)
		return
	}
	lang := pageLang(r, c.Locale)
	v, err := a.buildPrefView(ctx, c)
	if err != nil {
		a.d.Logger.Error("preference page failed", "route", r.Pattern, "error", err)
		page.Message(w, http.StatusServiceUnavailable, lang, page.TemporaryError)
		return
	}
	v.Lang = lang
	v.Action = "/preferences/" + token
	if l, ok := page.ParseLang(r.URL.Query().Get("lang")); ok {
		// The reader chose: the forms keep the choice.
		v.Action += "?lang=" + string(l)
	}
	v.Saved = r.URL.Query().Get("saved")
	page.Preferences(w, v)
}

func (a *handler) preferencesPost(w http.ResponseWriter, r *http.Request) {
	lang := pageLang(r, "")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			page.Message(w, http.StatusRequestEntityTooLarge, lang, page.InvalidPreferencesLink)
			return
		}
		page.Message(w, http.StatusBadRequest, lang, page.InvalidPreferencesLink)
		return
	}
	token, cl, ok := a.linkClaims(w, r, preferencesLink)
	if !ok {
		return
	}
	now := a.d.Config.Now()
	if !prefSameOrigin(r, a.d.Config.PublicURL) || !a.checkPrefCSRF(cl.Contact, r.PostFormValue("csrf"), now) {
		page.Message(w, http.StatusForbidden, lang, page.FormExpired)
		return
	}
	ctx := r.Context()
	var (
		changed []dispatcher.ConsentEvent
		err     error
		saved   string
	)
	switch r.PostFormValue("do") {
	case "save":
		// Per contact, whatever the token: a save that changes something
		// appends to the ledger. Leaving everything is never held back.
		if !a.takePrefSave(w, r, lang, cl.Contact) {
			return
		}
		changed, err = a.d.Consent.SavePreferences(ctx, cl.Contact, r.PostForm["shown"], r.PostForm["on"], now)
		saved = "1"
	case "pace":
		if !a.takePrefSave(w, r, lang, cl.Contact) {
			return
		}
		var pace consent.Pace
		if pace, err = a.paceForm(ctx, cl.Contact, r.PostForm); err == nil {
			_, err = a.d.Consent.SetPace(ctx, cl.Contact, pace, consent.SourcePreferencePage, map[string]string{"page": "preferences"})
		}
		if dispatcher.IsCode(err, dispatcher.CodeInvalid) {
			page.Message(w, http.StatusUnprocessableEntity, lang, page.InvalidPace)
			return
		}
		saved = "1"
	case "unsubscribe-all":
		changed, err = a.d.Consent.WithdrawAllMarketing(ctx, cl.Contact, now)
		saved = "all"
	default:
		page.Message(w, http.StatusBadRequest, lang, page.InvalidPreferencesLink)
		return
	}
	if errors.Is(err, dispatcher.ErrNotFound) {
		page.Message(w, http.StatusNotFound, lang, page.NoData)
		return
	}
	if err != nil {
		a.d.Logger.Error("preference update failed", "route", r.Pattern, "error", err)
		page.Message(w, http.StatusServiceUnavailable, lang, page.TemporaryError)
		return
	}
	run, _, _ := dispatcher.SplitSendID(cl.Send)
	for _, e := range changed {
		if e.State != dispatcher.Withdrawn {
			continue
		}
		if err := a.d.Store.CountFeedback(context.WithoutCancel(ctx), run, e.Topic, storepkg.FeedbackUnsubscribes); err != nil {
			a.d.Logger.Warn("preference page: feedback not counted", "error", err)
		}
	}
	a.d.Logger.Debug("preferences saved", "changes", len(changed))
	q := url.Values{"saved": {saved}}
	if l, ok := page.ParseLang(r.URL.Query().Get("lang")); ok {
		q.Set("lang", string(l))
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, "/preferences/"+token+"?"+q.Encode(), http.StatusSeeOther)
}

// --- CSRF: an HMAC of the contact id and a time bucket, under a key of
// its own. The bucket travels in clear so that the server needs no state.

func (a *handler) prefCSRFMAC(contact string, bucket int64) []byte {
	d := a.d
	m := hmac.New(sha256.New, storepkg.DeriveKey(d.Config.Secret, "preferences-csrf"))
	m.Write([]byte(contact))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(bucket, 10)))
	return m.Sum(nil)
}

func prefBucket(t time.Time) int64 { return t.Unix() / int64(prefCSRFBucket/time.Second) }

// prefCSRF returns the CSRF token of contact's forms at now.
func (a *handler) prefCSRF(contact string, now time.Time) string {
	b := prefBucket(now)
	return strconv.FormatInt(b, 10) + "." + base64.RawURLEncoding.EncodeToString(a.prefCSRFMAC(contact, b))
}

// checkPrefCSRF reports whether tok is a CSRF token of contact issued
// less than prefCSRFTTL ago. The MAC is compared in constant time.
func (a *handler) checkPrefCSRF(contact, tok string, now time.Time) bool {
	bs, enc, ok := strings.Cut(tok, ".")
	if !ok || len(bs) == 0 || len(bs) > 12 || len(enc) > 64 {
		return false
	}
	for i := 0; i < len(bs); i++ {
		if bs[i] < '0' || bs[i] > '9' {
			return false
		}
	}
	b, err := strconv.ParseInt(bs, 10, 64)
	if err != nil {
		return false
	}
	cur := prefBucket(now)
	if b > cur || cur-b >= int64(prefCSRFTTL/prefCSRFBucket) {
		return false
	}
	sum, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil {
		return false
	}
	return hmac.Equal(sum, a.prefCSRFMAC(contact, b))
}

// prefSameOrigin checks the browser's own word on where a POST comes
// from, when it gives one: Sec-Fetch-Site must be same-origin or none,
// and an Origin must be this server's. Pages served with no-referrer make
// browsers send "Origin: null", which says nothing either way; the CSRF
// token decides then.
func prefSameOrigin(r *http.Request, public string) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	p, err := url.Parse(public)
	return err == nil && strings.EqualFold(p.Scheme, u.Scheme) && strings.EqualFold(p.Host, u.Host)
}

// --- the page

// buildPrefView gathers what the page shows about c; the caller sets the
// language, the forms' action and the banner.
func (a *handler) buildPrefView(ctx context.Context, c *dispatcher.Contact) (page.PreferencesView, error) {
	d := a.d
	s := d.Store
	topics, err := s.Topics(ctx)
	if err != nil {
		return page.PreferencesView{}, err
	}
	cur, err := s.ConsentStates(ctx, c.ID)
	if err != nil {
		return page.PreferencesView{}, err
	}
	ledger, err := s.ConsentLedger(ctx, c.ID)
	if err != nil {
		return page.PreferencesView{}, err
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil || c.Timezone == "" {
		loc, _ = time.LoadLocation(d.Config.DefaultTimezone)
	}
	topicName := map[string]string{}
	for _, tp := range topics {
		topicName[tp.ID] = tp.Name
	}

	v := page.PreferencesView{Sender: d.Config.SenderName, CSRF: a.prefCSRF(c.ID, d.Config.Now()), Location: loc,
		Profile: page.Profile{Email: c.Email, Phone: c.Phone, Timezone: c.Timezone, Locale: c.Locale, Tags: c.Tags,
			Attributes: c.Attributes, Created: c.CreatedAt, Updated: c.UpdatedAt}}
	for _, k := range channels.Kinds {
		addr := c.Address(k)
		if addr == "" {
			continue
		}
		pc := page.PreferenceChannel{Channel: k, Address: addr}
		for _, tp := range topics {
			pt := page.PreferenceTopic{ID: tp.ID, Name: tp.Name, Description: tp.Description}
			if tp.Kind == dispatcher.Transactional {
				pt.Transactional = true
			} else {
				pt.Checked = cur[storepkg.ConsentField(k, tp.ID)].State == dispatcher.Granted
			}
			pc.Topics = append(pc.Topics, pt)
		}
		v.Channels = append(v.Channels, pc)
	}
	for _, f := range slices.Sorted(maps.Keys(cur)) {
		k, topic, _ := strings.Cut(f, "/")
		cc := cur[f]
		v.Consents = append(v.Consents, page.Consent{Channel: channels.Kind(k), Topic: cmp.Or(topicName[topic], topic),
			State: string(cc.State), Source: cc.Source, At: cc.At})
	}
	start := 0
	if len(ledger) > prefMaxHistory {
		start = len(ledger) - prefMaxHistory
		v.HistoryCut = prefMaxHistory
	}
	for i := len(ledger) - 1; i >= start; i-- {
		e := ledger[i]
		v.History = append(v.History, page.Consent{Channel: e.Channel, Topic: cmp.Or(topicName[e.Topic], e.Topic),
			State: string(e.State), Source: e.Source, At: e.At, Evidence: e.Evidence, Kind: e.Kind, Value: e.Value})
	}
	if v.Pace, err = a.paceView(ctx, c.ID, topics, loc); err != nil {
		return page.PreferencesView{}, err
	}
	for _, k := range channels.Kinds {
		addr := c.Address(k)
		if addr == "" {
			continue
		}
		sup, err := s.Suppression(ctx, k, addr)
		if errors.Is(err, dispatcher.ErrNotFound) {
			continue
		}
		if err != nil {
			return page.PreferencesView{}, err
		}
		v.Suppressions = append(v.Suppressions, page.Suppression{Channel: k, Address: addr, Reason: sup.Reason, At: sup.At, Until: sup.Until})
	}
	return v, nil
}

// takePrefSave takes one of the contact's preference saves (prefSaveRate),
// whatever the token; when none is left, or the limiter fails, it answers
// and returns false.
func (a *handler) takePrefSave(w http.ResponseWriter, r *http.Request, lang page.Lang, contact string) bool {
	allowed, retryIn, err := a.d.Limiter.TakeRate(r.Context(), "prefs:save:"+contact, prefSaveRate, 1)
	if err != nil {
		a.d.Logger.Error("preference update failed", "route", r.Pattern, "error", err)
		page.Message(w, http.StatusServiceUnavailable, lang, page.TemporaryError)
		return false
	}
	if allowed == 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryIn+time.Second-1)/time.Second)))
		page.Message(w, http.StatusTooManyRequests, lang, page.TooManySaves)
		return false
	}
	return true
}
