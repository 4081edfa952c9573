package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// scopedKeys has a legacy key without scopes and one key per scope; setup
// serves them beside testKeys.
var scopedKeys = []APIKey{
	{ID: "legacy", Secret: "legacy-secret-0123456789"},
	{ID: "marketing", Secret: "marketing-secret-0123456789", Scopes: []Scope{ScopeCampaigns}},
	{ID: "crm", Secret: "crm-secret-0123456789", Scopes: []Scope{ScopeContacts}},
	{ID: "shop", Secret: "shop-secret-0123456789", Scopes: []Scope{ScopeSends}},
	{ID: "dpo", Secret: "dpo-secret-0123456789", Scopes: []Scope{ScopePrivacy}},
}

func secretOf(id string) string {
	for _, k := range scopedKeys {
		if k.ID == id {
			return k.Secret
		}
	}
	panic("no key " + id)
}

// as calls the API with the key of id.
func (c *apiClient) as(id, method, path, body string) resp {
	c.t.Helper()
	return c.do(method, path, body, "Authorization", "Bearer "+secretOf(id))
}

func TestScopes(t *testing.T) {
	t.Parallel()
	c := setup(t).api
	// One representative route per scope; a key with the scope gets past
	// the check (whatever the handler then answers), the others get 403.
	routes := []struct {
		scope        Scope
		method, path string
		body         string
	}{
		{ScopeCampaigns, "GET", "/v1/topics", ""},
		{ScopeCampaigns, "POST", "/v1/campaigns/none/pause", ""},
		{ScopeContacts, "GET", "/v1/contacts/nobody", ""},
		{ScopeContacts, "POST", "/v1/contacts/nobody/consents", `{}`},
		{ScopeSends, "GET", "/v1/sends/none", ""},
		{ScopePrivacy, "POST", "/v1/suppressions/lookup", `{"channel":"email","address":"x@example.com"}`},
		{ScopePrivacy, "GET", "/v1/audit", ""},
		{ScopePrivacy, "GET", "/v1/register", ""},
	}
	keyScope := map[string]Scope{"marketing": ScopeCampaigns, "crm": ScopeContacts, "shop": ScopeSends, "dpo": ScopePrivacy}
	for _, rt := range routes {
		for _, key := range []string{"legacy", "marketing", "crm", "shop", "dpo"} {
			allowed := key == "legacy" || keyScope[key] == rt.scope
			t.Run(key+" "+rt.method+" "+rt.path, func(t *testing.T) {
				r := c.as(key, rt.method, rt.path, rt.body)
				if !allowed {
					if r.status != http.StatusForbidden {
						t.Fatalf("status %d, want 403: %s", r.status, r.body)
					}
					if diff := cmp.Diff(apiErr(dispatcher.CodeForbidden, ""), errorShape(r.json(t))); diff != "" {
						t.Errorf("body (-want +got):\n%s", diff)
					}
					if msg := r.json(t)["error"].(map[string]any)["message"].(string); !strings.Contains(msg, string(rt.scope)) {
						t.Errorf("message %q does not name the scope %s", msg, rt.scope)
					}
					return
				}
				if r.status == http.StatusForbidden || r.status == http.StatusUnauthorized {
					t.Fatalf("status %d with the %s scope: %s", r.status, rt.scope, r.body)
				}
			})
		}
	}
}

func TestScopeOf(t *testing.T) {
	t.Parallel()
	// Erasure and export are privacy matters whether or not their row in
	// the table declares a scope; every other route gets one from its path.
	tests := map[string]Scope{
		"DELETE /v1/contacts/{id}":        ScopePrivacy,
		"GET /v1/contacts/{id}/export":    ScopePrivacy,
		"GET /v1/contacts/{id}":           ScopeContacts,
		"POST /v1/contacts/import":        ScopeContacts,
		"POST /v1/contacts/{id}/consents": ScopeContacts,
		"PUT /v1/topics/{id}":             ScopeCampaigns,
		"PUT /v1/templates/{id}":          ScopeCampaigns,
		"PUT /v1/segments/{id}":           ScopeCampaigns,
		"POST /v1/campaigns":              ScopeCampaigns,
		"GET /v1/runs/{id}":               ScopeCampaigns,
		"POST /v1/sends":                  ScopeSends,
		"POST /v1/suppressions":           ScopePrivacy,
		"GET /v1/register":                ScopePrivacy,
		"GET /v1/something-new":           ScopePrivacy,
	}
	for pattern, want := range tests {
		if got := scopeOf(pattern, ""); got != want {
			t.Errorf("scopeOf(%q) = %s, want %s", pattern, got, want)
		}
	}
	if got := scopeOf("DELETE /v1/contacts/{id}", ScopeContacts); got != ScopeContacts {
		t.Errorf("a declared scope is overridden: %s", got)
	}
	if routeAudits["DELETE /v1/contacts/{id}"] != "contact.erase" {
		t.Error("erasure is not audited")
	}
}

// auditEntries reads the whole audit stream through the API.
func auditEntries(t *testing.T, c *apiClient) []storepkg.AuditEntry {
	t.Helper()
	r := c.as("dpo", "GET", "/v1/audit?limit=1000", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/audit: %d: %s", r.status, r.body)
	}
	var out struct{ Entries []storepkg.AuditEntry }
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Entries
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.api
	const email, phone = "audited.person@example.com", "+33612345678"
	calls := []struct {
		key, method, path, body string
		status                  int
	}{
		{"marketing", "PUT", "/v1/topics/news", `{"kind":"marketing"}`, 200},
		{"crm", "PUT", "/v1/contacts/c1", `{"email":"` + email + `","phone":"` + phone + `","attributes":{"first_name":"Ana"},"tags":["vip"]}`, 200},
		{"crm", "POST", "/v1/contacts/c1/consents", `{"channel":"email","topic":"news","state":"granted","evidence":{"form":"f1"}}`, 201},
		{"crm", "POST", "/v1/contacts/import", `{"id":"c2","email":"bo@example.com","tags":["vip"]}` + "\n", 200},
		{"marketing", "PUT", "/v1/templates/t1", `{"email":{"subject":"Hi","text":"Hello"}}`, 200},
		{"marketing", "PUT", "/v1/segments/vips", `{"tags_all":["vip"]}`, 200},
		{"marketing", "POST", "/v1/campaigns", `{"id":"spring","topic":"news","segment":"vips","channels":["email"],"templates":{"email":"t1"}}`, 201},
		{"marketing", "POST", "/v1/campaigns/spring/schedule", `{"at":"2099-01-01T10:00:00Z"}`, 200},
		{"marketing", "POST", "/v1/campaigns/spring/pause", "", 200},
		{"marketing", "POST", "/v1/campaigns/spring/cancel", "", 200},
		{"dpo", "POST", "/v1/suppressions", `{"channel":"email","address":"` + email + `","reason":"unsubscribe"}`, 201},
		{"dpo", "DELETE", "/v1/suppressions", `{"channel":"email","address":"` + email + `"}`, 204},
		// Reads are not recorded.
		{"crm", "GET", "/v1/contacts/c1", "", 200},
		{"dpo", "POST", "/v1/suppressions/lookup", `{"channel":"email","address":"` + email + `"}`, 404},
	}
	for _, call := range calls {
		if r := c.as(call.key, call.method, call.path, call.body); r.status != call.status {
			t.Fatalf("%s %s: status %d, want %d: %s", call.method, call.path, r.status, call.status, r.body)
		}
	}
	hash := b.d.Store.AddressHash("email", email)
	want := []storepkg.AuditEntry{
		{Key: "dpo", Action: "suppression.remove", Target: hash, Detail: "email"},
		{Key: "dpo", Action: "suppression.add", Target: hash, Detail: "email"},
		{Key: "marketing", Action: "campaign.cancel", Target: "spring"},
		{Key: "marketing", Action: "campaign.pause", Target: "spring"},
		{Key: "marketing", Action: "campaign.schedule", Target: "spring"},
		{Key: "marketing", Action: "campaign.create", Target: "spring"},
		{Key: "marketing", Action: "segment.put", Target: "vips"},
		{Key: "marketing", Action: "template.put", Target: "t1"},
		{Key: "crm", Action: "contact.import", Detail: "imported 1, failed 0"},
		{Key: "crm", Action: "consent.record", Target: "c1", Detail: "news email granted"},
		{Key: "crm", Action: "contact.upsert", Target: "c1"},
		{Key: "marketing", Action: "topic.put", Target: "news"},
	}
	got := auditEntries(t, c)
	for i := range got {
		if got[i].ID == "" || got[i].At.IsZero() {
			t.Errorf("entry %d has no id or time: %+v", i, got[i])
		}
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b storepkg.AuditEntry) bool {
		return a.Key == b.Key && a.Action == b.Action && a.Target == b.Target && a.Detail == b.Detail
	})); diff != "" {
		t.Errorf("audit entries (-want +got):\n%s", diff)
	}

	// No personal value anywhere in the stream.
	msgs, err := b.redis.Client.XRange(context.Background(), b.cfg.Prefix+":audit", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(want) {
		t.Fatalf("%d entries in the stream, want %d", len(msgs), len(want))
	}
	for _, m := range msgs {
		for k, v := range m.Values {
			s, _ := v.(string)
			for _, personal := range []string{email, "audited.person", phone, "bo@example.com", "Ana", "f1"} {
				if strings.Contains(s, personal) {
					t.Errorf("audit entry %s field %s holds a personal value: %q", m.ID, k, s)
				}
			}
		}
	}

	// Paging back from the newest entry.
	r := c.as("dpo", "GET", "/v1/audit?limit=2&before="+msgs[len(msgs)-1].ID, "")
	var page struct{ Entries []storepkg.AuditEntry }
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Entries) != 2 || page.Entries[0].Action != "suppression.add" {
		t.Errorf("page before the newest entry: %d %s", r.status, r.body)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "before=x"} {
		if r := c.as("dpo", "GET", "/v1/audit?"+q, ""); r.status != http.StatusUnprocessableEntity {
			t.Errorf("GET /v1/audit?%s: status %d, want 422", q, r.status)
		}
	}
}

func TestAuditSkipsFailures(t *testing.T) {
	t.Parallel()
	c := setup(t).api
	calls := []struct {
		key, method, path, body string
		status                  int
	}{
		{"marketing", "PUT", "/v1/topics/news", `{"kind":"neither"}`, 422},
		{"crm", "PUT", "/v1/contacts/c1", `{"email":"not an address"}`, 422},
		{"crm", "POST", "/v1/contacts/c1/consents", `{"channel":"email","topic":"none","state":"granted"}`, 422},
		{"marketing", "POST", "/v1/campaigns", `{"id":"spring","topic":"none"}`, 422},
		{"marketing", "POST", "/v1/campaigns/none/pause", "", 404},
		{"dpo", "POST", "/v1/suppressions", `{"channel":"email","address":"bad"}`, 422},
		// Forbidden and unauthenticated calls never reach the handler.
		{"crm", "PUT", "/v1/topics/news", `{"kind":"marketing"}`, 403},
	}
	for _, call := range calls {
		if r := c.as(call.key, call.method, call.path, call.body); r.status != call.status {
			t.Fatalf("%s %s: status %d, want %d: %s", call.method, call.path, r.status, call.status, r.body)
		}
	}
	if r := c.do("PUT", "/v1/topics/news", `{"kind":"marketing"}`, "Authorization", "Bearer wrong-secret-0123456789"); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong key: status %d", r.status)
	}
	if got := auditEntries(t, c); len(got) != 0 {
		t.Errorf("failed calls were recorded: %+v", got)
	}
}

func TestKeyIDInContext(t *testing.T) {
	t.Parallel()
	if KeyID(context.Background()) != "" {
		t.Error("a key id outside a request")
	}
	if got := KeyID(withKey(context.Background(), APIKey{ID: "crm"})); got != "crm" {
		t.Errorf("KeyID = %q", got)
	}
}

// Erasure and export live under /v1/contacts but need the privacy scope;
// an erasure is audited.
func TestErasureScopeAndAudit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.api
	const email = "erased.person@example.com"
	if r := c.as("crm", "PUT", "/v1/contacts/c1", `{"email":"`+email+`"}`); r.status != http.StatusOK {
		t.Fatalf("upsert: %d %s", r.status, r.body)
	}
	for _, call := range []struct{ method, path string }{{"DELETE", "/v1/contacts/c1"}, {"GET", "/v1/contacts/c1/export"}} {
		if r := c.as("crm", call.method, call.path, ""); r.status != http.StatusForbidden {
			t.Errorf("%s %s with the contacts scope: status %d, want 403", call.method, call.path, r.status)
		}
	}
	if r := c.as("dpo", "GET", "/v1/contacts/c1/export", ""); r.status != http.StatusOK {
		t.Fatalf("export: %d %s", r.status, r.body)
	}
	if r := c.as("dpo", "DELETE", "/v1/contacts/c1", ""); r.status != http.StatusOK {
		t.Fatalf("erase: %d %s", r.status, r.body)
	}
	got := auditEntries(t, c)
	want := []storepkg.AuditEntry{{Key: "dpo", Action: "contact.erase", Target: "c1"}, {Key: "crm", Action: "contact.upsert", Target: "c1"}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b storepkg.AuditEntry) bool {
		return a.Key == b.Key && a.Action == b.Action && a.Target == b.Target && a.Detail == b.Detail
	})); diff != "" {
		t.Errorf("audit entries (-want +got):\n%s", diff)
	}
	for _, e := range got {
		if strings.Contains(e.Target+e.Detail, email) {
			t.Errorf("audit entry %+v holds the address", e)
		}
	}
}
