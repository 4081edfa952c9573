package page

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
)

// files are the templates: layout.html is every page's frame, with the
// one stylesheet, style.css: rules all pages share, then each kind of
// page's own rules scoped by its body class (message, signup,
// preferences), so that one sheet keeps every page's look.
//
//go:embed templates/*.html templates/*.css
var files embed.FS

// funcs are the templates' functions: t looks a key up in the catalogue.
var funcs = template.FuncMap{"t": tmplText}

var (
	messageTmpl     = parsePage("message.html")
	formTmpl        = parsePage("form.html")
	preferencesTmpl = parsePage("preferences.html")
)

// parsePage returns the shared layout with one page's "title" and "body".
func parsePage(name string) *template.Template {
	return template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files,
		"templates/layout.html", "templates/style.css", "templates/"+name))
}

// Body classes: each selects its part of the stylesheet.
const (
	classMessage     = "message"
	classSignup      = "signup"
	classPreferences = "preferences"
)

// headers sets the headers of every public page. Only the sign-up form
// and its answers may be framed by another site: they are made to be
// embedded, and what they do (ask for a confirmation) is harmless if
// clicked by trickery. Every other page, the confirmation above all,
// keeps frame-ancestors 'none'. No page runs a script or loads anything;
// the referrer is never sent, since page URLs hold tokens; nothing is
// cached, since pages show personal data.
func headers(w http.ResponseWriter, frameable bool) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	csp := "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
	if frameable {
		csp += "; frame-ancestors *"
	} else {
		csp += "; frame-ancestors 'none'"
		h.Set("X-Frame-Options", "DENY")
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

// render executes t with data and writes the page. The page is rendered
// whole before anything is written, so that a template error becomes a
// 500 page (TemporaryError, never framed) rather than half a page.
// contentLanguage, when set, is sent as Content-Language.
func render(w http.ResponseWriter, status int, frameable bool, t *template.Template, data any, lang Lang, contentLanguage Lang) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		renderError(w, lang)
		return
	}
	headers(w, frameable)
	if contentLanguage != "" {
		w.Header().Set("Content-Language", string(contentLanguage))
	}
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// renderError writes the 500 page; should even that fail, a line of text.
func renderError(w http.ResponseWriter, lang Lang) {
	var buf bytes.Buffer
	if err := messageTmpl.Execute(&buf, message(lang, TemporaryError, nil)); err != nil {
		buf.Reset()
		buf.WriteString("internal error\n")
	}
	headers(w, false)
	w.WriteHeader(http.StatusInternalServerError)
	w.Write(buf.Bytes())
}
