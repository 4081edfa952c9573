package api

// The sign-up form, its answers and the confirmation pages: a public,
// unauthenticated form that bots attack. The work is package signup's.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/page"
	"github.com/missive-dev/missive/dispatcher/signup"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle"
)

const (
	maxSubscribeBody = 16 << 10

	// subscribeFloor is the least time an accepted sign-up takes to
	// answer, so that the work done for a known, unknown or suppressed
	// address does not show in the response time.
	subscribeFloor = 250 * time.Millisecond
)

var (
	// subscribeClientRate limits sign-ups per client IP.
	subscribeClientRate = throttle.Rate{Count: 5, Per: time.Minute, Burst: 5}
)

// --- routes

// mountSubscribe adds the public sign-up (double opt-in) routes.
func (a *handler) mountSubscribe() {
	a.mux.HandleFunc("GET /subscribe/form", a.subscribeForm)
	a.mux.HandleFunc("POST /subscribe", a.subscribe)
	a.mux.HandleFunc("GET /subscribe/confirm/{token}", a.confirmSignupPage)
	a.mux.HandleFunc("POST /subscribe/confirm/{token}", a.confirmSignup)
}

// subscribe handles POST /subscribe.
func (a *handler) subscribe(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
	d := a.d
	html := wantsHTML(r)
	ipHash, limitKey := a.clientIPHash(r)

	allowed, retryIn, err := d.Limiter.TakeRate(ctx, "subscribe:ip:"+limitKey, subscribeClientRate, 1)
	if err != nil {
		d.Logger.Error("sign-up: rate limit", "error", err)
		a.subscribeFailed(w, r, html, "")
		return
	}
	if allowed == 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryIn+time.Second-1)/time.Second)))
		if html {
			page.Message(w, http.StatusTooManyRequests, pageLang(r, ""), page.TooManyRequests)
			return
		}
		dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeRateLimited,
			Message: "too many sign-ups from this client; retry after the Retry-After delay"})
		return
	}

	in, err := readSignup(w, r)
	if err == nil {
		err = d.Signups.CheckSignupTopics(ctx, in.Topics)
	}
	if err == nil {
		err = a.checkSignupWording(ctx, in)
	}
	if err != nil {
		status, e := dispatcher.HTTPStatus(err)
		if status == http.StatusInternalServerError {
			d.Logger.Error("sign-up: topics", "error", err)
			a.subscribeFailed(w, r, html, in.Locale)
			return
		}
		if html {
			a.rerenderForm(w, r, status, in, e)
			return
		}
		dispatcher.WriteError(w, e)
		return
	}

	if err := d.Signups.Submit(ctx, in, ipHash, r.UserAgent()); err != nil {
		d.Logger.Error("sign-up failed", "error", err)
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
	dispatcher.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "pending",
		"message": "If the address can receive our messages, a confirmation request was sent to it. Nothing is subscribed until it is confirmed."})
}

// subscribeFailed answers a sign-up that could not be recorded; locale is
// the sign-up's, "" when it was not read.
func (a *handler) subscribeFailed(w http.ResponseWriter, r *http.Request, html bool, locale string) {
	if html {
		page.Message(w, http.StatusServiceUnavailable, pageLang(r, locale), page.TemporaryError)
		return
	}
	dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeUnavailable,
		Message: "the sign-up could not be recorded; retry in a few minutes"})
}

// wantsHTML reports whether the client is a browser posting a form: it
// gets pages, others get JSON.
func wantsHTML(r *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return ct == "application/x-www-form-urlencoded" && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// clientIPHash is the keyed hash of the client's address, as the
// sign-up evidence keeps it, and the key the per-client limit counts
// (an IPv6 client's /64). The address is the connection's peer, or what
// the trusted proxies say (clientAddr).
func (a *handler) clientIPHash(r *http.Request) (evidence, limit string) {
	ip := clientAddr(r, a.cfg.TrustedProxies, a.cfg.ClientIPHeader)
	key := storepkg.DeriveKey(a.d.Config.Secret, "client-ip")
	hash := func(s string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		return hex.EncodeToString(m.Sum(nil)[:16])
	}
	if !ip.IsValid() {
		// Not an IP peer (a test's pipe): one client.
		return hash(r.RemoteAddr), hash(r.RemoteAddr)
	}
	return hash(ip.String()), hash(limitPrefix(ip))
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
func readSignup(w http.ResponseWriter, r *http.Request) (*signup.Input, error) {
	in := &signup.Input{}
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
	if in.Form != "" && !signup.WordingPattern.MatchString(in.Form) {
		in.Form = ""
		return in, dispatcher.Invalid("form", "must be 1-64 letters, digits, . _ -")
	}
	if !signup.WordingPattern.MatchString(in.Wording) {
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
			if len(in.Topics) > signup.MaxSignupTopics {
				return in, dispatcher.Invalid("topics", "at most %d topics", signup.MaxSignupTopics)
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

// --- recording a sign-up

// --- delivering the confirmation

// --- confirming

// --- confirmation pages. A GET only shows a button (link scanners fetch
// URLs); the POST confirms.

func (a *handler) confirmSignupPage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	var ps *signup.Pending
	var err error
	if signup.ValidToken(token) {
		ps, err = a.d.Signups.Pending(r.Context(), signup.TokenHash(token))
	}
	if err != nil {
		a.d.Logger.Error("sign-up: confirm page", "error", err)
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

func (a *handler) confirmSignup(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxSubscribeBody)
	r.ParseForm()
	token := r.PathValue("token")
	if !signup.ValidToken(token) {
		page.Message(w, http.StatusNotFound, pageLang(r, ""), page.ExpiredSignupLink)
		return
	}
	outcome, ps, err := a.d.Signups.Confirm(r.Context(), signup.TokenHash(token), channels.Email, "email-link", nil)
	if err != nil {
		a.d.Logger.Error("sign-up: confirm", "error", err)
		page.Message(w, http.StatusServiceUnavailable, pageLang(r, ""), page.TemporaryError)
		return
	}
	switch outcome {
	case signup.OutcomeGranted:
		names := strings.Join(a.topicNames(r.Context(), ps.Topics), ", ")
		page.Message(w, http.StatusOK, pageLang(r, ps.Locale), page.SignupConfirmed, names)
	case signup.OutcomeAlready:
		page.Message(w, http.StatusOK, pageLang(r, ""), page.AlreadyConfirmed)
	default:
		page.Message(w, http.StatusNotFound, pageLang(r, ""), page.ExpiredSignupLink)
	}
}

func (a *handler) topicNames(ctx context.Context, ids []string) []string {
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
func (a *handler) subscribeForm(w http.ResponseWriter, r *http.Request) {
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
	if form != "" && !signup.WordingPattern.MatchString(form) {
		form = ""
	}
	k := channels.Email
	if q.Get("channel") == string(channels.SMS) {
		k = channels.SMS
	}
	v, err := a.formView(r.Context(), lang, ids, k, form)
	if err != nil {
		if st, _ := dispatcher.HTTPStatus(err); st == http.StatusInternalServerError {
			a.d.Logger.Error("sign-up: form", "error", err)
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
func (a *handler) formView(ctx context.Context, lang page.Lang, ids []string, k channels.Kind, form string) (page.FormView, error) {
	if len(ids) == 0 || len(ids) > signup.MaxSignupTopics {
		return page.FormView{}, dispatcher.Invalid("topics", "name 1-%d marketing topics", signup.MaxSignupTopics)
	}
	for _, id := range ids {
		if !dispatcher.NamePattern.MatchString(id) {
			return page.FormView{}, dispatcher.Invalid("topics", "must be topic ids")
		}
	}
	if err := a.d.Signups.CheckSignupTopics(ctx, ids); err != nil {
		return page.FormView{}, err
	}
	v := page.FormView{Lang: lang, Sender: a.d.Config.SenderName, Channel: k, Form: form, WordingID: a.formWording(lang, k).ID}
	for _, id := range ids {
		t, err := a.d.Store.Topic(ctx, id)
		if err != nil {
			return page.FormView{}, err
		}
		v.Topics = append(v.Topics, page.FormTopic{ID: t.ID, Name: t.Name, Description: t.Description})
	}
	return v, nil
}

// formWording is the built-in form's consent text in lang for channel k,
// with its id.
func (a *handler) formWording(lang page.Lang, k channels.Kind) *dispatcher.Wording {
	w := &dispatcher.Wording{Lang: string(lang), Text: page.FormWording(lang, a.d.Config.SenderName, k)}
	w.ID = dispatcher.WordingID(w.Lang, w.Text)
	return w
}

// checkSignupWording checks the wording a sign-up names: a stored
// wording's id must name one that is stored; the built-in form's text is
// stored on its first use. A label of the form's own choosing (not an
// id) is recorded as it is.
func (a *handler) checkSignupWording(ctx context.Context, in *signup.Input) error {
	if !dispatcher.IsWordingID(in.Wording) {
		return nil
	}
	lang, _ := page.ParseLang(in.Locale)
	if w := a.formWording(lang, in.Channel); w.ID == in.Wording {
		_, err := a.d.Store.PutWording(ctx, w)
		return err
	}
	return a.checkWordings(ctx, "wording", in.Wording)
}

// checkWordings returns an error with code invalid naming field when one
// of ids is not a stored wording.
func (a *handler) checkWordings(ctx context.Context, field string, ids ...string) error {
	ws, err := a.d.Store.Wordings(ctx, ids)
	if err != nil {
		return err
	}
	for _, w := range ws {
		if w == nil {
			return dispatcher.Invalid(field, "names no stored wording: store its exact text with POST /v1/wordings first")
		}
	}
	return nil
}

// rerenderForm answers a browser's invalid sign-up with the form and the
// problem, in the request's locale. The address is never put back.
func (a *handler) rerenderForm(w http.ResponseWriter, r *http.Request, status int, in *signup.Input, e *dispatcher.Error) {
	lang := page.Negotiate(in.Locale, "", r.Header.Get("Accept-Language"))
	k := channels.Email
	if in.Channel == channels.SMS || (in.Channel == "" && r.PostForm.Get("phone") != "" && r.PostForm.Get("email") == "") {
		k = channels.SMS
	}
	// Offer the topics that were asked and exist; without any, a plain page.
	var ids []string
	for _, id := range in.Topics {
		if a.d.Signups.CheckSignupTopics(r.Context(), []string{id}) == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		for _, t := range r.PostForm["topics"] {
			for _, id := range strings.Split(t, ",") {
				id = strings.TrimSpace(id)
				if dispatcher.NamePattern.MatchString(id) && !slices.Contains(ids, id) && len(ids) < signup.MaxSignupTopics &&
					a.d.Signups.CheckSignupTopics(r.Context(), []string{id}) == nil {
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
