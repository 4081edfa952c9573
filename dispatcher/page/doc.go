// Package page writes the HTML pages a recipient sees: the one-click
// unsubscribe page, the preference centre, the sign-up form, the
// confirmation of a sign-up and the informative pages between them
// (invalid link, temporary error, check your inbox...).
//
// It owns their templates (embedded, one layout, one stylesheet), the one
// catalogue of their French and English strings, the choice of their
// language (Negotiate) and their response headers. Callers fill plain
// views; the package translates and formats. It knows nothing of Redis or
// of the dispatcher.
//
// A handler picks the language, then writes the page:
//
//	q, accept := r.URL.Query(), r.Header.Get("Accept-Language")
//	c, ok := contacts[id]
//	if !ok {
//		page.Message(w, http.StatusNotFound, page.Negotiate(q.Get("lang"), "", accept), page.NoData)
//		return
//	}
//	lang := page.Negotiate(q.Get("lang"), c.Locale, accept)
//	page.Preferences(w, page.PreferencesView{Lang: lang, Sender: "Missive", Action: r.URL.Path})
//
// Language: an explicit choice ("fr" or "en", from our own links and
// forms), else the contact's stored locale, else Accept-Language, else
// English (Default). Informative pages, the unsubscribe page and the
// confirmation page carry both languages, the chosen one first; the
// sign-up form and the preference centre are in one language.
//
// Headers: every page is text/html, not cached (Cache-Control: no-store),
// sends no referrer, runs no script and loads nothing (Content-Security-
// Policy default-src 'none'), and may not be framed (frame-ancestors
// 'none', X-Frame-Options: DENY), except the sign-up form and its answers
// (SignupForm, EmbeddedMessage), which sites embed: frame-ancestors *.
package page
