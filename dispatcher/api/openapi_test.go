package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/content"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// The OpenAPI document is one source: the route table is held to it, its
// examples are sent to the real handlers, and the README's request
// examples must be its examples (the README walk below runs them).

// openAPIValidator loads the embedded document with libopenapi.
func openAPIValidator(t *testing.T) validator.Validator {
	t.Helper()
	doc, err := libopenapi.NewDocument(openAPIDoc)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	// An import's body is NDJSON, which the document describes as text
	// (each line an ImportLine); the handler's answer checks the lines.
	ndjson := content.DecoderFunc(func(in *content.DecodeInput) (any, error) {
		b, err := io.ReadAll(in.Body)
		return string(b), err
	})
	v, errs := validator.NewValidator(doc, config.WithBodyDecoder("application/x-ndjson", ndjson))
	if len(errs) > 0 {
		t.Fatalf("openapi.json does not build: %v", errs)
	}
	return v
}

// openAPISchema returns a schema of the document's components.
func openAPISchema(t *testing.T, name string) *base.Schema {
	t.Helper()
	doc, err := libopenapi.NewDocument(openAPIDoc)
	must(t, err)
	m, err := doc.BuildV3Model()
	must(t, err)
	p := m.Model.Components.Schemas.GetOrZero(name)
	if p == nil {
		t.Fatalf("no schema %s", name)
	}
	return p.Schema()
}

func validationErrors(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  %s: %s", e.Message, e.Reason)
		for _, f := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n    %s at %s", f.Reason, f.FieldPath)
		}
	}
	return b.String()
}

var pathParam = regexp.MustCompile(`\{(\w+)\}`)

func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel()
	doc, err := libopenapi.NewDocument(openAPIDoc)
	if err != nil {
		t.Fatal(err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Errorf("openapi version %q, want 3.1.0", v)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("model: %v", err)
	}
	// Each operation declares exactly the parameters of its path.
	for path, item := range m.Model.Paths.PathItems.FromOldest() {
		var want []string
		for _, p := range pathParam.FindAllStringSubmatch(path, -1) {
			want = append(want, p[1])
		}
		for method, op := range item.GetOperations().FromOldest() {
			var got []string
			for _, p := range op.Parameters {
				if p.In == "path" {
					got = append(got, p.Name)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s %s: path parameters (-path +declared):\n%s", method, path, diff)
			}
		}
	}
	if ok, errs := openAPIValidator(t).ValidateDocument(); !ok {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document:%s", validationErrors(errs))
	}
}

// openAPIOperation is what the tests read of an operation.
type openAPIOperation struct {
	Security    []map[string][]string `json:"security"`
	Scope       string                `json:"x-required-scope"`
	Parameters  []json.RawMessage     `json:"parameters"`
	RequestBody *struct {
		Content map[string]struct {
			Examples map[string]struct {
				Value json.RawMessage `json:"value"`
			} `json:"examples"`
		} `json:"content"`
	} `json:"requestBody"`
}

// openAPIOperations reads the document's operations by route pattern
// ("PUT /v1/topics/{id}").
func openAPIOperations(t *testing.T) map[string]openAPIOperation {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]openAPIOperation `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	ops := map[string]openAPIOperation{}
	for path, item := range doc.Paths {
		for method, op := range item {
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}
	return ops
}

// tableRoutes returns the route table New mounts. The handlers are not
// called, so a Dispatcher without parts will do.
func tableRoutes() []route {
	return (&handler{d: &app.Dispatcher{}}).routes()
}

func TestOpenAPIMatchesRouteTable(t *testing.T) {
	t.Parallel()
	ops := openAPIOperations(t)
	want := []string{openAPIPattern}
	for _, rt := range tableRoutes() {
		want = append(want, rt.pattern)
	}
	if diff := cmp.Diff(sorted(want), sorted(slices.Collect(maps.Keys(ops)))); diff != "" {
		t.Errorf("routes (-table +document):\n%s", diff)
	}
	for _, rt := range tableRoutes() {
		op, ok := ops[rt.pattern]
		if !ok {
			continue
		}
		scope := string(scopeOf(rt.pattern, rt.scope))
		if diff := cmp.Diff([]map[string][]string{{"apiKey": {scope}}}, op.Security); diff != "" {
			t.Errorf("%s: security (-want +got):\n%s", rt.pattern, diff)
		}
		if op.Scope != scope {
			t.Errorf("%s: x-required-scope %q, want %q", rt.pattern, op.Scope, scope)
		}
	}
	if op := ops[openAPIPattern]; op.Security == nil || len(op.Security) != 0 {
		t.Errorf("%s: security %v, want [] (public)", openAPIPattern, op.Security)
	}
}

func sorted(s []string) []string { slices.Sort(s); return s }

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.api.do("GET", "/v1/openapi.json", "", "Authorization", "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d without a key, want 200: %s", r.status, r.body)
	}
	if !bytes.Equal(r.body, openAPIDoc) {
		t.Error("the body is not the embedded document")
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "public") || !strings.Contains(cc, "max-age=") {
		t.Errorf("Cache-Control %q, want public with a max-age", cc)
	}
	etag := r.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	r = b.api.do("GET", "/v1/openapi.json", "", "Authorization", "", "If-None-Match", etag)
	if r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Errorf("If-None-Match with the ETag: status %d, %d bytes; want 304, none", r.status, len(r.body))
	}
	if r := b.api.do("POST", "/v1/openapi.json", "{}"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", r.status)
	}
}

// --- the README's examples

// exampleCall is one curl command of the README.
type exampleCall struct {
	method, path string
	header       http.Header
	body         string // the here-document, "" for none
	line         int
}

var (
	curlStart = regexp.MustCompile(`^\s*curl\s`)
	heredoc   = regexp.MustCompile(`<<'(\w+)'\s*$`)
)

// readmeCalls reads the curl commands of the README's code blocks that
// call $MISSIVE_URL: method, path, headers and here-document body.
func readmeCalls(t *testing.T) []exampleCall {
	t.Helper()
	src, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	var calls []exampleCall
	for i := 0; i < len(lines); i++ {
		if !curlStart.MatchString(lines[i]) {
			continue
		}
		start := i
		cmd := lines[i]
		for strings.HasSuffix(strings.TrimSpace(cmd), `\`) && i+1 < len(lines) {
			i++
			cmd = strings.TrimSuffix(strings.TrimSpace(cmd), `\`) + " " + lines[i]
		}
		var body strings.Builder
		hasBody := false
		if m := heredoc.FindStringSubmatch(cmd); m != nil {
			hasBody = true
			cmd = cmd[:len(cmd)-len(m[0])]
			for i++; i < len(lines) && lines[i] != m[1]; i++ {
				body.WriteString(lines[i] + "\n")
			}
		}
		words, err := shellWords(cmd)
		if err != nil {
			t.Fatalf("README line %d: %v", start+1, err)
		}
		c := exampleCall{method: "GET", header: http.Header{}, line: start + 1}
		if hasBody {
			c.method, c.body = "POST", body.String()
		}
		for j := 1; j < len(words); j++ {
			switch w := words[j]; {
			case w == "-X" && j+1 < len(words):
				j++
				c.method = words[j]
			case w == "-H" && j+1 < len(words):
				j++
				k, v, _ := strings.Cut(words[j], ":")
				c.header.Set(k, strings.TrimSpace(v))
			case w == "--data-binary" && j+1 < len(words):
				j++
				if words[j] != "@-" {
					t.Fatalf("README line %d: --data-binary %s: the examples give their body as a here-document (@-)", start+1, words[j])
				}
			case strings.HasPrefix(w, "$MISSIVE_URL/"):
				c.path = strings.TrimPrefix(w, "$MISSIVE_URL")
			case strings.HasPrefix(w, "-"):
				if w != "-sS" && w != "-i" {
					t.Fatalf("README line %d: curl option %s is not one the examples use", start+1, w)
				}
			}
		}
		if c.path == "" {
			continue
		}
		calls = append(calls, c)
	}
	return calls
}

// shellWords splits a command line the way sh does for the quoting the
// README uses: 'single' and "double" quotes, no escapes.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			} else {
				w.WriteByte(ch)
			}
		case ch == '\'' || ch == '"':
			quote, in = ch, true
		case ch == ' ' || ch == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteByte(ch)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed quote")
	}
	if in {
		words = append(words, w.String())
	}
	return words, nil
}

// routeOf returns the document's pattern that serves method and path,
// preferring a literal segment to a parameter.
func routeOf(ops map[string]openAPIOperation, method, path string) string {
	best, bestParams := "", -1
	for pattern := range ops {
		m, p, _ := strings.Cut(pattern, " ")
		if m != method {
			continue
		}
		ps, xs := strings.Split(p, "/"), strings.Split(path, "/")
		if len(ps) != len(xs) {
			continue
		}
		params, ok := 0, true
		for i := range ps {
			if strings.HasPrefix(ps[i], "{") {
				params++
			} else if ps[i] != xs[i] {
				ok = false
			}
		}
		if ok && (bestParams < 0 || params < bestParams) {
			best, bestParams = pattern, params
		}
	}
	return best
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return cmp.Equal(va, vb)
}

// exampleOf returns the name of the example of op that body is, or "".
func exampleOf(op openAPIOperation, body string) (mediaType, name string) {
	if op.RequestBody == nil {
		return "", ""
	}
	for mt, c := range op.RequestBody.Content {
		for name, ex := range c.Examples {
			if mt == "application/json" && sameJSON(ex.Value, []byte(body)) {
				return mt, name
			}
			var s string
			if mt != "application/json" && json.Unmarshal(ex.Value, &s) == nil && s == body {
				return mt, name
			}
		}
	}
	return "", ""
}

// openAPICall sends a request to the bundle's server with the test key and
// checks request and answer against the document.
// A request meant to be refused (badRequest) is not held to the document.
func (b *testBundle) openAPICall(t *testing.T, v validator.Validator, method, path, body string, header http.Header, badRequest bool) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(req.Header, header)
	req.Header.Set("Authorization", "Bearer "+testSecret)
	if ok, errs := v.ValidateHttpRequestSync(cloneRequest(req, body)); !ok && !badRequest {
		t.Errorf("%s %s: the request does not match the document:%s", method, path, validationErrors(errs))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	res.Body = io.NopCloser(bytes.NewReader(got))
	if ok, errs := v.ValidateHttpResponse(cloneRequest(req, body), res); !ok {
		t.Errorf("%s %s: answer %d does not match the document:%s\n%s", method, path, res.StatusCode, validationErrors(errs), got)
	}
	return res, got
}

func cloneRequest(r *http.Request, body string) *http.Request {
	c := r.Clone(r.Context())
	c.Body = io.NopCloser(strings.NewReader(body))
	return c
}

// TestOpenAPIReadmeExamples runs the README's curl commands, in order,
// against a real API: each body must be one of the document's examples
// for its route and be accepted (2xx), each request and answer must match
// the document, and every example of the document must be in the README.
// Before each JSON body it sends the same body with a field the route
// does not know, which must be refused, naming the field, and change
// nothing in Redis.
func TestOpenAPIReadmeExamples(t *testing.T) {
	t.Parallel()
	// The examples' dates lie ahead of this clock.
	b := setup(t, withClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)))
	v := openAPIValidator(t)
	ops := openAPIOperations(t)
	calls := readmeCalls(t)
	if len(calls) == 0 {
		t.Fatal("no curl example in the README")
	}
	importLine := openAPISchema(t, "ImportLine")
	lines := schema_validation.NewSchemaValidator()
	seen := map[string]bool{}
	answers := map[string][]byte{}
	for _, c := range calls {
		// The webhook examples name the endpoint the registration answered.
		if strings.Contains(c.path, "$WEBHOOK_ID") {
			var ep struct{ ID string }
			_ = json.Unmarshal(answers["POST /v1/webhooks"], &ep)
			c.path = strings.ReplaceAll(c.path, "$WEBHOOK_ID", ep.ID)
		}
		what := fmt.Sprintf("README line %d: %s %s", c.line, c.method, c.path)
		pattern := routeOf(ops, c.method, c.path)
		if pattern == "" {
			t.Errorf("%s: no such route in the document", what)
			continue
		}
		op := ops[pattern]
		if pattern == "POST /v1/webhooks/{id}/replay" {
			// The example replays an event of the endpoint: one it was sent.
			var in struct {
				EventID string `json:"event_id"`
			}
			must(t, json.Unmarshal([]byte(c.body), &in))
			must(t, b.d.Store.QueueWebhookEvents(t.Context(), []storepkg.WebhookEvent{{
				Endpoint: strings.Split(c.path, "/")[3], ID: in.EventID, Contact: "c-1042", Body: []byte(`{"type":"unsubscribed"}`)}}))
		}
		if c.body != "" {
			mt, name := exampleOf(op, c.body)
			if name == "" {
				t.Errorf("%s: the body is none of the document's examples of %s", what, pattern)
				continue
			}
			seen[pattern+" "+name] = true
			if ct := c.header.Get("Content-Type"); ct != mt {
				t.Errorf("%s: Content-Type %q, want %q", what, ct, mt)
			}
			if mt == "application/json" {
				var m map[string]any
				must(t, json.Unmarshal([]byte(c.body), &m))
				m["colour"] = "blue"
				bad, _ := json.Marshal(m)
				h := c.header.Clone()
				if h.Get("Idempotency-Key") != "" {
					h.Set("Idempotency-Key", h.Get("Idempotency-Key")+"-unknown-field")
				}
				before := snapshotRedis(t, b)
				res, got := b.openAPICall(t, v, c.method, c.path, string(bad), h, true)
				if diff := cmp.Diff(before, snapshotRedis(t, b)); diff != "" {
					t.Errorf("%s with an unknown field changed Redis (-before +after):\n%s", what, diff)
				}
				var e struct{ Error dispatcher.Error }
				_ = json.Unmarshal(got, &e)
				if res.StatusCode != http.StatusUnprocessableEntity || e.Error.Code != dispatcher.CodeInvalid || e.Error.Field != "colour" {
					t.Errorf("%s with an unknown field: %d %s, want 422 invalid naming colour", what, res.StatusCode, got)
				}
			}
		}
		res, got := b.openAPICall(t, v, c.method, c.path, c.body, c.header, false)
		if res.StatusCode < 200 || res.StatusCode > 299 {
			t.Errorf("%s: status %d, want 2xx: %s", what, res.StatusCode, got)
		}
		if pattern == "POST /v1/contacts/import" {
			for i, line := range strings.Split(strings.TrimSpace(c.body), "\n") {
				if ok, errs := lines.ValidateSchemaString(importLine, line); !ok {
					t.Errorf("%s: line %d is not an ImportLine:%s", what, i+1, validationErrors(errs))
				}
			}
			var r struct{ Imported, Failed int }
			must(t, json.Unmarshal(got, &r))
			if r.Failed != 0 || r.Imported == 0 {
				t.Errorf("%s: %s, want every line imported", what, got)
			}
		}
		answers[pattern] = got
	}
	for pattern, op := range ops {
		if op.RequestBody == nil {
			continue
		}
		for _, c := range op.RequestBody.Content {
			for name := range c.Examples {
				if !seen[pattern+" "+name] {
					t.Errorf("%s: example %q is not in the README", pattern, name)
				}
			}
		}
	}
	if t.Failed() {
		return
	}

	// The reading routes and the state changes, after the walk: their
	// answers must match the document too.
	var started struct{ Run string }
	must(t, json.Unmarshal(answers["POST /v1/campaigns/{id}/start"], &started))
	var sent struct{ Send string }
	must(t, json.Unmarshal(answers["POST /v1/sends"], &sent))
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/contacts/c-1042", 200},
		{"GET", "/v1/contacts/c-1042/consents", 200},
		{"GET", "/v1/contacts/c-1043/export", 200},
		{"GET", "/v1/topics", 200},
		{"GET", "/v1/topics/newsletter/stats", 200},
		{"GET", "/v1/templates/spring-sale", 200},
		{"GET", "/v1/segments/vip-paris", 200},
		{"GET", "/v1/segments/vip-paris/count", 200},
		{"GET", "/v1/campaigns", 200},
		{"GET", "/v1/campaigns/spring-sale", 200},
		{"GET", "/v1/campaigns/spring-sale/stats", 200},
		{"GET", "/v1/runs/" + started.Run, 200},
		{"GET", "/v1/runs/" + started.Run + "/sends?limit=5", 200},
		{"GET", "/v1/runs/" + started.Run + "/sends?outcome=lost", 422},
		{"POST", "/v1/runs/" + started.Run + "/pause", 200},
		{"POST", "/v1/runs/" + started.Run + "/resume", 200},
		{"POST", "/v1/campaigns/spring-sale/pause", 200},
		{"POST", "/v1/campaigns/spring-sale/resume", 200},
		{"POST", "/v1/campaigns/spring-sale/cancel", 200},
		{"POST", "/v1/runs/" + started.Run + "/cancel", 409}, // cancelled with its campaign
		{"GET", "/v1/sends/" + sent.Send, 200},
		{"GET", "/v1/sequences", 200},
		{"GET", "/v1/sequences/welcome", 200},
		{"GET", "/v1/sequences/nothing-here", 404},
		{"POST", "/v1/sequences/welcome/pause", 200},
		{"GET", "/v1/contacts/c-1043/enrolments", 200}, // next.paused
		{"POST", "/v1/sequences/welcome/resume", 200},
		{"POST", "/v1/sequences/nothing-here/pause", 404},
		{"POST", "/v1/sequences/welcome/enrolments/c-1043/stop", 200},
		{"POST", "/v1/sequences/welcome/enrolments/c-1043/stop", 404}, // ended already
		{"GET", "/v1/contacts/c-1043/enrolments", 200},                // stopped, no next
		{"GET", "/v1/contacts/c-1042/enrolments", 200},                // none
		{"GET", "/v1/contacts/nobody/enrolments", 404},
		{"GET", "/v1/audit?limit=5", 200},
		{"GET", "/v1/register", 200},
		{"GET", "/v1/register?format=markdown", 200},
		{"GET", "/v1/webhooks", 200},
		{"GET", "/v1/webhooks/wh_000000000000000000000000/deliveries", 404},
		{"DELETE", "/v1/webhooks/wh_000000000000000000000000", 404},
		{"DELETE", "/v1/contacts/c-1044", 200},
		{"GET", "/v1/contacts/c-1044", 404},
		{"GET", "/v1/templates/nothing-here", 404},
		{"GET", "/v1/audit?limit=0", 422},
		{"POST", "/v1/campaigns/spring-sale/start", 409},
	} {
		res, got := b.openAPICall(t, v, c.method, c.path, "", nil, c.status >= 400)
		if res.StatusCode != c.status {
			t.Errorf("%s %s: status %d, want %d: %s", c.method, c.path, res.StatusCode, c.status, got)
		}
	}
}
