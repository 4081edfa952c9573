package console

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/page"
	"github.com/missive-dev/missive/dispatcher/store"
)

// Config configures the console. Zero values take the defaults named in
// each field's comment.
type Config struct {
	// Dispatcher does everything the console shows or changes. Required.
	Dispatcher *app.Dispatcher
	// Path is where the console is mounted. Default "/console".
	Path string
	// SessionIdle signs a session out after that long without a request.
	// Default 30 minutes.
	SessionIdle time.Duration
	// SessionMax signs a session out that long after sign-in, whatever
	// its activity. Default 12 hours.
	SessionMax time.Duration
	// ClientAddr returns the client's address of a request, for the
	// sign-in lock-out (api.ClientAddr with the trusted proxies). Default:
	// the connection's peer.
	ClientAddr func(*http.Request) netip.Addr
	// SecureCookies marks the session cookie Secure. Default: when the
	// Dispatcher's PublicURL is https.
	SecureCookies *bool
	// LiveEvery is how often the run page's events carry the counters.
	// Default 1 second.
	LiveEvery time.Duration
}

// Lock-out: failedLimit failed sign-ins of one account name, or from one
// client address, refuse further sign-ins for lockWindow from the first.
const (
	failedLimit = 5
	lockWindow  = 15 * time.Minute
)

// files are the page templates (layout.html frames them all) and the
// static files (the stylesheet, the live-progress script).
//
//go:embed templates/*.html static
var files embed.FS

// Console is the console's http.Handler.
type Console struct {
	cfg    Config
	d      *app.Dispatcher
	st     *store.Store
	log    *slog.Logger
	mux    *http.ServeMux
	csrf   []byte
	pages  map[string]*template.Template
	secure bool
}

// access is what a route needs.
type access int

const (
	public access = iota // no session (sign-in, static files)
	view                 // any role
	edit                 // marketer or admin
	admin                // admin only
)

// New validates cfg and returns the console. It panics if the embedded
// templates do not parse, which tests catch.
func New(cfg Config) (*Console, error) {
	if cfg.Dispatcher == nil {
		return nil, errors.New("console: Config.Dispatcher is required")
	}
	cfg.Path = strings.TrimRight(cmp.Or(cfg.Path, "/console"), "/")
	cfg.SessionIdle = cmp.Or(cfg.SessionIdle, 30*time.Minute)
	cfg.SessionMax = cmp.Or(cfg.SessionMax, 12*time.Hour)
	cfg.LiveEvery = cmp.Or(cfg.LiveEvery, time.Second)
	if cfg.SessionIdle > cfg.SessionMax {
		return nil, errors.New("console: Config.SessionIdle must not exceed SessionMax")
	}
	if cfg.ClientAddr == nil {
		cfg.ClientAddr = func(r *http.Request) netip.Addr {
			ap, err := netip.ParseAddrPort(r.RemoteAddr)
			if err != nil {
				return netip.Addr{}
			}
			return ap.Addr().Unmap()
		}
	}
	d := cfg.Dispatcher
	c := &Console{cfg: cfg, d: d, st: d.Store, log: d.Logger, mux: http.NewServeMux(),
		csrf: store.DeriveKey(d.Config.Secret, "console-csrf"), pages: parsePages()}
	c.secure = strings.HasPrefix(d.Config.PublicURL, "https://")
	if cfg.SecureCookies != nil {
		c.secure = *cfg.SecureCookies
	}
	p := cfg.Path
	routes := []struct {
		pattern string
		need    access
		h       http.HandlerFunc
	}{
		{"GET " + p + "/{$}", view, c.home},
		{"GET " + p + "/signin", public, c.signinPage},
		{"POST " + p + "/signin", public, c.signin},
		{"POST " + p + "/signout", view, c.signout},
		{"GET " + p + "/campaigns", view, c.campaigns},
		{"GET " + p + "/campaigns/new", edit, c.newCampaign},
		{"POST " + p + "/campaigns", edit, c.createCampaign},
		{"GET " + p + "/campaigns/{id}", view, c.campaign},
		{"GET " + p + "/campaigns/{id}/edit", edit, c.editCampaign},
		{"POST " + p + "/campaigns/{id}/edit", edit, c.saveCampaign},
		{"POST " + p + "/campaigns/{id}/schedule", edit, c.scheduleCampaign},
		{"POST " + p + "/campaigns/{id}/{action}", edit, c.campaignAction},
		{"GET " + p + "/sequences", view, c.sequences},
		{"GET " + p + "/sequences/new", edit, c.sequencePageGet},
		{"POST " + p + "/sequences", edit, c.putSequence},
		{"GET " + p + "/sequences/{id}", view, c.sequencePageGet},
		{"POST " + p + "/sequences/{id}", edit, c.putSequence},
		{"POST " + p + "/sequences/{id}/{action}", edit, c.sequenceAction},
		{"GET " + p + "/runs/{id}", view, c.run},
		{"GET " + p + "/runs/{id}/events", view, c.runEvents},
		{"POST " + p + "/runs/{id}/{action}", edit, c.runAction},
		{"GET " + p + "/runs/{id}/analytics", view, c.runAnalytics},
		{"GET " + p + "/templates", view, c.templatesList},
		{"GET " + p + "/templates/new", edit, c.newTemplate},
		{"POST " + p + "/templates", edit, c.createTemplate},
		{"GET " + p + "/templates/{id}", view, c.editTemplate},
		{"POST " + p + "/templates/{id}", edit, c.saveTemplate},
		{"POST " + p + "/templates/new/preview", view, c.previewTemplate},
		{"POST " + p + "/templates/{id}/preview", view, c.previewTemplate},
		{"GET " + p + "/segments", view, c.segments},
		{"GET " + p + "/segments/new", edit, c.newSegment},
		{"POST " + p + "/segments", edit, c.putSegment},
		{"GET " + p + "/segments/{id}", view, c.segment},
		{"POST " + p + "/segments/{id}", edit, c.putSegment},
		{"GET " + p + "/topics", view, c.topics},
		{"GET " + p + "/topics/new", edit, c.newTopic},
		{"POST " + p + "/topics", edit, c.putTopic},
		{"GET " + p + "/topics/{id}", view, c.topic},
		{"POST " + p + "/topics/{id}", edit, c.putTopic},
		{"GET " + p + "/topics/{id}/analytics", view, c.topicAnalytics},
		{"GET " + p + "/suppressions", edit, c.suppressions},
		{"POST " + p + "/suppressions/{action}", edit, c.suppressionAction},
		{"GET " + p + "/contacts", view, c.contacts},
		{"POST " + p + "/contacts/find", view, c.findContact},
		{"GET " + p + "/contacts/{id}", view, c.contact},
		{"POST " + p + "/contacts/{id}/sequences/{seq}/stop", edit, c.stopEnrolment},
		{"GET " + p + "/contacts/{id}/export", admin, c.exportContact},
		{"GET " + p + "/contacts/{id}/erase", admin, c.confirmErase},
		{"POST " + p + "/contacts/{id}/erase", admin, c.eraseContact},
		{"GET " + p + "/users", admin, c.users},
		{"POST " + p + "/users", admin, c.addUser},
		{"POST " + p + "/users/{name}/{action}", admin, c.userAction},
	}
	for _, rt := range routes {
		c.mux.Handle(rt.pattern, c.guard(rt.need, rt.h))
	}
	static, _ := fs.Sub(files, "static")
	c.mux.Handle("GET "+p+"/static/", http.StripPrefix(p+"/static/", staticFiles(http.FileServerFS(static))))
	return c, nil
}

// staticFiles sets the headers of the stylesheet and the script: public,
// cached briefly, never sniffed.
func staticFiles(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.ServeHTTP(w, r)
	})
}

// ServeHTTP serves the console's routes; anything else under its path is
// a 404 page.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := c.mux.Handler(r); pattern == "" {
		headers(w)
		c.fail(w, r, nil, dispatcher.NotFound("page"))
		return
	}
	c.mux.ServeHTTP(w, r)
}

// ctxKey keys the signed-in user in a request's context.
type ctxKey struct{}

// signedIn is the user of a request, with its session.
type signedIn struct {
	user *store.ConsoleUser
	// sid is the session's id, as the cookie carries it: the CSRF token
	// derives from it.
	sid string
}

func userOf(r *http.Request) *signedIn {
	u, _ := r.Context().Value(ctxKey{}).(*signedIn)
	return u
}

// guard sets the headers, then, for routes behind sign-in, finds the
// session (or sends to the sign-in page), checks the role and the CSRF
// token of a POST, and runs h.
func (c *Console) guard(need access, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers(w)
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		}
		if need == public {
			h(w, r)
			return
		}
		u, err := c.session(w, r)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		if u == nil {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/events") {
				http.Redirect(w, r, c.cfg.Path+"/signin?next="+url.QueryEscape(safeNext(c.cfg.Path, r.URL.RequestURI())), http.StatusSeeOther)
				return
			}
			c.fail(w, r, nil, &dispatcher.Error{Code: dispatcher.CodeUnauthorized, Message: "sign in first"})
			return
		}
		ctx := context.WithValue(r.Context(), ctxKey{}, u)
		r = r.WithContext(ctx)
		if !allowed(u.user.Role, need) {
			c.fail(w, r, u, &dispatcher.Error{Code: dispatcher.CodeForbidden, Message: "your role does not allow this"})
			return
		}
		if r.Method == http.MethodPost && !c.validCSRF(u.sid, r.PostFormValue(csrfField)) {
			c.fail(w, r, u, &dispatcher.Error{Code: dispatcher.CodeForbidden, Field: csrfField, Message: "the form expired; reload the page and retry"})
			return
		}
		h(w, r)
	})
}

// maxForm bounds a form's body.
const maxForm = 64 << 10

// headers are every console answer's: scripts, styles and images from
// the console only, never framed, never cached (pages show the
// campaigns' figures), no referrer outside the console.
func headers(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// navEntry is an entry of the one nav bar: its catalogue key (nav.<key>),
// its path under the console, and the access it needs (shown only to
// the roles that have it).
type navEntry struct {
	Key, Path string
	need      access
}

// menu is the nav bar, in order. A new screen adds its line here.
var menu = []navEntry{
	{"campaigns", "/campaigns", view},
	{"sequences", "/sequences", view},
	{"templates", "/templates", view},
	{"segments", "/segments", view},
	{"topics", "/topics", view},
	{"contacts", "/contacts", view},
	{"suppressions", "/suppressions", edit},
	{"users", "/users", admin},
}

// pageData is what every page template gets: the page's own view in
// View, and what the layout needs.
type pageData struct {
	Lang  page.Lang
	Base  string // the console's path
	User  *store.ConsoleUser
	CSRF  string
	Loc   *time.Location
	Title string
	Nav   string // the nav entry of the page
	Menu  []navEntry
	Error string // an error not tied to a field
	View  any
}

// render writes a page: the layout with name's title and body, rendered
// whole before anything is written.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, nav string, view any, pageErr string) {
	u := userOf(r)
	data := pageData{Lang: c.lang(w, r), Base: c.cfg.Path, Nav: nav, Error: pageErr, View: view, Loc: time.UTC}
	if u != nil {
		data.User, data.CSRF, data.Loc = u.user, c.csrfToken(u.sid), c.location(u.user)
		for _, e := range menu {
			if allowed(u.user.Role, e.need) {
				data.Menu = append(data.Menu, e)
			}
		}
	}
	if name == "signin.html" {
		data.CSRF = c.preToken(w, r)
	}
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, data); err != nil {
		c.log.Error("console: render", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", string(data.Lang))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail answers err as an error page with its status (HTTPStatus, the one
// mapping of codes to statuses); internal errors are logged, never shown.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, u *signedIn, err error) {
	status, e := dispatcher.HTTPStatus(err)
	if status == http.StatusInternalServerError {
		c.log.Error("console: request failed", "method", r.Method, "route", r.Pattern, "error", err)
	}
	if u != nil && userOf(r) == nil {
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, u))
	}
	c.render(w, r, status, "error.html", "", e, "")
}

// location is the zone a user reads and writes times in.
func (c *Console) location(u *store.ConsoleUser) *time.Location {
	if loc, err := time.LoadLocation(cmp.Or(u.Timezone, c.d.Config.DefaultTimezone)); err == nil {
		return loc
	}
	return time.UTC
}

// langCookie keeps the language a user chose.
const langCookie = "missive_console_lang"

// lang is the page's language: ?lang= (which the language links carry,
// and which is remembered), the remembered choice, else Accept-Language.
func (c *Console) lang(w http.ResponseWriter, r *http.Request) page.Lang {
	if l, ok := page.ParseLang(r.URL.Query().Get("lang")); ok {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: string(l), Path: c.cfg.Path + "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
		return l
	}
	choice := ""
	if ck, err := r.Cookie(langCookie); err == nil {
		choice = ck.Value
	}
	return page.Negotiate(choice, "", r.Header.Get("Accept-Language"))
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, c.cfg.Path+"/campaigns", http.StatusSeeOther)
}

// safeNext keeps a return path only when it stays in the console.
func safeNext(base, next string) string {
	if strings.HasPrefix(next, base+"/") && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return base + "/campaigns"
}
