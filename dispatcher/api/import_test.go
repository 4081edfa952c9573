package api

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The import refuses, line by line, what PUT /v1/contacts/{id} and POST
// .../consents refuse: unknown fields and consents to unknown topics,
// writing nothing of the refused lines.
func TestAPIImportIsAsStrictAsTheAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.api
	if r := c.do("PUT", "/v1/topics/news", `{"kind":"marketing"}`); r.status != 200 {
		t.Fatalf("put topic: %d", r.status)
	}
	body := strings.Join([]string{
		`{"id":"i1","email":"i1@example.com","consents":[{"channel":"email","topic":"news","state":"granted"}]}`,
		`{"id":"i2","email":"i2@example.com","first_name":"Bo"}`,
		`{"id":"i3","email":"i3@example.com","consents":[{"channel":"email","topic":"promos","state":"granted"}]}`,
		`{"id":"i4","email":"i4@example.com","consents":[{"channel":"email","topic":"news","state":"granted","proof":"form-7"}]}`,
	}, "\n") + "\n"
	r := c.do("POST", "/v1/contacts/import", body)
	want := map[string]any{"lines": 4.0, "imported": 1.0, "failed": 3.0, "errors": []any{
		map[string]any{"line": 2.0, "field": "first_name", "message": "is not a known field"},
		map[string]any{"line": 3.0, "field": "consents[0].topic", "message": "names no topic"},
		map[string]any{"line": 4.0, "field": "consents[0].proof", "message": "is not a known field"},
	}}
	if diff := cmp.Diff(want, r.json(t)); r.status != 200 || diff != "" {
		t.Errorf("import: status %d (-want +got):\n%s", r.status, diff)
	}
	if r := c.do("GET", "/v1/contacts/i1/consents", ""); r.status != 200 || !strings.Contains(string(r.body), `"source":"import"`) {
		t.Errorf("i1's consents: %d %s", r.status, r.body)
	}
	for _, id := range []string{"i2", "i3", "i4"} {
		if r := c.do("GET", "/v1/contacts/"+id, ""); r.status != 404 {
			t.Errorf("refused contact %s: status %d, want 404", id, r.status)
		}
	}
	// The same contact through PUT is refused for the same field.
	if r := c.do("PUT", "/v1/contacts/i2", `{"email":"i2@example.com","first_name":"Bo"}`); r.status != 422 || !strings.Contains(string(r.body), `"field":"first_name"`) {
		t.Errorf("PUT with an unknown field: %d %s", r.status, r.body)
	}
}
