package console

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
)

// sampleData is the contact a preview shows when the user may not see a
// real contact's data, or names none.
var sampleData = map[string]string{"first_name": "Camille", "last_name": "Martin", "city": "Lyon", "code": "BIENVENUE"}

// sampleContact is the sample contact's own fields.
var sampleContact = templates.ContactData{ID: "sample", Email: "camille@example.com", Phone: "+33612345678", Locale: "fr", Timezone: "Europe/Paris"}

func (c *Console) templatesList(w http.ResponseWriter, r *http.Request) {
	ts, err := c.st.Templates(r.Context())
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.render(w, r, http.StatusOK, "templates.html", "templates", ts, "")
}

// templateView is the template editor: the fields typed, the errors by
// field, and the preview of the parts present.
type templateView struct {
	New      bool
	Form     map[string]string
	Errors   map[string]string
	Preview  *templatePreview
	Contacts bool // the user may preview with a real contact's data
	Version  int  // the stored version shown
	Saved    bool // the version was just saved
}

// templatePreview is what the server rendered for the form's template.
type templatePreview struct {
	Email    *templates.Rendered
	SMS      *templates.Rendered
	Sample   bool // rendered with the sample data
	Segments templates.SegmentInfo
}

// templateFields are the editor's fields, in order.
var templateFields = []string{"id", "email.subject", "email.html", "email.text", "email.from", "sms.body", "sample", "contact"}

// readTemplate reads the editor's form into a template. Empty parts are
// left out; the store validates the rest.
func readTemplate(r *http.Request) (*templates.Template, map[string]string) {
	f := map[string]string{}
	for _, k := range templateFields {
		f[k] = r.PostFormValue(k)
	}
	f["id"], f["contact"], f["email.from"] = strings.TrimSpace(f["id"]), strings.TrimSpace(f["contact"]), strings.TrimSpace(f["email.from"])
	t := &templates.Template{ID: f["id"]}
	if f["email.subject"] != "" || f["email.html"] != "" || f["email.text"] != "" {
		t.Email = &templates.Email{Subject: f["email.subject"], HTML: f["email.html"], Text: f["email.text"], From: f["email.from"]}
	}
	if f["sms.body"] != "" {
		t.SMS = &templates.SMS{Body: f["sms.body"]}
	}
	return t, f
}

// templateForm is a stored template as the editor shows it.
func templateForm(t *templates.Template) map[string]string {
	f := map[string]string{"id": t.ID, "sample": sampleText()}
	if t.Email != nil {
		f["email.subject"], f["email.html"], f["email.text"], f["email.from"] = t.Email.Subject, t.Email.HTML, t.Email.Text, t.Email.From
	}
	if t.SMS != nil {
		f["sms.body"] = t.SMS.Body
	}
	return f
}

// sampleText is the sample data as the editor's field shows it.
func sampleText() string {
	var b strings.Builder
	for _, k := range []string{"first_name", "last_name", "city", "code"} {
		fmt.Fprintf(&b, "%s=%s\n", k, sampleData[k])
	}
	return b.String()
}

// readSample reads "name=value" lines. Returns an error with code
// invalid naming the field sample for a line without "=".
func readSample(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, dispatcher.Invalid("sample", "line %d must be name=value", i+1)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

// mayPreviewContact tells whether a role may preview with a real
// contact's data: admins only, as only they see contacts' personal data.
func mayPreviewContact(role string) bool { return role == RoleAdmin }

func (c *Console) templatePage(w http.ResponseWriter, r *http.Request, status int, v templateView, err error) {
	var pageErr string
	v.Errors, pageErr = fieldErrors(err)
	v.Contacts = mayPreviewContact(userOf(r).user.Role)
	if v.Form == nil {
		v.Form = map[string]string{}
	}
	c.render(w, r, status, "template_form.html", "templates", v, pageErr)
}

func (c *Console) newTemplate(w http.ResponseWriter, r *http.Request) {
	c.templatePage(w, r, http.StatusOK, templateView{New: true, Form: map[string]string{"sample": sampleText()}}, nil)
}

func (c *Console) editTemplate(w http.ResponseWriter, r *http.Request) {
	t, err := c.st.Template(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	v := templateView{Form: templateForm(t), Version: t.Version}
	if n, err := strconv.Atoi(r.URL.Query().Get("saved")); err == nil && n == t.Version {
		v.Saved = true
	}
	v.Preview, _ = c.preview(r, t, v.Form)
	c.templatePage(w, r, http.StatusOK, v, nil)
}

// preview renders t's parts for the sample data, or for the contact
// named in form when the user may see it, as the API's preview does:
// Compile, then Preview with placeholder links.
func (c *Console) preview(r *http.Request, t *templates.Template, form map[string]string) (*templatePreview, error) {
	comp, err := templates.Compile(*t)
	if err != nil {
		return nil, store.TemplateError(err)
	}
	p := &templatePreview{Sample: true}
	data := templates.Data{Contact: sampleContact, Now: c.d.Config.Now(), Locale: sampleContact.Locale}
	if data.Attr, err = readSample(form["sample"]); err != nil {
		return nil, err
	}
	if id := form["contact"]; id != "" {
		if !mayPreviewContact(userOf(r).user.Role) {
			return nil, &dispatcher.Error{Code: dispatcher.CodeForbidden, Field: "contact", Message: "your role previews with sample data only"}
		}
		ct, err := c.st.Contact(r.Context(), id)
		if errors.Is(err, dispatcher.ErrNotFound) {
			return nil, dispatcher.Invalid("contact", "names no contact")
		}
		if err != nil {
			return nil, err
		}
		data.Contact = templates.ContactData{ID: ct.ID, Email: ct.Email, Phone: ct.Phone, Locale: ct.Locale, Timezone: ct.Timezone}
		data.Attr, data.Locale, p.Sample = ct.Attributes, ct.Locale, false
	}
	if data.Attr == nil {
		data.Attr = map[string]string{}
	}
	for _, k := range []channels.Kind{channels.Email, channels.SMS} {
		if !comp.Has(k) {
			continue
		}
		out, err := comp.Preview(k, data)
		if err != nil {
			return nil, store.PreviewError(err)
		}
		if k == channels.Email {
			p.Email = &out
		} else {
			p.SMS, p.Segments = &out, out.Segments
		}
	}
	return p, nil
}

// previewTemplate renders the template typed, saving nothing: the
// editor's Preview button, and the script that refreshes the preview as
// the user types.
func (c *Console) previewTemplate(w http.ResponseWriter, r *http.Request) {
	t, f := readTemplate(r)
	v := templateView{New: r.PathValue("id") == "", Form: f}
	if !v.New {
		v.Form["id"] = r.PathValue("id")
	}
	if t.Email == nil && t.SMS == nil {
		c.templatePage(w, r, http.StatusUnprocessableEntity, v, dispatcher.Invalid("email.subject", "a template needs an email or an SMS part"))
		return
	}
	p, err := c.preview(r, t, f)
	if err != nil {
		c.templatePage(w, r, statusOf(err), v, err)
		return
	}
	v.Preview = p
	c.templatePage(w, r, http.StatusOK, v, nil)
}

func (c *Console) createTemplate(w http.ResponseWriter, r *http.Request) {
	t, f := readTemplate(r)
	v := templateView{New: true, Form: f}
	ctx := r.Context()
	if _, err := c.st.Template(ctx, t.ID); err == nil {
		c.templatePage(w, r, http.StatusConflict, v, &dispatcher.Error{Code: dispatcher.CodeConflict, Field: "id", Message: "a template has this id already"})
		return
	}
	c.saveTemplateAs(w, r, t, v)
}

func (c *Console) saveTemplate(w http.ResponseWriter, r *http.Request) {
	t, f := readTemplate(r)
	t.ID, f["id"] = r.PathValue("id"), r.PathValue("id")
	if _, err := c.st.Template(r.Context(), t.ID); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.saveTemplateAs(w, r, t, templateView{Form: f})
}

func (c *Console) saveTemplateAs(w http.ResponseWriter, r *http.Request, t *templates.Template, v templateView) {
	if t.Email == nil && t.SMS == nil {
		c.templatePage(w, r, http.StatusUnprocessableEntity, v, dispatcher.Invalid("email.subject", "a template needs an email or an SMS part"))
		return
	}
	if err := c.st.PutTemplate(r.Context(), t); err != nil {
		c.templatePage(w, r, statusOf(err), v, err)
		return
	}
	c.audit(r, "template.put", t.ID, fmt.Sprintf("version %d", t.Version))
	http.Redirect(w, r, c.cfg.Path+"/templates/"+t.ID+"?saved="+strconv.Itoa(t.Version), http.StatusSeeOther)
}
