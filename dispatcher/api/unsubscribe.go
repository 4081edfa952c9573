package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/page"
	"github.com/missive-dev/missive/templates"
)

// linkKind is what the token of a link in a message opens.
type linkKind struct {
	// anyTopic accepts claims without a topic: preference links carry the
	// claims of the message they came in, where only the contact matters;
	// an unsubscribe link names the topic it leaves.
	anyTopic bool
	// invalid is the page shown for a token that is not one.
	invalid page.MessageKey
}

var (
	unsubscribeLink = linkKind{invalid: page.InvalidUnsubscribeLink}
	preferencesLink = linkKind{anyTopic: true, invalid: page.InvalidPreferencesLink}
)

// linkClaims returns the token in r's path and its verified claims. For a
// token that is not a valid link of kind, it writes the page saying so
// and returns false.
func (a *handler) linkClaims(w http.ResponseWriter, r *http.Request, kind linkKind) (string, templates.Claims, bool) {
	token := r.PathValue("token")
	cl, err := a.d.Signer.Verify(token)
	if err != nil || !dispatcher.ValidID(cl.Contact) || !channels.Kind(cl.Channel).Valid() ||
		!(kind.anyTopic && cl.Topic == "" || dispatcher.NamePattern.MatchString(cl.Topic)) {
		page.Message(w, http.StatusBadRequest, pageLang(r, ""), kind.invalid)
		return "", templates.Claims{}, false
	}
	return token, cl, true
}

func (a *handler) topicName(ctx context.Context, id string) string {
	if t, err := a.d.Store.Topic(ctx, id); err == nil {
		return t.Name
	}
	return id
}

// pageLang is the language of a public page: an explicit ?lang=, else
// locale (the contact's, "" when unknown), else the browser's.
func pageLang(r *http.Request, locale string) page.Lang {
	return page.Negotiate(r.URL.Query().Get("lang"), locale, r.Header.Get("Accept-Language"))
}

// unsubscribeLang is the language of a one-click page: the contact's
// locale, so that a French contact reads French first whatever the
// browser. The contact is read for its locale alone: the page does
// without it (an erased contact, a failed read).
func (a *handler) unsubscribeLang(r *http.Request, contact string) page.Lang {
	var locale string
	if c, err := a.d.Store.Contact(r.Context(), contact); err == nil {
		locale = c.Locale
	}
	return pageLang(r, locale)
}

func (a *handler) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	token, cl, ok := a.linkClaims(w, r, unsubscribeLink)
	if !ok {
		return
	}
	page.Unsubscribe(w, page.UnsubscribeView{Lang: a.unsubscribeLang(r, cl.Contact), Topic: a.topicName(r.Context(), cl.Topic),
		Channel: channels.Kind(cl.Channel), Action: "/u/" + token})
}

func (a *handler) unsubscribeOneClick(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	err := r.ParseMultipartForm(maxFormBody)
	if err != nil && !errors.Is(err, http.ErrNotMultipart) || r.PostFormValue("List-Unsubscribe") != "One-Click" {
		page.Message(w, http.StatusBadRequest, pageLang(r, ""), page.InvalidUnsubscribeLink)
		return
	}
	_, cl, ok := a.linkClaims(w, r, unsubscribeLink)
	if !ok {
		return
	}
	ctx := r.Context()
	lang := a.unsubscribeLang(r, cl.Contact)
	if err := a.d.Consent.WithdrawOneClick(ctx, cl); err != nil {
		a.d.Logger.Error("one-click unsubscribe failed", "route", r.Pattern, "error", err)
		page.Message(w, http.StatusServiceUnavailable, lang, page.TemporaryError)
		return
	}
	page.Unsubscribe(w, page.UnsubscribeView{Lang: lang, Topic: a.topicName(ctx, cl.Topic), Channel: channels.Kind(cl.Channel), Done: true})
}
