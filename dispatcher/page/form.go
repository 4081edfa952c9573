package page

import (
	"net/http"

	"github.com/missive-dev/missive/channels"
)

// FormView is the sign-up form of the double opt-in, made to be embedded
// in the site's pages. It posts to /subscribe the fields topics, email or
// phone, locale (its language), wording (FormView.WordingID) and form.
type FormView struct {
	Lang   Lang
	Sender string // who sends, as the consent text names it
	// Channel is the address the form asks for: SMS asks for a phone
	// number, anything else for an email address.
	Channel channels.Kind
	// Topics are marketing topics. One is named above the button and
	// posted as a hidden field; several are offered as boxes, unchecked
	// unless Checked (consent is an act, never a default).
	Topics []FormTopic
	Form   string  // id of the form, posted back for the evidence; "" for none
	Error  Problem // what was wrong with the last try; "" for a fresh form
	// WordingID names the exact consent text the form shows (FormWording),
	// as it is stored: it is posted back as the sign-up's evidence.
	WordingID string
}

// FormWording is the exact consent text of the sign-up form in lang, for
// sender and the channel the form asks for.
func FormWording(lang Lang, sender string, k channels.Kind) string {
	return text(lang.orDefault(), "form.wording", sender, plural(k))
}

// FormTopic is a topic offered by the form.
type FormTopic struct {
	ID, Name, Description string
	// Checked ticks the box again when the form comes back with an error.
	Checked bool
}

// A Problem is what is wrong with a sign-up, as the form tells the person.
type Problem string

const (
	// BadEmail: no address, or not a valid one.
	BadEmail Problem = "email"
	// EmailAndPhone: both an email address and a phone number.
	EmailAndPhone Problem = "email-and-phone"
	// BadPhone: not a mobile number in international form.
	BadPhone Problem = "phone"
	// NoTopic: no topic chosen, or one that is not open to sign-up.
	NoTopic Problem = "topics"
	// OutdatedForm: the form's own fields (wording, form, locale) are
	// not what we serve: it was copied or is old.
	OutdatedForm Problem = "outdated"
	// TooLarge: the request body is over the limit.
	TooLarge Problem = "too-large"
	// InvalidRequest: anything else.
	InvalidRequest Problem = "invalid"
)

func (p Problem) localize(l Lang) string {
	if _, ok := catalogue["problem."+string(p)]; !ok {
		p = InvalidRequest
	}
	return text(l, "problem."+string(p))
}

// field is the input a problem marks invalid, "" for none.
func (p Problem) field() string {
	switch p {
	case BadEmail, EmailAndPhone:
		return "email"
	case BadPhone:
		return "phone"
	case NoTopic:
		return "topics"
	}
	return ""
}

type formData struct {
	Lang             Lang
	Class            string
	Topics           []FormTopic
	Single, SMS      bool
	Version, Wording string
	ShortVersion     string // the start of Version, shown
	Form             string
	Error, ErrField  string
}

// SignupForm writes the sign-up form with status (200, or the status of
// the error it comes back with). It may be framed by any site; it runs
// no script. It shows the topics as given, so v.Topics should hold
// marketing topics alone; with none it writes FormUnavailable, 404.
func SignupForm(w http.ResponseWriter, status int, v FormView) {
	lang := v.Lang.orDefault()
	d := formData{Lang: lang, Class: classSignup, Topics: v.Topics, Single: len(v.Topics) == 1,
		SMS: v.Channel == channels.SMS, Version: v.WordingID, Form: v.Form}
	d.Wording = FormWording(lang, v.Sender, v.Channel)
	d.ShortVersion = v.WordingID[:min(12, len(v.WordingID))]
	if v.Error != "" {
		d.Error, d.ErrField = v.Error.localize(lang), v.Error.field()
	}
	if len(v.Topics) == 0 {
		// Nothing to sign up to: the caller should have said so.
		EmbeddedMessage(w, http.StatusNotFound, lang, FormUnavailable)
		return
	}
	render(w, status, true, formTmpl, d, lang, "")
}
