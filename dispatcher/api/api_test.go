package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle/redistest"
)

const testSecret = "test-api-secret-0123456789"

var testKeys = []APIKey{{ID: "other", Secret: "other-secret-0123456789"}, {ID: "ops", Secret: testSecret}}

// apiClient calls a bundle's server (testBundle.api).
type apiClient struct {
	t   testing.TB
	srv *httptest.Server
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body is not a JSON object: %v: %q", err, r.body)
	}
	return v
}

// do sends a request with the test API key; hdr holds extra headers
// (an "Authorization" entry replaces the key, "" removes it).
func (c *apiClient) do(method, path, body string, hdr ...string) resp {
	c.t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testSecret)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := cl.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// ignoreTimes drops the fields that hold the clock's reading.
var ignoreTimes = cmpopts.IgnoreMapEntries(func(k string, _ any) bool {
	switch k {
	case "created_at", "updated_at", "at", "fire_at", "last_fire", "scheduled_at":
		return true
	}
	return false
})

func jsonValue(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad want %q: %v", s, err)
	}
	return v
}

func apiErr(code, field string) map[string]any {
	e := map[string]any{"code": code}
	if field != "" {
		e["field"] = field
	}
	return map[string]any{"error": e}
}

// errorShape keeps code and field of an error body: messages are for
// people and may change.
func errorShape(v map[string]any) map[string]any {
	e, ok := v["error"].(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{"code": e["code"]}
	if f, ok := e["field"]; ok {
		out["field"] = f
	}
	if m, _ := e["message"].(string); m == "" {
		out["message"] = "MISSING"
	}
	return map[string]any{"error": out}
}

// refusal is a GET the API refuses: 404 (not found), or 422 (invalid)
// naming field.
type refusal struct {
	path   string
	status int
	field  string
}

// wantRefused checks that each GET answers its refusal's status and
// error.
func wantRefused(t *testing.T, c *apiClient, refusals []refusal) {
	t.Helper()
	for _, tt := range refusals {
		r := c.do("GET", tt.path, "")
		code := dispatcher.CodeInvalid
		if tt.status == http.StatusNotFound {
			code = dispatcher.CodeNotFound
		}
		if diff := cmp.Diff(apiErr(code, tt.field), errorShape(r.json(t))); r.status != tt.status || diff != "" {
			t.Errorf("GET %s: %d, want %d (-want +got):\n%s", tt.path, r.status, tt.status, diff)
		}
	}
}

func TestParseAPIKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []APIKey
		wantErr string
	}{
		{in: "ops:0123456789abcdef", want: []APIKey{{ID: "ops", Secret: "0123456789abcdef"}}},
		{in: " ops:0123456789abcdef , ci:fedcba9876543210:campaigns+sends ", want: []APIKey{{ID: "ops", Secret: "0123456789abcdef"},
			{ID: "ci", Secret: "fedcba9876543210", Scopes: []Scope{ScopeCampaigns, ScopeSends}}}},
		{in: "dpo:0123456789abcdef:privacy", want: []APIKey{{ID: "dpo", Secret: "0123456789abcdef", Scopes: []Scope{ScopePrivacy}}}},
		{in: "ci:fedcba9876543210:x", wantErr: `MISSIVE_API_KEYS: entry 1 (id "ci"): the text after the last colon is not a scope list`},
		{in: "ci:0123456789abcdef:fedcba9876543210", wantErr: "a secret cannot contain a colon"},
		{in: "ci:0123456789abcdef:", wantErr: "is not a scope list"},
		{in: "ci:0123456789abcdef:sends+sends", wantErr: "scope sends is listed twice"},
		{in: "ci:short:contacts", wantErr: "the secret must be at least 16 characters"},
		{in: "", wantErr: "MISSIVE_API_KEYS: no keys"},
		{in: "ops:0123456789abcdef,,", wantErr: "MISSIVE_API_KEYS: entry 2 is empty"},
		{in: "ops0123456789abcdef", wantErr: "MISSIVE_API_KEYS: entry 1 is not id:secret"},
		{in: "ops:0123456789abcdef,ci:short-secret", wantErr: `MISSIVE_API_KEYS: entry 2 (id "ci"): the secret must be at least 16 characters`},
		{in: "ops:0123456789abcdef,ops:fedcba9876543210", wantErr: `MISSIVE_API_KEYS: entry 2: id "ops" is used twice`},
		{in: "ops:0123456789abcdef,ci:0123456789abcdef", wantErr: `MISSIVE_API_KEYS: entry 2 (id "ci"): the secret is used by another key`},
		{in: "o{p}s:0123456789abcdef", wantErr: "MISSIVE_API_KEYS: entry 1: the id must be"},
		{in: "ops:0123456789 abcdef", wantErr: "must not contain spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAPIKeys(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				for _, secret := range []string{"0123456789abcdef", "fedcba9876543210", "short-secret"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q shows a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAPIAuth(t *testing.T) {
	t.Parallel()
	c := setup(t).api
	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"wrong key", "Bearer not-the-secret-at-all", http.StatusUnauthorized},
		{"prefix of the key", "Bearer " + testSecret[:20], http.StatusUnauthorized},
		{"basic scheme", "Basic " + testSecret, http.StatusUnauthorized},
		{"right key", "Bearer " + testSecret, http.StatusOK},
		{"second key, lower-case scheme", "bearer other-secret-0123456789", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do("GET", "/v1/topics", "", "Authorization", tt.auth)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == http.StatusUnauthorized {
				if diff := cmp.Diff(apiErr(dispatcher.CodeUnauthorized, ""), errorShape(r.json(t))); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
		})
	}
	// Public routes need no key.
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := c.do("GET", path, "", "Authorization", ""); r.status != http.StatusOK {
			t.Errorf("GET %s: status %d", path, r.status)
		}
	}
}

// step is one call of a scenario: want is compared with the JSON answer
// (times ignored) unless check is set.
type step struct {
	name   string
	method string
	path   string
	body   string
	status int
	want   string
	check  func(t *testing.T, v map[string]any)
}

func runSteps(t *testing.T, c *apiClient, vars map[string]string, steps []step) {
	t.Helper()
	for _, s := range steps {
		path := s.path
		for k, v := range vars {
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		}
		r := c.do(s.method, path, s.body)
		if r.status != s.status {
			t.Errorf("%s: %s %s: status %d, want %d: %s", s.name, s.method, s.path, r.status, s.status, r.body)
			continue
		}
		if s.status == http.StatusNoContent {
			continue
		}
		got := r.json(t)
		switch {
		case s.check != nil:
			s.check(t, got)
		case s.want != "":
			if diff := cmp.Diff(jsonValue(t, s.want), got, ignoreTimes); diff != "" {
				t.Errorf("%s: %s %s (-want +got):\n%s", s.name, s.method, s.path, diff)
			}
		}
	}
}

func TestAPIHappyPaths(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.api
	vars := map[string]string{}
	runSteps(t, c, vars, []step{
		{name: "put topic", method: "PUT", path: "/v1/topics/newsletter", body: `{"kind":"marketing","name":"News"}`, status: 200,
			want: `{"id":"newsletter","name":"News","kind":"marketing"}`},
		{name: "put topic with its id", method: "PUT", path: "/v1/topics/orders", body: `{"id":"orders","kind":"transactional"}`, status: 200,
			want: `{"id":"orders","name":"orders","kind":"transactional"}`},
		{name: "list topics", method: "GET", path: "/v1/topics", status: 200,
			want: `{"topics":[{"id":"newsletter","name":"News","kind":"marketing"},{"id":"orders","name":"orders","kind":"transactional"}]}`},
		{name: "upsert contact", method: "PUT", path: "/v1/contacts/c1",
			body:   `{"email":"Ana@Example.COM","phone":"+33 6 12 34 56 78","attributes":{"first_name":"Ana"},"tags":["VIP"]}`,
			status: 200,
			want:   `{"id":"c1","email":"Ana@example.com","phone":"+33612345678","timezone":"Europe/Paris","attributes":{"first_name":"Ana"},"tags":["vip"]}`},
		{name: "get contact", method: "GET", path: "/v1/contacts/c1", status: 200,
			want: `{"id":"c1","email":"Ana@example.com","phone":"+33612345678","timezone":"Europe/Paris","attributes":{"first_name":"Ana"},"tags":["vip"]}`},
		{name: "import", method: "POST", path: "/v1/contacts/import", status: 200,
			body: `{"id":"c2","email":"bo@example.com","tags":["vip"]}` + "\n" +
				`{"id":"c3","email":"cy@example.com","consents":[{"channel":"email","topic":"newsletter","state":"granted"}]}` + "\n\n" +
				`{"id":"c4","email":"not an address"}` + "\n",
			want: `{"lines":3,"imported":2,"failed":1,"errors":[{"line":4,"field":"email","message":"is not a valid email address"}]}`},
		{name: "grant consent", method: "POST", path: "/v1/contacts/c1/consents", status: 201,
			body: `{"channel":"email","topic":"newsletter","state":"granted","evidence":{"form":"signup-v3"}}`,
			want: `{"channel":"email","topic":"newsletter","state":"granted","source":"api","evidence":{"form":"signup-v3"}}`},
		{name: "consents", method: "GET", path: "/v1/contacts/c1/consents", status: 200,
			want: `{"current":{"email/newsletter":{"state":"granted","source":"api"}},"preferences":{},
				"ledger":[{"channel":"email","topic":"newsletter","state":"granted","source":"api","evidence":{"form":"signup-v3"}}]}`},
		{name: "put template", method: "PUT", path: "/v1/templates/news", status: 200,
			body: `{"email":{"subject":"Hi {{.Attr.first_name}}","text":"Hello {{.Attr.first_name}}"},"sms":{"body":"Hi {{.Attr.first_name}}"}}`,
			want: `{"id":"news","version":1,"email":{"subject":"Hi {{.Attr.first_name}}","text":"Hello {{.Attr.first_name}}"},"sms":{"body":"Hi {{.Attr.first_name}}"}}`},
		{name: "put template again", method: "PUT", path: "/v1/templates/news", status: 200,
			body: `{"id":"news","version":1,"email":{"subject":"Hi {{.Attr.first_name}}","text":"Hello {{.Attr.first_name}}!"},"sms":{"body":"Hi {{.Attr.first_name}}"}}`,
			want: `{"id":"news","version":2,"email":{"subject":"Hi {{.Attr.first_name}}","text":"Hello {{.Attr.first_name}}!"},"sms":{"body":"Hi {{.Attr.first_name}}"}}`},
		{name: "get template", method: "GET", path: "/v1/templates/news", status: 200,
			check: func(t *testing.T, v map[string]any) {
				if v["version"] != 2.0 {
					t.Errorf("template version %v, want 2", v["version"])
				}
			}},
		{name: "preview email for a contact", method: "POST", path: "/v1/templates/news/preview", status: 200,
			body: `{"channel":"email","contact":"c1"}`,
			check: func(t *testing.T, v map[string]any) {
				text, _ := v["text"].(string)
				if v["subject"] != "Hi Ana" || !strings.HasPrefix(text, "Hello Ana!") || !strings.Contains(text, templates.PreviewUnsubscribeURL) {
					t.Errorf("preview: %v", v)
				}
			}},
		{name: "preview sms with data", method: "POST", path: "/v1/templates/news/preview", status: 200,
			body: `{"channel":"sms","data":{"first_name":"Bob"}}`,
			want: `{"template":"news","version":2,"channel":"sms","sms":"Hi Bob\nSTOP: reply STOP to opt out",
				"segments":{"encoding":"GSM-7","units":34,"parts":1}}`},
		{name: "put segment", method: "PUT", path: "/v1/segments/vips", body: `{"tags_all":["vip"]}`, status: 200,
			want: `{"id":"vips","tags_all":["vip"]}`},
		{name: "get segment", method: "GET", path: "/v1/segments/vips", status: 200, want: `{"id":"vips","tags_all":["vip"]}`},
		{name: "count segment", method: "GET", path: "/v1/segments/vips/count", status: 200, want: `{"segment":"vips","count":2}`},
		{name: "create campaign", method: "POST", path: "/v1/campaigns", status: 201,
			body: `{"id":"spring","topic":"newsletter","segment":"vips","channels":["email"],"templates":{"email":"news"}}`,
			want: `{"id":"spring","topic":"newsletter","segment":"vips","channels":["email"],"templates":{"email":"news"},"state":"draft"}`},
		{name: "get campaign", method: "GET", path: "/v1/campaigns/spring", status: 200,
			want: `{"id":"spring","topic":"newsletter","segment":"vips","channels":["email"],"templates":{"email":"news"},"state":"draft"}`},
		{name: "list campaigns", method: "GET", path: "/v1/campaigns", status: 200,
			want: `{"campaigns":[{"id":"spring","topic":"newsletter","segment":"vips","channels":["email"],"templates":{"email":"news"},"state":"draft"}]}`},
		{name: "schedule", method: "POST", path: "/v1/campaigns/spring/schedule", body: `{"at":"2099-01-01T10:00:00Z"}`, status: 200,
			want: `{"id":"spring","topic":"newsletter","segment":"vips","channels":["email"],"templates":{"email":"news"},"state":"scheduled",
				"schedule":{"at":"2099-01-01T10:00:00Z"},"next_fires":["2099-01-01T10:00:00Z"]}`},
		{name: "pause", method: "POST", path: "/v1/campaigns/spring/pause", status: 200,
			check: func(t *testing.T, v map[string]any) {
				if v["state"] != "paused" {
					t.Errorf("state %v, want paused", v["state"])
				}
			}},
		{name: "resume", method: "POST", path: "/v1/campaigns/spring/resume", status: 200,
			check: func(t *testing.T, v map[string]any) {
				if v["state"] != "scheduled" {
					t.Errorf("state %v, want scheduled: no run was under way", v["state"])
				}
			}},
		{name: "start", method: "POST", path: "/v1/campaigns/spring/start", status: 202,
			check: func(t *testing.T, v map[string]any) {
				run, _ := v["run"].(string)
				if !strings.HasPrefix(run, "spring-") || len(v) != 2 || v["created"] != true {
					t.Errorf("start answered %v", v)
				}
				vars["run"] = run
			}},
		{name: "stats", method: "GET", path: "/v1/campaigns/spring/stats", status: 200,
			check: func(t *testing.T, v map[string]any) {
				runs, _ := v["runs"].([]any)
				if len(runs) != 1 || runs[0].(map[string]any)["id"] != vars["run"] {
					t.Errorf("stats: %v", v)
				}
			}},
		{name: "get run", method: "GET", path: "/v1/runs/{run}", status: 200,
			check: func(t *testing.T, v map[string]any) {
				if v["id"] != vars["run"] || v["campaign"] != "spring" || v["decisions"] == nil {
					t.Errorf("run: %v", v)
				}
			}},
		{name: "cancel", method: "POST", path: "/v1/campaigns/spring/cancel", status: 200,
			check: func(t *testing.T, v map[string]any) {
				if v["state"] != "cancelled" {
					t.Errorf("state %v, want cancelled", v["state"])
				}
			}},
		{name: "suppress", method: "POST", path: "/v1/suppressions", status: 201,
			body: `{"channel":"email","address":"Gone@Example.com","reason":"bounce"}`, want: `{"reason":"bounce"}`},
		{name: "suppress for a while", method: "POST", path: "/v1/suppressions", status: 201,
			body: `{"channel":"sms","address":"+33612345670","reason":"stop","until":"2099-01-01T00:00:00Z"}`,
			want: `{"reason":"stop","until":"2099-01-01T00:00:00Z"}`},
		{name: "lookup", method: "POST", path: "/v1/suppressions/lookup", status: 200,
			body: `{"channel":"email","address":"gone@example.com"}`, want: `{"reason":"bounce"}`},
		{name: "unsuppress", method: "DELETE", path: "/v1/suppressions", status: 204,
			body: `{"channel":"email","address":"gone@example.com"}`},
		{name: "lookup after delete", method: "POST", path: "/v1/suppressions/lookup", status: 404,
			body: `{"channel":"email","address":"gone@example.com"}`, check: func(t *testing.T, v map[string]any) {
				if diff := cmp.Diff(apiErr(dispatcher.CodeNotFound, ""), errorShape(v)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			}},
	})

	// The suppression list holds no address, only its keyed hash.
	keys, err := b.redis.Client.Keys(context.Background(), b.cfg.Prefix+":sup:*").Result()
	must(t, err)
	for _, k := range keys {
		v, _ := b.redis.Client.Get(context.Background(), k).Result()
		if strings.Contains(k+v, "33612345670") {
			t.Errorf("suppression record %s holds the number", k)
		}
	}
	if r := c.do("GET", "/healthz", ""); r.status != 200 || string(r.body) != "ok\n" {
		t.Errorf("healthz: %d %q", r.status, r.body)
	}
	if r := c.do("GET", "/readyz", ""); r.status != 200 {
		t.Errorf("readyz: %d %q", r.status, r.body)
	}
	// Requests are logged by route pattern, never by path.
	logs := b.logs.String()
	if !strings.Contains(logs, `route="PUT /v1/contacts/{id}"`) || !strings.Contains(logs, "status=201") {
		t.Errorf("request log lacks route or status:\n%s", logs)
	}
	for _, pii := range []string{"Ana@", "ana@", "+33612345678", "bo@example.com", "/v1/contacts/c1"} {
		if strings.Contains(logs, pii) {
			t.Errorf("logs contain %q", pii)
		}
	}
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, withBasics())
	c := b.api
	ctx := context.Background()
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "c1", Email: "c1@example.com"}, "Europe/Paris"))
	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "all"}))
	camp := `{"id":"dup","topic":"newsletter","segment":"all","channels":["email"],"templates":{"email":"news-mail"}}`
	if r := c.do("POST", "/v1/campaigns", camp); r.status != 201 {
		t.Fatalf("create campaign: %d %s", r.status, r.body)
	}
	big := `{"email":"` + strings.Repeat("a", maxJSONBody) + `@example.com"}`

	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code, field              string
	}{
		{"bad email", "PUT", "/v1/contacts/x", `{"email":"not-an-address"}`, nil, 422, dispatcher.CodeInvalid, "email"},
		{"display name in email", "PUT", "/v1/contacts/x", `{"email":"Ana <ana@example.com>"}`, nil, 422, dispatcher.CodeInvalid, "email"},
		{"bad phone", "PUT", "/v1/contacts/x", `{"phone":"0612345678"}`, nil, 422, dispatcher.CodeInvalid, "phone"},
		{"unknown field", "PUT", "/v1/contacts/x", `{"emial":"a@example.com"}`, nil, 422, dispatcher.CodeInvalid, "emial"},
		{"id in contact body", "PUT", "/v1/contacts/x", `{"id":"y"}`, nil, 422, dispatcher.CodeInvalid, "id"},
		{"wrong type", "PUT", "/v1/contacts/x", `{"tags":"vip"}`, nil, 422, dispatcher.CodeInvalid, "tags"},
		{"wrong nested type", "PUT", "/v1/contacts/x", `{"attributes":{"age":42}}`, nil, 422, dispatcher.CodeInvalid, "attributes"},
		{"bad id", "PUT", "/v1/contacts/a%20b", `{}`, nil, 422, dispatcher.CodeInvalid, "id"},
		{"bad timezone", "PUT", "/v1/contacts/x", `{"timezone":"Mars/Olympus"}`, nil, 422, dispatcher.CodeInvalid, "timezone"},
		{"malformed JSON", "PUT", "/v1/contacts/x", `{"email":`, nil, 422, dispatcher.CodeInvalid, "body"},
		{"empty body", "PUT", "/v1/contacts/x", ``, nil, 422, dispatcher.CodeInvalid, "body"},
		{"trailing data", "PUT", "/v1/contacts/x", `{} {}`, nil, 422, dispatcher.CodeInvalid, "body"},
		{"too large", "PUT", "/v1/contacts/x", big, nil, 413, dispatcher.CodeTooLarge, "body"},
		{"bad consent channel", "POST", "/v1/contacts/c1/consents", `{"channel":"fax","topic":"newsletter","state":"granted"}`, nil, 422, dispatcher.CodeInvalid, "channel"},
		{"consent for no topic", "POST", "/v1/contacts/c1/consents", `{"channel":"email","topic":"nope","state":"granted"}`, nil, 422, dispatcher.CodeInvalid, "topic"},
		{"consent of no contact", "POST", "/v1/contacts/nobody/consents", `{"channel":"email","topic":"newsletter","state":"granted"}`, nil, 404, dispatcher.CodeNotFound, ""},
		{"bad topic kind", "PUT", "/v1/topics/t", `{"kind":"spam"}`, nil, 422, dispatcher.CodeInvalid, "kind"},
		{"topic id mismatch", "PUT", "/v1/topics/t", `{"id":"u","kind":"marketing"}`, nil, 422, dispatcher.CodeInvalid, "id"},
		{"template error", "PUT", "/v1/templates/t", `{"email":{"subject":"{{call .X}}","text":"x"}}`, nil, 422, dispatcher.CodeInvalid, "email.subject"},
		{"preview bad channel", "POST", "/v1/templates/news-mail/preview", `{"channel":"fax"}`, nil, 422, dispatcher.CodeInvalid, "channel"},
		{"preview missing part", "POST", "/v1/templates/news-mail/preview", `{"channel":"sms"}`, nil, 422, dispatcher.CodeInvalid, "channel"},
		{"bad predicate", "PUT", "/v1/segments/s", `{"where":[{"attr":"a","op":"like"}]}`, nil, 422, dispatcher.CodeInvalid, "where[0].op"},
		{"campaign for no topic", "POST", "/v1/campaigns", `{"id":"c","topic":"nope","segment":"all","channels":["email"],"templates":{"email":"news-mail"}}`, nil, 422, dispatcher.CodeInvalid, "topic"},
		{"campaign bad channel", "POST", "/v1/campaigns", `{"id":"c","topic":"newsletter","segment":"all","channels":["fax"],"templates":{"email":"news-mail"}}`, nil, 422, dispatcher.CodeInvalid, "channels[0]"},
		{"campaign time type", "POST", "/v1/campaigns/dup/schedule", `{"at":"tomorrow"}`, nil, 422, dispatcher.CodeInvalid, "body"},
		{"bad cron", "POST", "/v1/campaigns/dup/schedule", `{"cron":"every day"}`, nil, 422, dispatcher.CodeInvalid, "schedule.cron"},
		{"campaign exists", "POST", "/v1/campaigns", camp, nil, 409, dispatcher.CodeConflict, ""},
		{"resume a draft", "POST", "/v1/campaigns/dup/resume", ``, nil, 409, dispatcher.CodeConflict, ""},
		{"suppress bad channel", "POST", "/v1/suppressions", `{"channel":"fax","address":"x","reason":"bounce"}`, nil, 422, dispatcher.CodeInvalid, "channel"},
		{"suppress bad address", "POST", "/v1/suppressions", `{"channel":"sms","address":"12","reason":"stop"}`, nil, 422, dispatcher.CodeInvalid, "address"},
		{"suppress bad reason", "POST", "/v1/suppressions", `{"channel":"email","address":"a@example.com","reason":"dislike"}`, nil, 422, dispatcher.CodeInvalid, "reason"},
		{"suppress in the past", "POST", "/v1/suppressions", `{"channel":"email","address":"a@example.com","reason":"bounce","until":"2001-01-01T00:00:00Z"}`, nil, 422, dispatcher.CodeInvalid, "until"},
		{"delete takes no reason", "DELETE", "/v1/suppressions", `{"channel":"email","address":"a@example.com","reason":"bounce"}`, nil, 422, dispatcher.CodeInvalid, "reason"},
		{"send without key", "POST", "/v1/sends", `{"contact":"c1","topic":"orders","channel":"email","template":"news-mail"}`, nil, 422, dispatcher.CodeInvalid, "Idempotency-Key"},
		{"send with a long key", "POST", "/v1/sends", `{"contact":"c1","topic":"orders","channel":"email","template":"news-mail"}`, []string{"Idempotency-Key", strings.Repeat("k", 129)}, 422, dispatcher.CodeInvalid, "Idempotency-Key"},
		{"send bad channel", "POST", "/v1/sends", `{"contact":"c1","topic":"orders","channel":"fax","template":"news-mail"}`, []string{"Idempotency-Key", "k1"}, 422, dispatcher.CodeInvalid, "channel"},
		{"send to no contact", "POST", "/v1/sends", `{"contact":"nobody","topic":"orders","channel":"email","template":"news-mail"}`, []string{"Idempotency-Key", "k2"}, 422, dispatcher.CodeInvalid, "contact"},
		{"send without a part", "POST", "/v1/sends", `{"contact":"c1","topic":"orders","channel":"sms","template":"news-mail"}`, []string{"Idempotency-Key", "k3"}, 422, dispatcher.CodeInvalid, "template"},
		{"no contact", "GET", "/v1/contacts/nobody", ``, nil, 404, dispatcher.CodeNotFound, ""},
		{"no consents", "GET", "/v1/contacts/nobody/consents", ``, nil, 404, dispatcher.CodeNotFound, ""},
		{"no template", "GET", "/v1/templates/nope", ``, nil, 404, dispatcher.CodeNotFound, ""},
		{"no segment", "GET", "/v1/segments/nope/count", ``, nil, 404, dispatcher.CodeNotFound, ""},
		{"no campaign", "GET", "/v1/campaigns/nope", ``, nil, 404, dispatcher.CodeNotFound, ""},
		{"no stats", "GET", "/v1/campaigns/nope/stats", ``, nil, 404, dispatcher.CodeNotFound, ""},
		{"start no campaign", "POST", "/v1/campaigns/nope/start", ``, nil, 404, dispatcher.CodeNotFound, ""},
		{"no run", "GET", "/v1/runs/nope", ``, nil, 404, dispatcher.CodeNotFound, ""},
		{"no send", "GET", "/v1/sends/run~abc", ``, nil, 404, dispatcher.CodeNotFound, ""},
		{"no route", "GET", "/v1/nothing", ``, nil, 404, dispatcher.CodeNotFound, ""},
		{"wrong method", "DELETE", "/v1/topics", ``, nil, 405, "method_not_allowed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do(tt.method, tt.path, tt.body, tt.hdr...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if diff := cmp.Diff(apiErr(tt.code, tt.field), errorShape(r.json(t))); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			for _, v := range []string{"not-an-address", "0612345678", "ana@example.com", "a@example.com"} {
				if strings.Contains(tt.body, v) && strings.Contains(string(r.body), v) {
					t.Errorf("error echoes the value %q: %s", v, r.body)
				}
			}
		})
	}

	t.Run("missing variable in preview", func(t *testing.T) {
		must(t, b.d.Store.PutTemplate(ctx, &templates.Template{ID: "strict", Email: &templates.Email{
			Subject: "Hello", Text: "Hi\n{{.Attr.first_name}}"}}))
		r := c.do("POST", "/v1/templates/strict/preview", `{"channel":"email","data":{"last_name":"X"}}`)
		want := map[string]any{"error": map[string]any{"code": "invalid", "field": "email.text",
			"message": `line 2: missing variable "first_name"`}}
		if diff := cmp.Diff(want, r.json(t)); r.status != 422 || diff != "" {
			t.Errorf("status %d (-want +got):\n%s", r.status, diff)
		}
	})
}

// Not parallel: it lowers the import limit, a package variable every
// handler reads. Parallel tests start only once the serial ones are done,
// so none of them sees the lowered limit.
func TestAPIImportTooLarge(t *testing.T) {
	b := setup(t)
	old := maxImportBody
	maxImportBody = 1 << 10
	t.Cleanup(func() { maxImportBody = old })
	var body strings.Builder
	for i := range 100 {
		body.WriteString(`{"id":"big` + string(rune('a'+i%26)) + `"}` + "\n")
	}
	r := b.api.do("POST", "/v1/contacts/import", body.String())
	if diff := cmp.Diff(apiErr(dispatcher.CodeTooLarge, "body"), errorShape(r.json(t))); r.status != 413 || diff != "" {
		t.Errorf("status %d (-want +got):\n%s", r.status, diff)
	}
}

func TestCountSegmentStreamsChunks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var lines strings.Builder
	const n = 1234 // several chunks and a partial one
	for i := range n {
		tag := "even"
		if i%2 == 1 {
			tag = "odd"
		}
		fmt.Fprintf(&lines, `{"id":"c%05d","tags":[%q]}`+"\n", i, tag)
	}
	res, err := b.d.Store.ImportContacts(ctx, strings.NewReader(lines.String()), "Europe/Paris", nil)
	must(t, err)
	if res.Imported != n {
		t.Fatalf("imported %d", res.Imported)
	}
	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "odd", TagsAll: []string{"odd"}}))
	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "all"}))
	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "static", Contacts: []string{"c00001", "c00002", "c00003", "gone"}, TagsAll: []string{"odd"}}))
	for id, want := range map[string]int64{"odd": n / 2, "all": n, "static": 2} {
		got, err := b.d.Store.CountSegment(ctx, id)
		if err != nil || got != want {
			t.Errorf("CountSegment(%s) = %d, %v; want %d", id, got, err, want)
		}
	}
}

// sendSetup seeds a transactional topic, an order template and a contact.
func sendSetup(t *testing.T, b *testBundle) {
	ctx := context.Background()
	s := b.d.Store
	must(t, s.PutTopic(ctx, &dispatcher.Topic{ID: "orders", Kind: dispatcher.Transactional}))
	must(t, s.PutTemplate(ctx, &templates.Template{ID: "order-shipped",
		Email: &templates.Email{Subject: "Your order shipped", Text: "Hi {{default \"there\" .Attr.first_name}}, it is on its way."},
		SMS:   &templates.SMS{Body: "Your order shipped"}}))
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "buyer", Email: "buyer@example.com", Phone: "+33612345678",
		Attributes: map[string]string{"first_name": "Ana"}}, "Europe/Paris"))
}

const orderSend = `{"contact":"buyer","topic":"orders","channel":"email","template":"order-shipped"}`

func TestAPISendIdempotency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.api
	sendSetup(t, b)
	ctx := context.Background()

	first := c.do("POST", "/v1/sends", orderSend, "Idempotency-Key", "order-1/shipped")
	if first.status != 202 {
		t.Fatalf("first send: %d %s", first.status, first.body)
	}
	ans := first.json(t)
	id, _ := ans["send"].(string)
	run := pipeline.OneRunID(dispatcher.APICampaign, "orders", "order-shipped", 1, time.Now())
	if diff := cmp.Diff(map[string]any{"send": dispatcher.SendID(run, "idem:"+sha256hex("order-1/shipped")[:16], channels.Email), "state": "queued"}, ans); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}

	tests := []struct {
		name       string
		key, body  string
		status     int
		sameAnswer bool
		code       string
	}{
		{"replay, same body", "order-1/shipped", orderSend, 202, true, ""},
		{"replay, same body spelled otherwise", "order-1/shipped", `{ "template":"order-shipped","channel":"email","topic":"orders","contact":"buyer" }`, 202, true, ""},
		{"same key, other body", "order-1/shipped", strings.Replace(orderSend, `"email"`, `"sms"`, 1), 422, false, dispatcher.CodeIdempotency},
		{"other key, same contact: a second message", "order-2/shipped", orderSend, 202, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do("POST", "/v1/sends", tt.body, "Idempotency-Key", tt.key)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			switch {
			case tt.code != "":
				if diff := cmp.Diff(apiErr(tt.code, "Idempotency-Key"), errorShape(r.json(t))); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			case tt.sameAnswer:
				if !bytes.Equal(r.body, first.body) {
					t.Errorf("replay answered %s, first answer was %s", r.body, first.body)
				}
			default:
				if got := r.json(t)["send"]; got == id {
					t.Errorf("another key got the same send %v", got)
				}
			}
		})
	}

	t.Run("in progress", func(t *testing.T) {
		fp, _ := json.Marshal(sendRequest{Contact: "buyer", Topic: "orders", Channel: channels.Email, Template: "order-shipped"})
		rec, _ := json.Marshal(idemRecord{Fingerprint: sha256hex(string(fp))})
		must(t, b.redis.Client.Set(ctx, b.d.Store.Key("idem", sha256hex("busy")), rec, time.Minute).Err())
		r := c.do("POST", "/v1/sends", orderSend, "Idempotency-Key", "busy")
		if diff := cmp.Diff(apiErr(dispatcher.CodeConflict, ""), errorShape(r.json(t))); r.status != 409 || diff != "" {
			t.Errorf("status %d (-want +got):\n%s", r.status, diff)
		}
	})

	t.Run("concurrent duplicates decide once", func(t *testing.T) {
		before, err := b.d.Store.Run(ctx, run)
		must(t, err)
		const n = 12
		var wg sync.WaitGroup
		results := make([]resp, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i] = c.do("POST", "/v1/sends", orderSend, "Idempotency-Key", "order-3/shipped")
			}()
		}
		close(start)
		wg.Wait()
		var accepted []string
		for _, r := range results {
			switch r.status {
			case 202:
				accepted = append(accepted, string(r.body))
			case 409:
			default:
				t.Errorf("status %d: %s", r.status, r.body)
			}
		}
		if len(accepted) == 0 {
			t.Fatal("no request was accepted")
		}
		for _, a := range accepted[1:] {
			if a != accepted[0] {
				t.Errorf("answers differ: %s vs %s", a, accepted[0])
			}
		}
		after, err := b.d.Store.Run(ctx, run)
		must(t, err)
		if got := after.Counters["planned"] - before.Counters["planned"]; got != 1 {
			t.Errorf("%d sends planned, want 1", got)
		}
	})

	// The key record holds a hash of the key, never the key, and expires
	// within a day.
	ttl, err := b.redis.Client.TTL(ctx, b.d.Store.Key("idem", sha256hex("order-1/shipped"))).Result()
	must(t, err)
	if ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Errorf("idempotency record TTL %v, want about 24h", ttl)
	}
	sd := c.do("GET", "/v1/sends/"+url.PathEscape(id), "")
	if got := sd.json(t); sd.status != 200 || got["id"] != id || got["contact"] != "buyer" || got["template"] != "order-shipped" {
		t.Errorf("GET send: %d %v", sd.status, got)
	}
}

// A send whose decision was written by a request that died before it
// answered is found by the retry, and is in the contact's index all the
// same: the contact's export and erasure reach it.
func TestAPISendRecordedBeforeACrashIsIndexed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sendSetup(t, b)
	// The decision's script call, on the run's in-flight set.
	redistest.LoseReply(b.redis.Client, func(cmd redis.Cmder) bool {
		args := cmd.Args()
		return strings.HasPrefix(cmd.Name(), "eval") && len(args) > 4 && strings.HasSuffix(fmt.Sprint(args[4]), ":inflight")
	})

	if r := b.api.do("POST", "/v1/sends", orderSend, "Idempotency-Key", "order-9/shipped"); r.status < 500 {
		t.Fatalf("first send, its reply lost: %d %s", r.status, r.body)
	}
	r := b.api.do("POST", "/v1/sends", orderSend, "Idempotency-Key", "order-9/shipped")
	if r.status != 202 {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	id, _ := r.json(t)["send"].(string)
	ss, err := b.d.Store.ContactSends(context.Background(), "buyer")
	must(t, err)
	if len(ss) != 1 || ss[0].ID != id {
		t.Errorf("contact's sends %v, want send %s", ss, id)
	}
}

func TestAPISendDeliversOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.api
	sendSetup(t, b)
	b.startWorker(t)

	var id string
	for i := range 3 {
		r := c.do("POST", "/v1/sends", orderSend, "Idempotency-Key", "order-9/shipped")
		if r.status != 202 {
			t.Fatalf("send %d: %d %s", i, r.status, r.body)
		}
		got, _ := r.json(t)["send"].(string)
		if id != "" && got != id {
			t.Fatalf("send %d answered %s, want %s", i, got, id)
		}
		id = got
	}
	b.smtp.Wait(1, 20*time.Second)
	waitFor(t, "the send to show as sent", 10*time.Second, func() bool {
		r := c.do("GET", "/v1/sends/"+url.PathEscape(id), "")
		return r.json(t)["state"] == dispatcher.StateSent
	})
	// A retry after delivery replays the answer and sends nothing: once the
	// queues have run whatever it could have enqueued, one message.
	if r := c.do("POST", "/v1/sends", orderSend, "Idempotency-Key", "order-9/shipped"); r.status != 202 {
		t.Errorf("replay after delivery: %d", r.status)
	}
	b.waitIdle(t, 20*time.Second)
	msgs := b.smtp.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages delivered, want 1", len(msgs))
	}
	if diff := cmp.Diff([]string{"buyer@example.com"}, msgs[0].To); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(msgs[0].Data), "Hi Ana, it is on its way.") {
		t.Errorf("body not rendered:\n%s", msgs[0].Data)
	}
	logs := b.logs.String()
	for _, pii := range []string{"buyer@example.com", "order-9/shipped"} {
		if strings.Contains(logs, pii) {
			t.Errorf("logs contain %q", pii)
		}
	}
}

func TestOneClickUnsubscribe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.api
	ctx := context.Background()
	s := b.d.Store
	must(t, s.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Name: `<script>alert("x")</script>`, Kind: dispatcher.Marketing}))
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "c1", Email: "c1@example.com"}, "Europe/Paris"))
	grantConsent(t, b, "c1", channels.Email)
	token, err := b.d.Signer.Sign(templates.Claims{Contact: "c1", Channel: "email", Topic: "newsletter", Send: "run-1~abc"})
	must(t, err)

	ledger := func() []dispatcher.ConsentEvent {
		l, err := s.ConsentLedger(ctx, "c1")
		must(t, err)
		return l
	}
	state := func() dispatcher.ConsentState {
		m, err := s.Consents(ctx, "c1")
		must(t, err)
		return m["email/newsletter"]
	}
	checkPage := func(t *testing.T, r resp, status int, contains string) {
		t.Helper()
		if r.status != status {
			t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
		}
		want := map[string]string{
			"Content-Type":            "text/html; charset=utf-8",
			"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
			"Referrer-Policy":         "no-referrer",
		}
		got := map[string]string{}
		for k := range want {
			got[k] = r.header.Get(k)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("headers (-want +got):\n%s", diff)
		}
		if !strings.Contains(string(r.body), contains) {
			t.Errorf("page lacks %q:\n%s", contains, r.body)
		}
		if strings.Contains(string(r.body), "<script>") {
			t.Errorf("page does not escape the topic name:\n%s", r.body)
		}
	}
	post := func(tok string, body io.Reader, contentType string) resp {
		req, _ := http.NewRequest("POST", c.srv.URL+"/u/"+tok, body)
		req.Header.Set("Content-Type", contentType)
		cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := cl.Do(req)
		must(t, err)
		defer res.Body.Close()
		bb, _ := io.ReadAll(res.Body)
		return resp{status: res.StatusCode, header: res.Header, body: bb}
	}
	const form = "application/x-www-form-urlencoded"
	oneClick := func() io.Reader { return strings.NewReader("List-Unsubscribe=One-Click") }

	// Flip one character of the payload and one of the MAC.
	tampered := []string{flip(token, 5), flip(token, len(token)-3), token + "A", token[:len(token)-1]}

	t.Run("GET shows a page and changes nothing", func(t *testing.T) {
		r := c.do("GET", "/u/"+token, "", "Authorization", "")
		checkPage(t, r, 200, `<form method="post" action="/u/`+token+`">`)
		checkPage(t, r, 200, "Se désabonner")
		checkPage(t, r, 200, "Unsubscribe")
		if len(ledger()) != 1 || state() != dispatcher.Granted {
			t.Errorf("GET changed consent: %v", ledger())
		}
	})
	t.Run("tampered tokens change nothing", func(t *testing.T) {
		for _, tok := range tampered {
			checkPage(t, c.do("GET", "/u/"+tok, "", "Authorization", ""), 400, "Invalid link")
			checkPage(t, post(tok, oneClick(), form), 400, "Lien non valide")
		}
		if len(ledger()) != 1 || state() != dispatcher.Granted {
			t.Errorf("a tampered token changed consent: %v", ledger())
		}
	})
	t.Run("POST without the one-click body changes nothing", func(t *testing.T) {
		checkPage(t, post(token, strings.NewReader("x=y"), form), 400, "Invalid link")
		if len(ledger()) != 1 {
			t.Errorf("ledger %v", ledger())
		}
	})
	t.Run("POST withdraws once", func(t *testing.T) {
		checkPage(t, post(token, oneClick(), form), 200, "You are unsubscribed")
		var mp bytes.Buffer
		mw := multipart.NewWriter(&mp)
		mw.WriteField("List-Unsubscribe", "One-Click")
		mw.Close()
		checkPage(t, post(token, &mp, mw.FormDataContentType()), 200, "Désabonnement confirmé")
		checkPage(t, post(token, oneClick(), form), 200, "You are unsubscribed")
		l := ledger()
		if len(l) != 2 {
			t.Fatalf("ledger has %d events, want 2: %v", len(l), l)
		}
		want := dispatcher.ConsentEvent{Channel: channels.Email, Topic: "newsletter", State: dispatcher.Withdrawn, Source: "one-click",
			Evidence: map[string]string{"send": "run-1~abc"}}
		if diff := cmp.Diff(want, l[1], cmpopts.IgnoreFields(dispatcher.ConsentEvent{}, "At")); diff != "" {
			t.Errorf("ledger event (-want +got):\n%s", diff)
		}
		if state() != dispatcher.Withdrawn {
			t.Errorf("consent %s, want withdrawn", state())
		}
	})
	t.Run("concurrent clicks add one event", func(t *testing.T) {
		grantConsent(t, b, "c1", channels.Email) // granted again
		n := len(ledger())
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() { defer wg.Done(); post(token, oneClick(), form) }()
		}
		wg.Wait()
		if got := len(ledger()); got != n+1 {
			t.Errorf("%d events added, want 1", got-n)
		}
	})
	if strings.Contains(b.logs.String(), token) {
		t.Error("logs contain the token")
	}
}

// flip changes the character at i to another of the token alphabet.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

// FuzzContactBody feeds arbitrary bodies to the contact upsert: the answer
// is never a server error and always a JSON object.
func FuzzContactBody(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@example.com","phone":"+33612345678","tags":["x"],"attributes":{"k":"v"}}`,
		`{"email":1}`, `{"attributes":{"a":{"b":1}}}`, `[]`, `null`, `{"tags":[null]}`, `{"timezone":"Local"}`,
		`{"locale":"fr-FR","unknown":true}`, `{"email":"\u0000@x.y"}`, `{"phone":"+1"}`, `{`, "\xff", `{"tags":["` + strings.Repeat("a", 100) + `"]}`,
	} {
		f.Add(s)
	}
	h := setup(f, withoutLogs()).srv.Config.Handler
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("PUT", "/v1/contacts/fuzz", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testSecret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("answer is not JSON: %q", rec.Body)
		}
	})
}

// Email feedback names the send by the Message-ID Missive wrote, so an
// email sent leaves no provider id to send id entry behind (SMS status
// callbacks name Twilio's message SID, and need one: see the Twilio
// status tests).
func TestEmailSentKeepsNoProviderIndex(t *testing.T) {
	t.Parallel()
	b := setup(t, withWorker())
	sendSetup(t, b)
	if r := b.api.do("POST", "/v1/sends", orderSend, "Idempotency-Key", "order-5/shipped"); r.status != 202 {
		t.Fatalf("send: %d %s", r.status, r.body)
	}
	b.smtp.Wait(1, 10*time.Second)
	ctx := context.Background()
	waitFor(t, "the send to be settled sent", 10*time.Second, func() bool {
		ss, err := b.d.Store.ContactSends(ctx, "buyer")
		return err == nil && len(ss) == 1 && ss[0].State == dispatcher.StateSent
	})
	if keys, err := b.redis.Client.Keys(ctx, b.d.Store.Key("prov", "*")).Result(); err != nil || len(keys) != 0 {
		t.Errorf("provider index entries after an email: %d, %v", len(keys), err)
	}
}
