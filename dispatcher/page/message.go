package page

import (
	"net/http"
	"strings"

	"github.com/missive-dev/missive/channels"
)

// A MessageKey names an informative page: a title and a text, in the
// catalogue as "msg.<key>.title" and "msg.<key>.text".
type MessageKey string

// The informative pages. Those that take an argument say which.
const (
	InvalidUnsubscribeLink MessageKey = "unsubscribe-invalid"
	TemporaryError         MessageKey = "error"
	InvalidPreferencesLink MessageKey = "preferences-invalid"
	// NoData: a valid preference link of a contact we no longer hold.
	NoData MessageKey = "preferences-gone"
	// FormExpired: a preference form whose CSRF token or origin failed.
	FormExpired     MessageKey = "preferences-expired"
	TooManyRequests MessageKey = "too-many-requests"
	// TooManySaves: a preference form saved too often; nothing changed.
	TooManySaves MessageKey = "too-many-saves"
	// InvalidPace: a pace form with a value out of bounds; nothing changed.
	InvalidPace MessageKey = "pace-invalid"
	// CheckInbox and CheckPhone answer a sign-up by email and by SMS.
	CheckInbox      MessageKey = "check-inbox"
	CheckPhone      MessageKey = "check-phone"
	FormUnavailable MessageKey = "form-unavailable"
	// SignupFailed takes the Problem, for a sign-up whose form cannot be
	// shown again.
	SignupFailed MessageKey = "signup-failed"
	// SignupConfirmed takes the names of the topics, as one string.
	SignupConfirmed   MessageKey = "signup-confirmed"
	AlreadyConfirmed  MessageKey = "signup-already-confirmed"
	ExpiredSignupLink MessageKey = "signup-expired"
)

// messageData is what message.html shows: a title and a text in each
// language, the reader's first, and an optional form.
type messageData struct {
	Lang  Lang
	Class string
	Parts [2]part
	Form  *messageForm
}

type part struct {
	Lang        Lang
	Title, Text string
}

type messageForm struct {
	Action   string
	OneClick bool   // the RFC 8058 one-click field
	Button   string // in both languages
}

// bilingual returns the parts of a page in lang, then the other language.
func bilingual(lang Lang, title, txt string, args ...any) [2]part {
	var ps [2]part
	for i, l := range []Lang{lang.orDefault(), lang.other()} {
		ps[i] = part{Lang: l, Title: text(l, title), Text: text(l, txt, args...)}
	}
	return ps
}

func button(lang Lang, key string) string {
	return text(lang.orDefault(), key) + " / " + text(lang.other(), key)
}

func message(lang Lang, key MessageKey, args []any) messageData {
	k := "msg." + string(key)
	return messageData{Lang: lang.orDefault(), Class: classMessage, Parts: bilingual(lang, k+".title", k+".text", args...)}
}

// Message writes the informative page key with status. Informative pages
// carry both languages, lang first: they mostly answer requests whose
// reader we cannot tell (an invalid link, an error), so a wrong guess
// must still be readable. args fill the text (see each key). The page may
// not be framed.
func Message(w http.ResponseWriter, status int, lang Lang, key MessageKey, args ...any) {
	render(w, status, false, messageTmpl, message(lang, key, args), lang, "")
}

// EmbeddedMessage is Message for the answers of the sign-up form, which
// may be framed by another site as the form is.
func EmbeddedMessage(w http.ResponseWriter, status int, lang Lang, key MessageKey, args ...any) {
	render(w, status, true, messageTmpl, message(lang, key, args), lang, "")
}

// UnsubscribeView is the one-click unsubscribe page (RFC 8058) of a link.
type UnsubscribeView struct {
	Lang    Lang
	Topic   string        // the topic's name
	Channel channels.Kind // the channel the link came by
	// Action is the URL the one-click form posts to, while not Done.
	Action string
	// Done says the withdrawal is recorded: the page says so, with no form.
	Done bool
}

// Unsubscribe writes the one-click unsubscribe page, 200, in both
// languages as Message. Before Done it only shows a button, since link
// scanners open URLs; its POST carries List-Unsubscribe=One-Click.
func Unsubscribe(w http.ResponseWriter, v UnsubscribeView) {
	d := messageData{Lang: v.Lang.orDefault(), Class: classMessage}
	if v.Done {
		d.Parts = bilingual(v.Lang, "unsubscribe.done.title", "unsubscribe.done.text", plural(v.Channel), v.Topic)
	} else {
		d.Parts = bilingual(v.Lang, "unsubscribe.title", "unsubscribe.text", plural(v.Channel), v.Topic)
		d.Form = &messageForm{Action: v.Action, OneClick: true, Button: button(v.Lang, "unsubscribe.button")}
	}
	render(w, http.StatusOK, false, messageTmpl, d, v.Lang, "")
}

// ConfirmView is the page of a sign-up's confirmation link.
type ConfirmView struct {
	Lang   Lang
	Topics []string // the names of the topics asked for
	Action string   // the URL the confirmation form posts to
}

// Confirm writes the confirmation page of a sign-up, 200, in both
// languages as Message: a button, since link scanners open URLs. It may
// not be framed: confirming is what a framing site would trick a click
// into.
func Confirm(w http.ResponseWriter, v ConfirmView) {
	lang := v.Lang.orDefault()
	d := messageData{Lang: lang, Class: classSignup,
		Form: &messageForm{Action: v.Action, Button: button(lang, "confirm.button")}}
	for i, l := range []Lang{lang, lang.other()} {
		quoted := make([]string, len(v.Topics))
		for j, t := range v.Topics {
			quoted[j] = text(l, "confirm.topic", t)
		}
		d.Parts[i] = part{Lang: l, Title: text(l, "confirm.title"), Text: text(l, "confirm.text", strings.Join(quoted, ", "))}
	}
	render(w, http.StatusOK, false, messageTmpl, d, lang, "")
}

// plural is a channel's messages in a sentence ("e-mails", "text
// messages"); any kind but SMS reads as email.
type plural channels.Kind

func (p plural) localize(l Lang) string {
	if channels.Kind(p) == channels.SMS {
		return text(l, "channel.sms.plural")
	}
	return text(l, "channel.email.plural")
}
