package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/templates"
)

// A key with only the campaigns scope previews templates with sample
// data; a real contact's data, or whether a contact id exists, and counts
// that narrow by contact data need the contacts scope as well.
func TestPreviewAndCountNeedTheContactsScope(t *testing.T) {
	t.Parallel()
	b := setup(t, withBasics())
	ctx := context.Background()
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "ana", Email: "ana@example.com", Phone: "+33612345678",
		Attributes: map[string]string{"code": "s3cret"}}, "Europe/Paris"))
	must(t, b.d.Store.PutTemplate(ctx, &templates.Template{ID: "spy", Email: &templates.Email{
		Subject: "x", Text: "{{.Contact.Email}} {{.Contact.Phone}} {{.Attr.code}}", HTML: "<p>x</p>"}}))
	c := b.api

	for _, contact := range []string{"ana", "nobody"} {
		r := c.as("marketing", "POST", "/v1/templates/spy/preview", `{"channel":"email","contact":"`+contact+`"}`)
		if r.status != http.StatusForbidden || strings.Contains(string(r.body), "ana@example.com") || strings.Contains(string(r.body), "names no contact") {
			t.Errorf("campaigns-only preview with contact %q: %d %s, want 403", contact, r.status, string(r.body))
		} else if !strings.Contains(string(r.body), "contacts") {
			t.Errorf("the 403 does not name the contacts scope: %s", string(r.body))
		}
	}
	r := c.as("marketing", "POST", "/v1/templates/spy/preview", `{"channel":"email","data":{"code":"sample"}}`)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "sample") {
		t.Errorf("campaigns-only preview with sample data: %d %s", r.status, string(r.body))
	}
	r = c.do("POST", "/v1/templates/spy/preview", `{"channel":"email","contact":"ana"}`)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "ana@example.com") {
		t.Errorf("preview with contact by a key holding every scope: %d %s", r.status, string(r.body))
	}

	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "guess", Where: []dispatcher.Predicate{{Attr: "code", Op: "prefix", Value: "s"}}}))
	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "one", Contacts: []string{"ana"}}))
	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "everyone"}))
	for _, sg := range []string{"guess", "one"} {
		if r := c.as("marketing", "GET", "/v1/segments/"+sg+"/count", ""); r.status != http.StatusForbidden || strings.Contains(string(r.body), `"count"`) {
			t.Errorf("campaigns-only count of %s: %d %s, want 403", sg, r.status, string(r.body))
		}
		if r := c.do("GET", "/v1/segments/"+sg+"/count", ""); r.status != http.StatusOK || !strings.Contains(string(r.body), `"count":1`) {
			t.Errorf("count of %s with every scope: %d %s", sg, r.status, string(r.body))
		}
	}
	if r := c.as("marketing", "GET", "/v1/segments/everyone/count", ""); r.status != http.StatusOK {
		t.Errorf("campaigns-only count of the whole base: %d %s", r.status, string(r.body))
	}
}
