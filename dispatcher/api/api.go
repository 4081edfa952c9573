package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
)

// APIKey is one API client: an id, which logs and the audit log may show,
// a secret, which they never do, and the scopes it may use (nil: all).
type APIKey struct {
	ID     string
	Secret string
	Scopes []Scope
}

// minSecretLen is the shortest accepted API key secret.
const minSecretLen = 16

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ParseAPIKeys parses the value of MISSIVE_API_KEYS: comma-separated
// id:secret[:scope+scope...] entries, scopes among campaigns, contacts,
// sends and privacy. An entry without a scope list has every scope, so
// configurations written before scopes keep working; a secret therefore
// cannot contain a colon. Errors name the variable and the position of the
// entry at fault (1-based), never a secret.
func ParseAPIKeys(s string) ([]APIKey, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("MISSIVE_API_KEYS: no keys (want id:secret pairs separated by commas)")
	}
	var keys []APIKey
	ids := map[string]bool{}
	secrets := map[[32]byte]bool{}
	for i, entry := range strings.Split(s, ",") {
		pos := i + 1
		entry = strings.TrimSpace(entry)
		id, secret, ok := strings.Cut(entry, ":")
		var scopes []Scope
		if i := strings.LastIndexByte(secret, ':'); ok && i >= 0 {
			var err error
			if scopes, err = parseScopes(secret[i+1:]); err != nil {
				return nil, fmt.Errorf("MISSIVE_API_KEYS: entry %d (id %q): %v", pos, id, err)
			}
			secret = secret[:i]
		}
		switch {
		case entry == "":
			return nil, fmt.Errorf("MISSIVE_API_KEYS: entry %d is empty", pos)
		case !ok:
			return nil, fmt.Errorf("MISSIVE_API_KEYS: entry %d is not id:secret", pos)
		case !keyIDPattern.MatchString(id):
			return nil, fmt.Errorf("MISSIVE_API_KEYS: entry %d: the id must be 1-64 letters, digits, _ . -", pos)
		case ids[id]:
			return nil, fmt.Errorf("MISSIVE_API_KEYS: entry %d: id %q is used twice", pos, id)
		case len(secret) < minSecretLen:
			return nil, fmt.Errorf("MISSIVE_API_KEYS: entry %d (id %q): the secret must be at least %d characters", pos, id, minSecretLen)
		case strings.ContainsFunc(secret, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return nil, fmt.Errorf("MISSIVE_API_KEYS: entry %d (id %q): the secret must not contain spaces or control characters", pos, id)
		}
		digest := sha256.Sum256([]byte(secret))
		if secrets[digest] {
			return nil, fmt.Errorf("MISSIVE_API_KEYS: entry %d (id %q): the secret is used by another key", pos, id)
		}
		ids[id], secrets[digest] = true, true
		keys = append(keys, APIKey{ID: id, Secret: secret, Scopes: scopes})
	}
	return keys, nil
}

// Body limits.
const (
	maxJSONBody          = 1 << 20
	maxImportBodyDefault = 256 << 20
	maxFormBody          = 64 << 10
)

// maxImportBody is the limit of an NDJSON import (a variable for tests).
var maxImportBody int64 = maxImportBodyDefault

// api serves the HTTP API of one Dispatcher.
type handler struct {
	d       *app.Dispatcher
	mux     *http.ServeMux
	keys    []APIKey
	digests [][32]byte
}

// apiFunc handles an authenticated API call: it returns the status and the
// value to send as JSON, or an error that httpStatus maps.
type apiFunc func(w http.ResponseWriter, r *http.Request) (int, any, error)

// Handler returns the HTTP API: the /v1 routes, which need one of keys as
// a bearer token, the public unsubscribe pages and the health checks.
func Handler(d *app.Dispatcher, keys []APIKey) http.Handler {
	a := &handler{d: d, mux: http.NewServeMux(), keys: keys}
	for _, k := range keys {
		a.digests = append(a.digests, sha256.Sum256([]byte(k.Secret)))
	}
	// Each route needs a scope; audit names the action recorded in the
	// audit log when the call succeeds (empty: not recorded). An empty
	// scope or audit falls back to routeScopes and routeAudits.
	const cpg, ctc, snd, prv = ScopeCampaigns, ScopeContacts, ScopeSends, ScopePrivacy
	routes := []struct {
		pattern string
		scope   Scope
		audit   string
		h       apiFunc
	}{
		{"PUT /v1/contacts/{id}", ctc, "contact.upsert", a.putContact},
		{"GET /v1/contacts/{id}", ctc, "", a.getContact},
		{"DELETE /v1/contacts/{id}", "", "", a.eraseContact},
		{"GET /v1/contacts/{id}/export", "", "", a.exportContact},
		{"POST /v1/contacts/import", ctc, "contact.import", a.importContacts},
		{"POST /v1/contacts/{id}/consents", ctc, "consent.record", a.postConsent},
		{"GET /v1/contacts/{id}/consents", ctc, "", a.getConsents},
		{"PUT /v1/topics/{id}", cpg, "topic.put", putRecord(func(t *dispatcher.Topic) *string { return &t.ID }, a.d.Store.PutTopic)},
		{"GET /v1/topics", cpg, "", a.getTopics},
		{"GET /v1/topics/{id}/stats", cpg, "", a.topicStats},
		{"PUT /v1/templates/{id}", cpg, "template.put", putRecord(func(t *templates.Template) *string { return &t.ID }, a.d.Store.PutTemplate)},
		{"GET /v1/templates/{id}", cpg, "", getRecord(a.d.Store.Template)},
		{"POST /v1/templates/{id}/preview", cpg, "", a.previewTemplate},
		{"PUT /v1/segments/{id}", cpg, "segment.put", putRecord(func(sg *dispatcher.Segment) *string { return &sg.ID }, a.d.Store.PutSegment)},
		{"GET /v1/segments/{id}", cpg, "", getRecord(a.d.Store.Segment)},
		{"GET /v1/segments/{id}/count", cpg, "", a.countSegment},
		{"POST /v1/campaigns", cpg, "campaign.create", a.createCampaign},
		{"GET /v1/campaigns", cpg, "", a.listCampaigns},
		{"GET /v1/campaigns/{id}", cpg, "", a.getCampaign},
		{"POST /v1/campaigns/{id}/schedule", cpg, "campaign.schedule", a.scheduleCampaign},
		{"POST /v1/campaigns/{id}/start", cpg, "campaign.start", a.startCampaign},
		{"POST /v1/campaigns/{id}/pause", cpg, "campaign.pause", a.campaignAction("pause")},
		{"POST /v1/campaigns/{id}/resume", cpg, "campaign.resume", a.campaignAction("resume")},
		{"POST /v1/campaigns/{id}/cancel", cpg, "campaign.cancel", a.campaignAction("cancel")},
		{"GET /v1/campaigns/{id}/stats", cpg, "", a.campaignStats},
		{"GET /v1/runs/{id}", cpg, "", a.getRun},
		{"POST /v1/sends", snd, "", a.postSend},
		{"GET /v1/sends/{id}", snd, "", a.getSend},
		{"POST /v1/suppressions", prv, "suppression.add", a.postSuppression},
		{"DELETE /v1/suppressions", prv, "suppression.remove", a.deleteSuppression},
		{"POST /v1/suppressions/lookup", prv, "", a.lookupSuppression},
		{"GET /v1/audit", prv, "", a.getAudit},
		{"GET /v1/register", prv, "", a.getRegister},
	}
	for _, rt := range routes {
		a.mux.Handle(rt.pattern, a.auth(scopeOf(rt.pattern, rt.scope), cmp.Or(rt.audit, routeAudits[rt.pattern]), rt.h))
	}
	a.mux.HandleFunc("GET /u/{token}", a.unsubscribePage)
	a.mux.HandleFunc("POST /u/{token}", a.unsubscribeOneClick)
	a.mountPreferences()
	a.mountSubscribe()
	d.Hooks.Mount(a.mux)
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	a.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := d.Ready(ctx); err != nil {
			d.Logger.Warn("not ready", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
	return a
}

// statusWriter remembers the status a handler wrote, for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// discardWriter captures the status and headers of the mux's own 404 and
// 405 answers, which are plain text, so that they can be sent as JSON.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

// ServeHTTP routes the request and logs it by route pattern: the raw path
// holds tokens and ids, so it is never logged.
func (a *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.d.Logger.Error("api: handler panicked", "method", r.Method, "route", r.Pattern)
			if sw.status == 0 {
				dispatcher.WriteError(sw, &dispatcher.Error{Code: dispatcher.CodeInternal, Message: "internal error"})
			}
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		a.d.Logger.Debug("http request", "method", r.Method, "route", route, "status", sw.status,
			"duration", time.Since(start))
	}()
	if h, pattern := a.mux.Handler(r); pattern == "" {
		dw := &discardWriter{h: http.Header{}, status: http.StatusOK}
		h.ServeHTTP(dw, r)
		if allow := dw.h.Get("Allow"); allow != "" {
			sw.Header().Set("Allow", allow)
		}
		if dw.status == http.StatusMethodNotAllowed {
			dispatcher.WriteError(sw, &dispatcher.Error{Code: dispatcher.CodeMethod, Message: "method not allowed on this route"})
			return
		}
		dispatcher.WriteError(sw, &dispatcher.Error{Code: dispatcher.CodeNotFound, Message: "no such route"})
		return
	}
	a.mux.ServeHTTP(sw, r)
}

// auth checks the bearer token against every key's digest in constant
// time and the key's scopes against scope, then runs h with the key id in
// the request context, writes its answer and, when the call succeeded and
// audit names an action, records it in the audit log.
func (a *handler) auth(scope Scope, audit string, h apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := a.authorized(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="missive"`)
			dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeUnauthorized, Message: "missing or invalid API key (Authorization: Bearer <secret>)"})
			return
		}
		if !key.Allows(scope) {
			dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeForbidden, Message: fmt.Sprintf("API key %q lacks the %s scope this route needs", key.ID, scope)})
			return
		}
		r = r.WithContext(withKeyID(r.Context(), key.ID))
		var body *auditBody
		if audit != "" {
			body = captureBody(r, audit)
		}
		status, v, err := h(w, r)
		if err == nil && audit != "" && status >= 200 && status < 300 {
			a.record(r, audit, v, body)
		}
		if err != nil {
			if st, _ := dispatcher.HTTPStatus(err); st == http.StatusInternalServerError {
				a.d.Logger.Error("api: request failed", "method", r.Method, "route", r.Pattern, "error", err)
			}
			dispatcher.WriteError(w, err)
			return
		}
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return
		}
		if raw, ok := v.(rawBody); ok {
			w.Header().Set("Content-Type", raw.contentType)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(status)
			w.Write(raw.body)
			return
		}
		dispatcher.WriteJSON(w, status, v)
	})
}

// rawBody is an answer that is not JSON (a Markdown document).
type rawBody struct {
	contentType string
	body        []byte
}

// authorized returns the key whose secret the request bears. Every digest
// is compared, so the time taken does not tell which key matched.
func (a *handler) authorized(r *http.Request) (APIKey, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return APIKey{}, false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	match, idx := 0, 0
	for i, d := range a.digests {
		eq := subtle.ConstantTimeCompare(got[:], d[:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
		match |= eq
	}
	if match != 1 {
		return APIKey{}, false
	}
	return a.keys[idx], true
}

// decodeJSON decodes a JSON body of at most maxJSONBody bytes into v,
// refusing unknown fields and trailing data. Errors name the field at
// fault ("body" when none can be told) and never echo a value.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return jsonError(err)
		}
		return dispatcher.Invalid("body", "must hold one JSON object and nothing after it")
	}
	return nil
}

// jsonError turns a decoding error into an API error.
func jsonError(err error) error {
	var (
		mb  *http.MaxBytesError
		te  *json.UnmarshalTypeError
		se  *json.SyntaxError
		tpe *time.ParseError
	)
	switch {
	case errors.As(err, &mb):
		return &dispatcher.Error{Code: dispatcher.CodeTooLarge, Field: "body", Message: fmt.Sprintf("is larger than %d bytes", mb.Limit)}
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return dispatcher.Invalid(field, "must be %s", jsonKind(te.Type))
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return dispatcher.Invalid("body", "is not valid JSON")
	case errors.Is(err, io.EOF):
		return dispatcher.Invalid("body", "is empty: a JSON object is required")
	case errors.As(err, &tpe):
		return dispatcher.Invalid("body", "holds a time that is not in RFC 3339 form (2026-03-01T10:00:00Z)")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if f, err := strconvUnquote(name); err == nil {
			return dispatcher.Invalid(dispatcher.Truncate(f, 64), "is not a known field")
		}
		return dispatcher.Invalid("body", "holds an unknown field")
	}
	return dispatcher.Invalid("body", "is not valid JSON for this request")
}

func strconvUnquote(s string) (string, error) {
	var out string
	err := json.Unmarshal([]byte(s), &out)
	return out, err
}

// jsonKind names the JSON type a Go type is decoded from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	if t == reflect.TypeFor[time.Time]() {
		return "a time in RFC 3339 form"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "of another type"
}

// pathID returns the {id} of the route, checked like a record id.
func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !dispatcher.ValidID(id) {
		return "", dispatcher.Invalid("id", "must be 1-128 characters of letters, digits and . _ : @ + -")
	}
	return id, nil
}

// sameID checks that an id given in a body matches the path.
func sameID(body, path string) error {
	if body != "" && body != path {
		return dispatcher.Invalid("id", "must match the id in the path (or be left out)")
	}
	return nil
}

// --- contacts

// contactInput is a contact as a client writes it: the id comes from the
// path and the times are Missive's.
type contactInput struct {
	Email      string            `json:"email,omitempty"`
	Phone      string            `json:"phone,omitempty"`
	Timezone   string            `json:"timezone,omitempty"`
	Locale     string            `json:"locale,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Tags       []string          `json:"tags,omitempty"`
}

func (a *handler) putContact(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var in contactInput
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	c := &dispatcher.Contact{ID: r.PathValue("id"), Email: in.Email, Phone: in.Phone, Timezone: in.Timezone,
		Locale: in.Locale, Attributes: in.Attributes, Tags: in.Tags}
	if err := a.d.Store.UpsertContact(r.Context(), c, a.d.Config.DefaultTimezone); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

func (a *handler) getContact(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, dispatcher.NotFound("contact")
	}
	c, err := a.d.Store.Contact(r.Context(), id)
	if err != nil {
		if errors.Is(err, dispatcher.ErrNotFound) {
			return 0, nil, dispatcher.NotFound("contact")
		}
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

func (a *handler) importContacts(w http.ResponseWriter, r *http.Request) (int, any, error) {
	body := http.MaxBytesReader(w, r.Body, maxImportBody)
	res, err := a.d.Store.ImportContacts(r.Context(), body, a.d.Config.DefaultTimezone, nil)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return 0, nil, &dispatcher.Error{Code: dispatcher.CodeTooLarge, Field: "body", Message: fmt.Sprintf("is larger than %d bytes (%d contacts were imported before the limit)", mb.Limit, res.Imported)}
		}
		return 0, nil, err
	}
	return http.StatusOK, res, nil
}

func (a *handler) postConsent(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, dispatcher.NotFound("contact")
	}
	var e dispatcher.ConsentEvent
	if err := decodeJSON(w, r, &e); err != nil {
		return 0, nil, err
	}
	if err := e.Validate(); err != nil {
		return 0, nil, err
	}
	if _, err := a.d.Store.Topic(r.Context(), e.Topic); err != nil {
		if dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			return 0, nil, dispatcher.Invalid("topic", "names no topic")
		}
		return 0, nil, err
	}
	if e.At.IsZero() {
		e.At = a.d.Config.Now().UTC()
	}
	if err := a.d.Store.RecordConsent(r.Context(), id, e); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, e, nil
}

type consentsResponse struct {
	Current map[string]storepkg.ConsentCurrent `json:"current"`
	Ledger  []dispatcher.ConsentEvent          `json:"ledger"`
}

func (a *handler) getConsents(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, dispatcher.NotFound("contact")
	}
	ctx := r.Context()
	if ok, err := a.d.Store.ContactExists(ctx, id); err != nil {
		return 0, nil, err
	} else if !ok {
		return 0, nil, dispatcher.NotFound("contact")
	}
	cur, err := a.d.Store.ConsentStates(ctx, id)
	if err != nil {
		return 0, nil, err
	}
	out := consentsResponse{Current: cur}
	if out.Ledger, err = a.d.Store.ConsentLedger(ctx, id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

// --- topics, templates, segments

// putRecord serves PUT of a record named by the path's id: the body may
// repeat the id but not name another.
func putRecord[T any](id func(*T) *string, put func(context.Context, *T) error) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var v T
		if err := decodeJSON(w, r, &v); err != nil {
			return 0, nil, err
		}
		if err := sameID(*id(&v), r.PathValue("id")); err != nil {
			return 0, nil, err
		}
		*id(&v) = r.PathValue("id")
		if err := put(r.Context(), &v); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, v, nil
	}
}

// getRecord serves GET of a record named by the path's id.
func getRecord[T any](get func(context.Context, string) (*T, error)) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		v, err := get(r.Context(), r.PathValue("id"))
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, v, nil
	}
}

func (a *handler) getTopics(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ts, err := a.d.Store.Topics(r.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string][]dispatcher.Topic{"topics": ts}, nil
}

func (a *handler) topicStats(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ctx := r.Context()
	if _, err := a.d.Store.Topic(ctx, r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	f, err := a.d.Store.TopicFeedback(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"topic": r.PathValue("id"), "feedback": f}, nil
}

type previewRequest struct {
	Channel channels.Kind     `json:"channel"`
	Contact string            `json:"contact,omitempty"`
	Data    map[string]string `json:"data,omitempty"`
}

type previewResponse struct {
	Template string                 `json:"template"`
	Version  int                    `json:"version"`
	Channel  channels.Kind          `json:"channel"`
	From     string                 `json:"from,omitempty"`
	Subject  string                 `json:"subject,omitempty"`
	HTML     string                 `json:"html,omitempty"`
	Text     string                 `json:"text,omitempty"`
	Headers  map[string]string      `json:"headers,omitempty"`
	SMS      string                 `json:"sms,omitempty"`
	Segments *templates.SegmentInfo `json:"segments,omitempty"`
}

func (a *handler) previewTemplate(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var in previewRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	if !in.Channel.Valid() {
		return 0, nil, dispatcher.Invalid("channel", "must be email or sms")
	}
	if in.Contact != "" && in.Data != nil {
		return 0, nil, dispatcher.Invalid("contact", "set contact or data, not both")
	}
	ctx := r.Context()
	t, err := a.d.Store.Template(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	comp, err := templates.Compile(*t)
	if err != nil {
		return 0, nil, storepkg.TemplateError(err)
	}
	if !comp.Has(in.Channel) {
		return 0, nil, dispatcher.Invalid("channel", "the template has no %s part", in.Channel)
	}
	data := templates.Data{Attr: in.Data, Now: a.d.Config.Now()}
	if in.Contact != "" {
		c, err := a.d.Store.Contact(ctx, in.Contact)
		if errors.Is(err, dispatcher.ErrNotFound) {
			return 0, nil, dispatcher.Invalid("contact", "names no contact")
		}
		if err != nil {
			return 0, nil, err
		}
		data.Contact = templates.ContactData{ID: c.ID, Email: c.Email, Phone: c.Phone, Locale: c.Locale, Timezone: c.Timezone}
		data.Attr, data.Locale = c.Attributes, c.Locale
	}
	if data.Attr == nil {
		data.Attr = map[string]string{}
	}
	out, err := comp.Preview(in.Channel, data)
	if err != nil {
		return 0, nil, previewError(err)
	}
	resp := previewResponse{Template: t.ID, Version: t.Version, Channel: in.Channel}
	if in.Channel == channels.SMS {
		resp.SMS, resp.Segments = out.SMS, &out.Segments
	} else {
		resp.From, resp.Subject, resp.HTML, resp.Text, resp.Headers = out.From, out.Subject, out.HTML, out.Text, out.Headers
	}
	return http.StatusOK, resp, nil
}

// previewError names the part and, for a missing variable, the variable.
func previewError(err error) error {
	var fe *templates.FieldError
	if !errors.As(err, &fe) {
		return dispatcher.Invalid("template", "cannot be rendered")
	}
	msg := fe.Err.Error()
	var mv *templates.MissingVariableError
	if errors.As(err, &mv) {
		msg = fmt.Sprintf("missing variable %q", mv.Name)
	}
	if fe.Line > 0 {
		msg = fmt.Sprintf("line %d: %s", fe.Line, msg)
	}
	return &dispatcher.Error{Code: dispatcher.CodeInvalid, Field: fe.Field, Message: msg}
}

func (a *handler) countSegment(w http.ResponseWriter, r *http.Request) (int, any, error) {
	n, err := a.d.Store.CountSegment(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"segment": r.PathValue("id"), "count": n}, nil
}

// --- campaigns and runs

func (a *handler) createCampaign(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var c dispatcher.Campaign
	if err := decodeJSON(w, r, &c); err != nil {
		return 0, nil, err
	}
	if err := a.d.Pipeline.CreateCampaign(r.Context(), &c); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, c, nil
}

func (a *handler) getCampaign(w http.ResponseWriter, r *http.Request) (int, any, error) {
	c, err := a.d.Store.Campaign(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

func (a *handler) listCampaigns(w http.ResponseWriter, r *http.Request) (int, any, error) {
	cs, err := a.d.Store.Campaigns(r.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string][]dispatcher.Campaign{"campaigns": cs}, nil
}

func (a *handler) scheduleCampaign(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var s dispatcher.Schedule
	if err := decodeJSON(w, r, &s); err != nil {
		return 0, nil, err
	}
	c, err := a.d.Pipeline.ScheduleCampaign(r.Context(), r.PathValue("id"), s)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

func (a *handler) startCampaign(w http.ResponseWriter, r *http.Request) (int, any, error) {
	run, err := a.d.Pipeline.StartRun(r.Context(), r.PathValue("id"), a.d.Config.Now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, map[string]string{"run": run}, nil
}

func (a *handler) campaignAction(action string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		c, err := a.d.Pipeline.SetCampaignState(r.Context(), r.PathValue("id"), action)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, c, nil
	}
}

func (a *handler) campaignStats(w http.ResponseWriter, r *http.Request) (int, any, error) {
	runs, err := a.d.Pipeline.CampaignStats(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"campaign": r.PathValue("id"), "runs": runs}, nil
}

func (a *handler) getRun(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ctx := r.Context()
	run, err := a.d.Store.Run(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	dec, err := a.d.Store.Decisions(ctx, run.ID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, pipeline.RunStats{Run: run, Decisions: dec}, nil
}

// --- suppressions: the address travels in bodies only, never in URLs

type suppressionRequest struct {
	Channel channels.Kind `json:"channel"`
	Address string        `json:"address"`
	Reason  string        `json:"reason,omitempty"`
	Until   time.Time     `json:"until,omitzero"`
}

type addressRequest struct {
	Channel channels.Kind `json:"channel"`
	Address string        `json:"address"`
}

// checkAddressInput validates and normalises an address for channel k.
func checkAddressInput(k channels.Kind, addr string) (string, error) {
	if !k.Valid() {
		return "", dispatcher.Invalid("channel", "must be email or sms")
	}
	if addr == "" {
		return "", dispatcher.Invalid("address", "is required")
	}
	if k == channels.Email {
		a, err := dispatcher.NormalizeEmail(addr)
		if err != nil {
			return "", dispatcher.Invalid("address", "is not a valid email address")
		}
		return a, nil
	}
	p, err := dispatcher.NormalizePhone(addr)
	if err != nil {
		return "", dispatcher.Invalid("address", "is not a valid phone number in E.164 form (+33612345678)")
	}
	return p, nil
}

func (a *handler) postSuppression(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var in suppressionRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	addr, err := checkAddressInput(in.Channel, in.Address)
	if err != nil {
		return 0, nil, err
	}
	if !in.Until.IsZero() && !in.Until.After(a.d.Config.Now()) {
		return 0, nil, dispatcher.Invalid("until", "must be in the future (or left out for good)")
	}
	ctx := r.Context()
	if err := a.d.Store.Suppress(ctx, in.Channel, addr, in.Reason, in.Until); err != nil {
		return 0, nil, err
	}
	sup, err := a.d.Store.Suppression(ctx, in.Channel, addr)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, sup, nil
}

func (a *handler) deleteSuppression(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var in addressRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	addr, err := checkAddressInput(in.Channel, in.Address)
	if err != nil {
		return 0, nil, err
	}
	if err := a.d.Store.Unsuppress(r.Context(), in.Channel, addr); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func (a *handler) lookupSuppression(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var in addressRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	addr, err := checkAddressInput(in.Channel, in.Address)
	if err != nil {
		return 0, nil, err
	}
	sup, err := a.d.Store.Suppression(r.Context(), in.Channel, addr)
	if err != nil {
		if errors.Is(err, dispatcher.ErrNotFound) {
			return 0, nil, dispatcher.NotFound("suppression")
		}
		return 0, nil, err
	}
	return http.StatusOK, sup, nil
}
