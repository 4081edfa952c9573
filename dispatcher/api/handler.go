package api

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/pipeline"
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

// Config configures the HTTP API (New).
type Config struct {
	// Keys are the API clients; the /v1 routes need one of them as a
	// bearer token. None: every /v1 call is refused.
	Keys []APIKey
	// TrustedProxies are the reverse proxies whose word on the client's
	// address is taken (MISSIVE_TRUSTED_PROXIES): a request whose peer is
	// in one of them is counted, by the sign-up limit and in the sign-up
	// evidence, as coming from the address ClientIPHeader names. Empty:
	// the peer is the client, whatever the headers say.
	TrustedProxies []netip.Prefix
	// ClientIPHeader is the header the trusted proxies append the client
	// to: HeaderXForwardedFor (the default) or HeaderForwarded (RFC 7239).
	// Only the one the proxies write may be read: a client can send the
	// other one with any address in it.
	ClientIPHeader string
	// ImportTimeout bounds the read of a bulk import's body and its
	// answer, which the server's own read and write timeouts would cut.
	// It is set once the API key is checked. Default 15 minutes.
	ImportTimeout time.Duration
}

// api serves the HTTP API of one Dispatcher.
type handler struct {
	d       *app.Dispatcher
	cfg     Config
	mux     *http.ServeMux
	keys    []APIKey
	digests [][32]byte
}

// apiFunc handles an authenticated API call: it returns the status and the
// value to send as JSON, or an error that httpStatus maps.
type apiFunc func(w http.ResponseWriter, r *http.Request) (int, any, error)

// Handler returns the HTTP API: the /v1 routes, which need one of keys as
// a bearer token, the public unsubscribe pages and the health checks. It
// is New with only keys set.
func Handler(d *app.Dispatcher, keys []APIKey) http.Handler {
	return New(d, Config{Keys: keys})
}

// New returns the HTTP API of d configured by cfg. It panics when
// cfg.ClientIPHeader is neither empty nor one of the two headers, a
// wiring error that configuration parsing catches first.
func New(d *app.Dispatcher, cfg Config) http.Handler {
	cfg.ClientIPHeader = cmp.Or(cfg.ClientIPHeader, HeaderXForwardedFor)
	if cfg.ClientIPHeader != HeaderXForwardedFor && cfg.ClientIPHeader != HeaderForwarded {
		panic("api: ClientIPHeader must be " + HeaderXForwardedFor + " or " + HeaderForwarded)
	}
	cfg.ImportTimeout = cmp.Or(cfg.ImportTimeout, 15*time.Minute)
	keys := cfg.Keys
	a := &handler{d: d, cfg: cfg, mux: http.NewServeMux(), keys: keys}
	for _, k := range keys {
		a.digests = append(a.digests, sha256.Sum256([]byte(k.Secret)))
	}
	a.mount()
	return a
}

// route is a row of the /v1 route table. Each route needs a scope; audit
// names the action recorded in the audit log when the call succeeds
// (empty: not recorded). An empty scope or audit falls back to
// routeScopes and routeAudits.
type route struct {
	pattern string
	scope   Scope
	audit   string
	h       apiFunc
}

// routes is the table of the authenticated /v1 routes: mount serves them
// and the OpenAPI document (openapi.json) describes each one.
func (a *handler) routes() []route {
	const cpg, ctc, snd, prv = ScopeCampaigns, ScopeContacts, ScopeSends, ScopePrivacy
	return []route{
		{"PUT /v1/contacts/{id}", ctc, "contact.upsert", a.putContact},
		{"GET /v1/contacts/{id}", ctc, "", contactRoute(a.d.Store.Contact)},
		{"DELETE /v1/contacts/{id}", "", "", contactRoute(a.d.Privacy.EraseContact)},
		{"GET /v1/contacts/{id}/export", "", "", contactRoute(a.d.Privacy.ExportContact)},
		{"GET /v1/contacts/{id}/ledger/verify", prv, "", contactRoute(a.d.Store.VerifyLedger)},
		{"POST /v1/contacts/import", ctc, "contact.import", a.importContacts},
		{"POST /v1/contacts/{id}/consents", ctc, "consent.record", a.postConsent},
		{"GET /v1/contacts/{id}/consents", ctc, "", contactRoute(a.consents)},
		{"PUT /v1/contacts/{id}/preferences", ctc, "preferences.put", a.putPreferences},
		{"POST /v1/wordings", ctc, "wording.put", a.postWording},
		{"GET /v1/wordings/{id}", ctc, "", getRecord(a.d.Store.Wording)},
		{"PUT /v1/topics/{id}", cpg, "topic.put", putRecord(func(t *dispatcher.Topic) *string { return &t.ID }, a.d.Store.PutTopic)},
		{"GET /v1/topics", cpg, "", listRecords("topics", a.d.Store.Topics)},
		{"GET /v1/topics/{id}/stats", cpg, "", a.topicStats},
		{"GET /v1/topics/{id}/analytics", cpg, "", a.topicAnalytics},
		{"PUT /v1/templates/{id}", cpg, "template.put", putRecord(func(t *templates.Template) *string { return &t.ID }, a.d.Store.PutTemplate)},
		{"GET /v1/templates/{id}", cpg, "", getRecord(a.d.Store.Template)},
		{"POST /v1/templates/{id}/preview", cpg, "", a.previewTemplate},
		{"PUT /v1/segments/{id}", cpg, "segment.put", putRecord(func(sg *dispatcher.Segment) *string { return &sg.ID }, a.d.Store.PutSegment)},
		{"GET /v1/segments/{id}", cpg, "", getRecord(a.d.Store.Segment)},
		{"GET /v1/segments/{id}/count", cpg, "", a.countSegment},
		{"POST /v1/campaigns", cpg, "campaign.create", a.createCampaign},
		{"GET /v1/campaigns", cpg, "", listRecords("campaigns", a.d.Store.Campaigns)},
		{"GET /v1/campaigns/{id}", cpg, "", a.getCampaign},
		{"POST /v1/campaigns/{id}/schedule", cpg, "campaign.schedule", a.scheduleCampaign},
		{"POST /v1/campaigns/{id}/start", cpg, "campaign.start", a.startCampaign},
		{"POST /v1/campaigns/{id}/pause", cpg, "campaign.pause", a.campaignAction(pipeline.ActionPause)},
		{"POST /v1/campaigns/{id}/resume", cpg, "campaign.resume", a.campaignAction(pipeline.ActionResume)},
		{"POST /v1/campaigns/{id}/cancel", cpg, "campaign.cancel", a.campaignAction(pipeline.ActionCancel)},
		{"GET /v1/campaigns/{id}/stats", cpg, "", a.campaignStats},
		{"GET /v1/runs/{id}", cpg, "", a.getRun},
		{"GET /v1/runs/{id}/analytics", cpg, "", a.runAnalytics},
		{"GET /v1/runs/{id}/sends", cpg, "", a.listRunSends},
		{"POST /v1/runs/{id}/pause", cpg, "run.pause", a.runAction(pipeline.ActionPause)},
		{"POST /v1/runs/{id}/resume", cpg, "run.resume", a.runAction(pipeline.ActionResume)},
		{"POST /v1/runs/{id}/cancel", cpg, "run.cancel", a.runAction(pipeline.ActionCancel)},
		{"PUT /v1/sequences/{id}", cpg, "sequence.put", a.putSequence},
		{"GET /v1/sequences", cpg, "", a.listSequences},
		{"GET /v1/sequences/{id}", cpg, "", a.getSequence},
		{"POST /v1/sequences/{id}/pause", cpg, "sequence.pause", a.sequencePause(true)},
		{"POST /v1/sequences/{id}/resume", cpg, "sequence.resume", a.sequencePause(false)},
		{"POST /v1/sequences/{id}/enrol", snd, "", a.enrol},
		{"POST /v1/sequences/{id}/enrolments/{contact}/stop", cpg, "enrolment.stop", a.stopEnrolment},
		{"GET /v1/contacts/{id}/enrolments", ctc, "", contactRoute(a.enrolments)},
		{"POST /v1/sends", snd, "", a.postSend},
		{"GET /v1/sends/{id}", snd, "", a.getSend},
		{"POST /v1/suppressions", prv, "suppression.add", a.postSuppression},
		{"DELETE /v1/suppressions", prv, "suppression.remove", a.deleteSuppression},
		{"POST /v1/suppressions/lookup", prv, "", a.lookupSuppression},
		{"GET /v1/audit", prv, "", a.getAudit},
		{"GET /v1/register", prv, "", a.getRegister},
		{"POST /v1/webhooks", prv, "webhook.create", a.postWebhook},
		{"GET /v1/webhooks", prv, "", listRecords("webhooks", a.d.Webhooks.List)},
		{"DELETE /v1/webhooks/{id}", prv, "webhook.delete", a.deleteWebhook},
		{"GET /v1/webhooks/{id}/deliveries", prv, "", a.getWebhookDeliveries},
		{"POST /v1/webhooks/{id}/replay", prv, "webhook.replay", a.replayWebhook},
	}
}

// mount registers the route table, the public pages, the webhooks and the
// operations routes.
func (a *handler) mount() {
	d := a.d
	for _, rt := range a.routes() {
		a.mux.Handle(rt.pattern, a.auth(scopeOf(rt.pattern, rt.scope), cmp.Or(rt.audit, routeAudits[rt.pattern]), rt.h))
	}
	a.mux.HandleFunc(openAPIPattern, serveOpenAPI)
	a.mux.HandleFunc("GET /u/{token}", a.unsubscribePage)
	a.mux.HandleFunc("POST /u/{token}", a.unsubscribeOneClick)
	a.mountPreferences()
	a.mountSubscribe()
	d.Hooks.Mount(a.mux)
	d.MountHealth(a.mux)
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
		r = r.WithContext(withKey(r.Context(), key))
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

// --- contacts

// --- topics, templates, segments

// --- campaigns and runs

// --- suppressions: the address travels in bodies only, never in URLs
