package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
)

// Roles of console users.
const (
	RoleAdmin    = "admin"    // everything, and the users
	RoleMarketer = "marketer" // create, edit, schedule, start, pause, resume, cancel campaigns
	RoleReadOnly = "read-only"
)

// Roles lists the roles, most powerful first.
var Roles = []string{RoleAdmin, RoleMarketer, RoleReadOnly}

// allowed tells whether role may use a route that needs need.
func allowed(role string, need access) bool {
	switch need {
	case public, view:
		return slices.Contains(Roles, role)
	case edit:
		return role == RoleAdmin || role == RoleMarketer
	}
	return role == RoleAdmin
}

// userNamePattern keeps account names to handles: no "@", so that no
// email address ends up in logs and the audit log as a user's name.
var userNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// Password bounds.
const (
	minPassword = 12
	maxPassword = 256
)

// checkPassword returns an error with code invalid naming the field
// password when p is too short or too long.
func checkPassword(p string) error {
	if n := utf8.RuneCountInString(p); n < minPassword || len(p) > maxPassword {
		return dispatcher.Invalid("password", "must be %d to %d characters", minPassword, maxPassword)
	}
	return nil
}

// checkUser validates an account's name, role and zone.
func checkUser(name, role, tz string) error {
	if !userNamePattern.MatchString(name) {
		return dispatcher.Invalid("name", "must be 1-64 lower-case letters, digits, _ . -")
	}
	if !slices.Contains(Roles, role) {
		return dispatcher.Invalid("role", "must be one of %s", strings.Join(Roles, ", "))
	}
	if tz != "" {
		if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
			return dispatcher.Invalid("timezone", "is not an IANA time zone name")
		}
	}
	return nil
}

// argon2id parameters: OWASP's first recommended setting (19 MiB, 2
// passes, 1 lane), about 30 ms a hash here: cheap enough for a sign-in,
// costly enough for a guesser.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns the argon2id hash of p, in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
func HashPassword(p string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(p), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// CheckPassword tells whether p matches hash (HashPassword), comparing in
// constant time.
func CheckPassword(hash, p string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var v int
	var m uint32
	var t uint32
	var th uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &th); err != nil || m == 0 || m > 1<<21 || t == 0 || t > 16 || th == 0 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(p), salt, t, m, th, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is checked against when an account does not exist, so that a
// sign-in takes as long whether it does or not. Made on first use: every
// command of the binary links this package.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("missive-no-such-account")
	return h
})

// AddUser creates a console account. Returns an error with code invalid
// naming the field at fault, or conflict when the name is taken.
func AddUser(ctx context.Context, st *store.Store, name, role, tz, password string) error {
	if err := checkUser(name, role, tz); err != nil {
		return err
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	h, err := HashPassword(password)
	if err != nil {
		return err
	}
	return st.AddConsoleUser(ctx, &store.ConsoleUser{Name: name, Role: role, Timezone: tz, PasswordHash: h})
}

// SetPassword gives an account a new password and signs its sessions
// out. Returns an error with code invalid naming password, or not_found.
func SetPassword(ctx context.Context, st *store.Store, name, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	u, err := st.ConsoleUser(ctx, name)
	if err != nil {
		return err
	}
	if u.PasswordHash, err = HashPassword(password); err != nil {
		return err
	}
	return st.UpdateConsoleUser(ctx, u, true)
}

// RemoveUser deletes an account and signs it out. Returns an error with
// code not_found.
func RemoveUser(ctx context.Context, st *store.Store, name string) error {
	return st.RemoveConsoleUser(ctx, name)
}

// The cookies: the session's id, and the pre-session token that the
// sign-in form's CSRF token derives from.
const (
	sessionCookie = "missive_console"
	preCookie     = "missive_console_pre"
	csrfField     = "csrf"
)

func hashID(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// csrfToken is the CSRF token of a session (or of a pre-session token):
// a MAC of its id, so nothing needs storing.
func (c *Console) csrfToken(sid string) string {
	m := hmac.New(sha256.New, c.csrf)
	m.Write([]byte(sid))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF compares a form's token with the session's in constant time.
func (c *Console) validCSRF(sid, got string) bool {
	want := c.csrfToken(sid)
	return sid != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// preToken returns the CSRF token of the sign-in form, setting the
// pre-session cookie it derives from when there is none.
func (c *Console) preToken(w http.ResponseWriter, r *http.Request) string {
	ck, err := r.Cookie(preCookie)
	if err == nil && len(ck.Value) == 43 {
		return c.csrfToken("pre:" + ck.Value)
	}
	v := newID()
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: v, Path: c.cfg.Path + "/", HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
	return c.csrfToken("pre:" + v)
}

// session returns the signed-in user of r, or nil. A session past its
// idle or absolute expiry, or whose account is gone, is signed out.
func (c *Console) session(w http.ResponseWriter, r *http.Request) (*signedIn, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || len(ck.Value) != 43 {
		return nil, nil
	}
	ctx := r.Context()
	h := hashID(ck.Value)
	sess, err := c.st.ConsoleSession(ctx, h)
	if dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := c.d.Config.Now()
	if now.Sub(sess.Created) >= c.cfg.SessionMax || now.Sub(sess.Seen) >= c.cfg.SessionIdle {
		return nil, c.st.DeleteConsoleSession(ctx, h)
	}
	u, err := c.st.ConsoleUser(ctx, sess.User)
	if dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		return nil, c.st.DeleteConsoleSession(ctx, h)
	}
	if err != nil {
		return nil, err
	}
	// The event stream of a run page is no activity of the user's.
	if !strings.HasSuffix(r.URL.Path, "/events") {
		idle := min(c.cfg.SessionIdle, c.cfg.SessionMax-now.Sub(sess.Created))
		if err := c.st.TouchConsoleSession(ctx, h, now, idle); err != nil {
			return nil, err
		}
	}
	return &signedIn{user: u, sid: ck.Value}, nil
}

// signinView is the sign-in form.
type signinView struct {
	Name   string
	Next   string
	Failed bool
	// Locked is how long sign-ins stay refused, in minutes, or 0.
	Locked int
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "signin.html", "", signinView{Next: safeNext(c.cfg.Path, r.URL.Query().Get("next"))}, "")
}

// signin checks a name and password. Failures are counted per account
// name and per client address, whether the account exists or not, and
// the answer never says which.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ck, err := r.Cookie(preCookie)
	if err != nil || !c.validCSRF("pre:"+ck.Value, r.PostFormValue(csrfField)) {
		c.fail(w, r, nil, &dispatcher.Error{Code: dispatcher.CodeForbidden, Field: csrfField, Message: "the form expired; reload the page and retry"})
		return
	}
	name := strings.ToLower(strings.TrimSpace(r.PostFormValue("name")))
	password := r.PostFormValue("password")
	view := signinView{Name: name, Next: safeNext(c.cfg.Path, r.PostFormValue("next"))}
	if len(name) > 64 {
		name = name[:64]
	}
	subjects := []string{"user:" + name}
	if a := c.cfg.ClientAddr(r); a.IsValid() {
		subjects = append(subjects, "addr:"+a.String())
	}
	wait, err := c.st.ConsoleLockout(ctx, failedLimit, subjects...)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if wait > 0 {
		view.Locked = int((wait + time.Minute - 1) / time.Minute)
		c.render(w, r, http.StatusTooManyRequests, "signin.html", "", view, "")
		return
	}
	u, err := c.st.ConsoleUser(ctx, name)
	if err != nil && !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		c.fail(w, r, nil, err)
		return
	}
	ok := false
	if u != nil && err == nil {
		ok = CheckPassword(u.PasswordHash, password)
	} else {
		CheckPassword(dummyHash(), password)
	}
	if !ok {
		if err := c.st.RecordConsoleFailure(ctx, lockWindow, subjects...); err != nil {
			c.fail(w, r, nil, err)
			return
		}
		view.Failed = true
		c.render(w, r, http.StatusUnauthorized, "signin.html", "", view, "")
		return
	}
	if err := c.st.ClearConsoleFailures(ctx, subjects[0]); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	sid := newID()
	now := c.d.Config.Now()
	if err := c.st.CreateConsoleSession(ctx, hashID(sid), store.ConsoleSession{User: u.Name, Created: now, Seen: now}, c.cfg.SessionIdle); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sid, Path: c.cfg.Path + "/", HttpOnly: true, Secure: c.secure,
		SameSite: http.SameSiteLaxMode})
	c.log.Info("console: signed in", "user", u.Name, "role", u.Role)
	http.Redirect(w, r, view.Next, http.StatusSeeOther)
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request) {
	u := userOf(r)
	if err := c.st.DeleteConsoleSession(r.Context(), hashID(u.sid)); err != nil {
		c.fail(w, r, u, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: c.cfg.Path + "/", MaxAge: -1, HttpOnly: true, Secure: c.secure,
		SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, c.cfg.Path+"/signin", http.StatusSeeOther)
}

// usersView is the users page.
type usersView struct {
	Users  []store.ConsoleUser
	Roles  []string
	Errors map[string]string
	Form   map[string]string
}

func (c *Console) users(w http.ResponseWriter, r *http.Request) {
	c.usersPage(w, r, http.StatusOK, nil, nil)
}

func (c *Console) usersPage(w http.ResponseWriter, r *http.Request, status int, form map[string]string, err error) {
	us, lerr := c.st.ConsoleUsers(r.Context())
	if lerr != nil {
		c.fail(w, r, nil, lerr)
		return
	}
	for i := range us {
		us[i].PasswordHash = ""
	}
	v := usersView{Users: us, Roles: Roles, Form: form}
	fieldErrs, pageErr := fieldErrors(err)
	v.Errors = fieldErrs
	c.render(w, r, status, "users.html", "users", v, pageErr)
}

func (c *Console) addUser(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{"name": strings.TrimSpace(r.PostFormValue("name")), "role": r.PostFormValue("role"),
		"timezone": strings.TrimSpace(r.PostFormValue("timezone"))}
	if err := AddUser(r.Context(), c.st, form["name"], form["role"], form["timezone"], r.PostFormValue("password")); err != nil {
		c.usersPage(w, r, statusOf(err), form, err)
		return
	}
	c.audit(r, "user.add", form["name"], form["role"])
	http.Redirect(w, r, c.cfg.Path+"/users", http.StatusSeeOther)
}

// userAction removes an account or sets its password.
func (c *Console) userAction(w http.ResponseWriter, r *http.Request) {
	name, me := r.PathValue("name"), userOf(r).user.Name
	var err error
	switch r.PathValue("action") {
	case "remove":
		if name == me {
			err = dispatcher.Conflict("you cannot remove your own account")
			break
		}
		err = RemoveUser(r.Context(), c.st, name)
	case "password":
		err = SetPassword(r.Context(), c.st, name, r.PostFormValue("password"))
	default:
		err = dispatcher.NotFound("action")
	}
	if err != nil {
		c.usersPage(w, r, statusOf(err), nil, err)
		return
	}
	c.audit(r, "user."+r.PathValue("action"), name, "")
	http.Redirect(w, r, c.cfg.Path+"/users", http.StatusSeeOther)
}

// statusOf is the HTTP status of err.
func statusOf(err error) int {
	s, _ := dispatcher.HTTPStatus(err)
	return s
}

// fieldErrors splits err into the message of the form field it names
// and, for an error that names none, the page's message. Internal errors
// are shown without their text.
func fieldErrors(err error) (map[string]string, string) {
	if err == nil {
		return nil, ""
	}
	var e *dispatcher.Error
	if !errors.As(err, &e) || e.Code == dispatcher.CodeInternal {
		return nil, "internal error"
	}
	if e.Field == "" {
		return nil, e.Message
	}
	field := e.Field
	if i := strings.IndexByte(field, '['); i > 0 {
		field = field[:i]
	}
	return map[string]string{field: e.Message}, ""
}

// audit records a change made in the console in the audit log, as the
// API records its own: the actor is "console:<user>" where the API names
// its key; the actions are the API's names.
func (c *Console) audit(r *http.Request, action, target, detail string) {
	e := &store.AuditEntry{At: c.d.Config.Now().UTC(), Key: "console:" + userOf(r).user.Name, Action: action, Target: target, Detail: detail}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := c.st.AppendAudit(ctx, e); err != nil {
		c.log.Error("console: audit entry lost", "action", action, "user", userOf(r).user.Name, "error", err)
	}
}
