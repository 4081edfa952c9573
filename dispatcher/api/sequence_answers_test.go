package api

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// TestSequenceAnswers holds the sequence routes' answers, successes and
// errors, to what the OpenAPI document says of them: the status, the
// shape, and the field an error names.
func TestSequenceAnswers(t *testing.T) {
	t.Parallel()
	b := setup(t, withBasics(), withClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)))
	ctx := context.Background()
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "ana", Email: "ana@example.com", Timezone: "Europe/Paris"}, "UTC"))
	grantConsent(t, b, "ana", channels.Email)
	v := openAPIValidator(t)

	type answer struct {
		Version int
		Created bool
		Error   dispatcher.Error
	}
	call := func(method, path, body string, header http.Header, status int, field string) answer {
		t.Helper()
		if header == nil {
			header = http.Header{}
		}
		if body != "" {
			header.Set("Content-Type", "application/json")
		}
		res, got := b.openAPICall(t, v, method, path, body, header, status >= 400)
		if res.StatusCode != status {
			t.Errorf("%s %s %s: status %d, want %d: %s", method, path, body, res.StatusCode, status, got)
		}
		var a answer
		_ = json.Unmarshal(got, &a)
		var e struct{ Error dispatcher.Error }
		_ = json.Unmarshal(got, &e)
		a.Error = e.Error
		if field != "" && a.Error.Field != field {
			t.Errorf("%s %s %s: error %+v, want one naming %s", method, path, body, a.Error, field)
		}
		return a
	}
	key := func(k string) http.Header { return http.Header{"Idempotency-Key": {k}} }

	const steps = `[{"send": {"channel": "email", "template": "news-mail"}}, {"wait": {"days": 1, "at": "09:00"}}, {"send": {"channel": "sms", "template": "news-sms"}}]`
	seq := `{"name": "Onboarding", "topic": "newsletter", "trigger": {"tag": "new"}, "steps": ` + steps + `}`
	if a := call("PUT", "/v1/sequences/onboard", seq, nil, 201, ""); a.Version != 1 {
		t.Errorf("first PUT: version %d, want 1", a.Version)
	}
	if a := call("PUT", "/v1/sequences/onboard", seq, nil, 200, ""); a.Version != 1 {
		t.Errorf("the same PUT again: version %d, want 1", a.Version)
	}
	renamed := `{"name": "First days", "topic": "newsletter", "trigger": {"tag": "new"}, "steps": ` + steps + `}`
	if a := call("PUT", "/v1/sequences/onboard", renamed, nil, 200, ""); a.Version != 1 {
		t.Errorf("a new name: version %d, want 1", a.Version)
	}
	moved := `{"topic": "newsletter", "trigger": {"tag": "new"}, "steps": ` + steps + `, "stop_tags": ["bought"], "move_enrolments": true}`
	if a := call("PUT", "/v1/sequences/onboard", moved, nil, 200, ""); a.Version != 2 {
		t.Errorf("new content: version %d, want 2", a.Version)
	}
	for _, c := range []struct{ body, field string }{
		{`{"topic": "nothing", "steps": ` + steps + `}`, "topic"},
		{`{"steps": ` + steps + `}`, "topic"},
		{`{"topic": "newsletter", "steps": []}`, "steps"},
		{`{"topic": "newsletter", "steps": [{"wait": {"days": 1}}]}`, "steps"},
		{`{"topic": "newsletter", "steps": [{"send": {"channel": "email", "template": "nothing"}}]}`, "steps[0].send.template"},
		{`{"topic": "newsletter", "steps": [{"send": {"channel": "email", "template": "news-sms"}}]}`, "steps[0].send.template"},
		{`{"topic": "newsletter", "steps": [{"send": {"channel": "email", "template": "news-mail", "fallback": "email"}}]}`, "steps[0].send.fallback"},
		{`{"topic": "newsletter", "steps": [{"send": {"channel": "fax", "template": "news-mail"}}]}`, "steps[0].send.channel"},
		{`{"topic": "newsletter", "steps": [{"send": {"channel": "email", "template": "news-mail"}, "wait": {"days": 1}}]}`, "steps[0]"},
		{`{"topic": "newsletter", "steps": [{"wait": {"at": "25:00"}}, {"send": {"channel": "email", "template": "news-mail"}}]}`, "steps[0].wait.at"},
		{`{"topic": "newsletter", "steps": [{"wait": {"duration": "soon"}}, {"send": {"channel": "email", "template": "news-mail"}}]}`, "steps[0].wait.duration"},
		{`{"topic": "newsletter", "steps": [{"wait": {}}, {"send": {"channel": "email", "template": "news-mail"}}]}`, "steps[0].wait"},
		{`{"topic": "newsletter", "trigger": {"tag": "new"}, "stop_tags": ["new"], "steps": ` + steps + `}`, "stop_tags"},
		{`{"topic": "newsletter", "trigger": {"tag": "a b"}, "steps": ` + steps + `}`, "trigger.tag"},
	} {
		call("PUT", "/v1/sequences/other", c.body, nil, 422, c.field)
	}
	call("GET", "/v1/sequences/other", "", nil, 404, "")

	// Enrolling.
	call("POST", "/v1/sequences/onboard/enrol", `{"contact": "ana"}`, nil, 422, "Idempotency-Key")
	if a := call("POST", "/v1/sequences/onboard/enrol", `{"contact": "ana", "data": {"code": "A1"}}`, key("k1"), 201, ""); !a.Created {
		t.Error("first enrolment: created false")
	}
	if a := call("POST", "/v1/sequences/onboard/enrol", `{"contact": "ana", "data": {"code": "A1"}}`, key("k1"), 201, ""); !a.Created {
		t.Error("the same call again: not the first answer")
	}
	if a := call("POST", "/v1/sequences/onboard/enrol", `{"contact": "ana", "data": {"code": "B2"}}`, key("k1"), 422, "Idempotency-Key"); a.Error.Code != dispatcher.CodeIdempotency {
		t.Errorf("the key with other data: code %q, want %q", a.Error.Code, dispatcher.CodeIdempotency)
	}
	if a := call("POST", "/v1/sequences/onboard/enrol", `{"contact": "ana"}`, key("k2"), 200, ""); a.Created {
		t.Error("enrolled twice")
	}
	call("POST", "/v1/sequences/nothing/enrol", `{"contact": "ana"}`, key("k3"), 404, "")
	call("POST", "/v1/sequences/onboard/enrol", `{"contact": "nobody"}`, key("k4"), 422, "contact")
	call("POST", "/v1/sequences/onboard/enrol", `{"contact": "ana", "data": {"not a key": 1}}`, key("k5"), 422, "")
	call("POST", "/v1/sequences/onboard/enrolments/nobody/stop", "", nil, 404, "")
	call("POST", "/v1/sequences/onboard/enrolments/ana/stop", "", nil, 200, "")
	call("GET", "/v1/contacts/ana/enrolments", "", nil, 200, "")
}
