package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// funcs are the templates' functions:
//
//	t LANG KEY ARGS...      a string of the catalogue
//	tr LANG PREFIX VALUE    the catalogue's name of a value (state, reason...), or the value
//	csrf PAGE               the hidden CSRF field of a form
//	when PAGE TIME          a time in the user's zone
//	sub PAGE VIEW           PAGE with another view, for a template of a part
//	actions STATE           the actions a campaign's buttons offer
//	runActions STATE        the actions a run's buttons offer
//	fe NAME ERRORS          a field's name and its error, for the "ferr" part
//	list "A B C"            the words of a string, for a choice's options
//	pct RATE                a rate (a fraction, or nil) as a percentage
//	step LANG STEP          a sequence's step in words
//	next LANG NEXT          an enrolment's next action in words
//	add A B                 A + B (a step's number from its index)
var funcs = template.FuncMap{
	"fe": func(name string, errs map[string]string) struct{ Name, Msg string } {
		return struct{ Name, Msg string }{name, errs[name]}
	},
	"list": strings.Fields,
	"pct": func(r *float64) string {
		if r == nil {
			return "—"
		}
		return fmt.Sprintf("%.2f %%", *r*100)
	},
	"step": stepWords,
	"next": nextWords,
	"add":  func(a, b int) int { return a + b },
	"t":    text,
	"tr":   label,
	"csrf": func(p pageData) template.HTML {
		return template.HTML(`<input type="hidden" name="` + csrfField + `" value="` + template.HTMLEscapeString(p.CSRF) + `">`)
	},
	"when": func(p pageData, t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		loc := p.Loc
		if loc == nil {
			loc = time.UTC
		}
		return t.In(loc).Format("2006-01-02 15:04 MST")
	},
	"sub": func(p pageData, v any) pageData { p.View = v; return p },
	// Which buttons to show; the pipeline decides what an action does
	// and refuses what a state forbids.
	"actions": func(state string) []string {
		switch state {
		case "draft":
			return []string{"start", "cancel"}
		case "scheduled":
			return []string{"start", "pause", "cancel"}
		case "running":
			return []string{"pause", "cancel"}
		case "paused":
			return []string{"resume", "cancel"}
		}
		return nil
	},
	"runActions": func(state string) []string {
		if state == "paused" {
			return []string{"resume", "cancel"}
		}
		return []string{"pause", "cancel"}
	},
}

// pageNames are the pages; each is layout.html with its own title and
// body (and, for the run page, its live part).
var pageNames = []string{"signin.html", "error.html", "campaigns.html", "campaign_form.html", "campaign.html", "run.html", "users.html",
	"templates.html", "template_form.html", "segments.html", "segment_form.html", "topics.html", "topic_form.html",
	"suppressions.html", "contacts.html", "contact.html", "erase.html", "analytics.html", "sequences.html", "sequence.html"}

func parsePages() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		out[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files,
			"templates/layout.html", "templates/partials.html", "templates/"+name))
	}
	return out
}
