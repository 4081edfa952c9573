package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
)

// campaignValues is a valid campaign form.
func campaignValues(id, csrf string) url.Values {
	return url.Values{"csrf": {csrf}, "id": {id}, "name": {"Spring"}, "topic": {"newsletter"}, "segment": {"vips"},
		"channels": {"email"}, "templates.email": {"news-mail"}}
}

func (b *testBundle) campaignExists(t *testing.T, id string) bool {
	t.Helper()
	_, err := b.d.Store.Campaign(context.Background(), id)
	if err != nil && !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestSignInRedirectsAndHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	c := b.client(t)
	a := c.get("/console/campaigns")
	if a.status != http.StatusSeeOther || !strings.HasPrefix(a.header.Get("Location"), "/console/signin?next=") {
		t.Fatalf("signed out: %d to %q, want 303 to the sign-in page", a.status, a.header.Get("Location"))
	}
	a = c.signIn("mark", testPassword)
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/console/campaigns" {
		t.Fatalf("sign in: %d to %q", a.status, a.header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range c.hc.Jar.Cookies(mustURL(t, b.srv.URL+"/console/")) {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	// The store knows the session by its hash only.
	keys := b.d.Config.Redis.Keys(context.Background(), b.d.Store.Key("console", "session", "*")).Val()
	if len(keys) != 1 || strings.Contains(keys[0], session.Value) || !strings.HasSuffix(keys[0], hashID(session.Value)) {
		t.Errorf("session keys %q", keys)
	}
	a = c.get("/console/campaigns")
	if a.status != http.StatusOK {
		t.Fatalf("campaigns: %d", a.status)
	}
	for h, want := range map[string]string{
		"Cache-Control":   "no-store",
		"X-Frame-Options": "DENY",
		"Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; " +
			"form-action 'self'; frame-ancestors 'none'",
	} {
		if got := a.header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	// Sign-out ends the session for good.
	tok := csrfPattern.FindStringSubmatch(a.body)[1]
	if a := c.post("/console/signout", url.Values{"csrf": {tok}}); a.status != http.StatusSeeOther {
		t.Fatalf("sign out: %d", a.status)
	}
	if a := c.get("/console/campaigns"); a.status != http.StatusSeeOther {
		t.Errorf("after sign-out: %d, want 303", a.status)
	}
	if n := len(b.d.Config.Redis.Keys(context.Background(), b.d.Store.Key("console", "session", "*")).Val()); n != 0 {
		t.Errorf("%d sessions left after sign-out", n)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestCSRFRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	c := b.signedIn(t, "mark")
	good := c.csrf("/console/campaigns/new")
	other := b.signedIn(t, "ana").csrf("/console/campaigns")
	wrong := "A" + good[1:]
	if good[0] == 'A' {
		wrong = "B" + good[1:]
	}
	for name, tok := range map[string]string{"none": "", "wrong": wrong, "another session's": other} {
		a := c.post("/console/campaigns", campaignValues("spring", tok))
		if a.status != http.StatusForbidden || !strings.Contains(a.body, "This form has expired") {
			t.Errorf("%s token: %d, want 403 and the form expired\n%s", name, a.status, a.body)
		}
		if b.campaignExists(t, "spring") {
			t.Fatalf("%s token: the campaign was created", name)
		}
	}
	// The sign-in form has its own token.
	fresh := b.client(t)
	fresh.get("/console/signin")
	if a := fresh.post("/console/signin", url.Values{"name": {"mark"}, "password": {testPassword}}); a.status != http.StatusForbidden {
		t.Errorf("sign-in without a token: %d, want 403", a.status)
	}
	if a := c.post("/console/campaigns", campaignValues("spring", good)); a.status != http.StatusSeeOther {
		t.Fatalf("with the token: %d\n%s", a.status, a.body)
	}
	if !b.campaignExists(t, "spring") {
		t.Fatal("the campaign was not created")
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	reader := b.signedIn(t, "rita")
	tok := reader.csrf("/console/campaigns")
	if a := reader.get("/console/campaigns"); strings.Contains(a.body, `id="new-campaign"`) {
		t.Error("a read-only user is offered a new campaign")
	}
	for _, path := range []string{"/console/campaigns", "/console/users"} {
		form := campaignValues("spring", tok)
		form.Set("name", "rita2")
		form.Set("role", RoleAdmin)
		form.Set("password", testPassword)
		if a := reader.post(path, form); a.status != http.StatusForbidden {
			t.Errorf("read-only POST %s: %d, want 403", path, a.status)
		}
	}
	if b.campaignExists(t, "spring") {
		t.Fatal("a read-only user created a campaign")
	}
	if _, err := b.d.Store.ConsoleUser(context.Background(), "rita2"); err == nil {
		t.Fatal("a read-only user created an account")
	}
	for _, path := range []string{"/console/campaigns/new", "/console/users"} {
		if a := reader.get(path); a.status != http.StatusForbidden {
			t.Errorf("read-only GET %s: %d, want 403", path, a.status)
		}
	}
	// A marketer manages campaigns, not users.
	mark := b.signedIn(t, "mark")
	if a := mark.get("/console/users"); a.status != http.StatusForbidden {
		t.Errorf("marketer GET users: %d, want 403", a.status)
	}
	b.createSpring(t, nil)
	if a := reader.post("/console/campaigns/spring/pause", url.Values{"csrf": {tok}}); a.status != http.StatusForbidden {
		t.Errorf("read-only pause: %d, want 403", a.status)
	}
	// An admin adds a user.
	admin := b.signedIn(t, "ana")
	atok := admin.csrf("/console/users")
	a := admin.post("/console/users", url.Values{"csrf": {atok}, "name": {"paul"}, "role": {RoleMarketer}, "password": {"short"}})
	if a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, "must be 12 to 256 characters") {
		t.Errorf("short password: %d\n%s", a.status, a.body)
	}
	a = admin.post("/console/users", url.Values{"csrf": {atok}, "name": {"paul"}, "role": {RoleMarketer}, "password": {testPassword}})
	if a.status != http.StatusSeeOther {
		t.Fatalf("add paul: %d\n%s", a.status, a.body)
	}
	paul := b.signedIn(t, "paul")
	// A new password signs paul out; removal too; an admin keeps its own
	// account.
	if a := admin.post("/console/users/paul/password", url.Values{"csrf": {atok}, "password": {"a brand new password"}}); a.status != http.StatusSeeOther {
		t.Fatalf("set paul's password: %d\n%s", a.status, a.body)
	}
	if a := paul.get("/console/campaigns"); a.status != http.StatusSeeOther {
		t.Errorf("paul after a new password: %d, want 303 to sign in", a.status)
	}
	if a := b.client(t).signIn("paul", "a brand new password"); a.status != http.StatusSeeOther {
		t.Errorf("paul with the new password: %d", a.status)
	}
	if a := admin.post("/console/users/ana/remove", url.Values{"csrf": {atok}}); a.status != http.StatusConflict {
		t.Errorf("an admin removing itself: %d, want 409", a.status)
	}
	if a := admin.post("/console/users/paul/remove", url.Values{"csrf": {atok}}); a.status != http.StatusSeeOther {
		t.Errorf("remove paul: %d", a.status)
	}
	if _, err := b.d.Store.ConsoleUser(context.Background(), "paul"); !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		t.Errorf("paul after removal: %v", err)
	}
}

// TestReadOnlyCannotPost sends every form of the console as a read-only
// user, with a valid token: each is refused and changes nothing.
func TestReadOnlyCannotPost(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ctx := context.Background()
	started := b.startSpring(t, nil)
	b.seedContacts(t, 1)
	reader := b.signedIn(t, "rita")
	tok := reader.csrf("/console/campaigns")
	form := campaignValues("autumn", tok)
	for k, v := range map[string]string{"email.subject": "Pwned", "email.text": "x", "tags_all": "nobody", "channel": "email",
		"address": "c000@example.com", "reason": "complaint", "confirm": "c000", "description": "changed"} {
		form.Set(k, v)
	}
	form.Set("kind", "cron")
	form.Set("cron", "0 10 * * 1")
	form.Set("op", "save")
	form.Set("name", "mallory")
	form.Set("role", RoleAdmin)
	form.Set("password", testPassword)
	for _, path := range []string{"/console/campaigns", "/console/campaigns/spring/edit", "/console/campaigns/spring/schedule",
		"/console/campaigns/spring/start", "/console/campaigns/spring/pause", "/console/campaigns/spring/resume", "/console/campaigns/spring/cancel",
		"/console/runs/" + started.Run + "/pause", "/console/runs/" + started.Run + "/resume", "/console/runs/" + started.Run + "/cancel",
		"/console/users", "/console/users/ana/remove", "/console/users/ana/password",
		"/console/templates", "/console/templates/news-mail", "/console/segments", "/console/segments/vips",
		"/console/topics", "/console/topics/newsletter", "/console/suppressions/lookup", "/console/suppressions/add",
		"/console/suppressions/remove", "/console/contacts/c000/erase"} {
		if a := reader.post(path, form); a.status != http.StatusForbidden {
			t.Errorf("read-only POST %s: %d, want 403", path, a.status)
		}
	}
	cp, err := b.d.Store.Campaign(ctx, "spring")
	must(t, err)
	r, err := b.d.Store.Run(ctx, started.Run)
	must(t, err)
	if cp.State != dispatcher.Running || cp.Schedule != nil || r.State == dispatcher.RunPaused || r.State == dispatcher.RunCancelled || b.campaignExists(t, "autumn") {
		t.Errorf("a read-only user changed something: campaign %s %+v, run %s", cp.State, cp.Schedule, r.State)
	}
	if _, err := b.d.Store.ConsoleUser(ctx, "mallory"); err == nil {
		t.Error("a read-only user added an account")
	}
	if tpl, err := b.d.Store.Template(ctx, "news-mail"); err != nil || tpl.Version != 1 {
		t.Errorf("a read-only user changed a template: %v %v", tpl, err)
	}
	if sg, err := b.d.Store.Segment(ctx, "vips"); err != nil || len(sg.TagsAll) != 1 || sg.TagsAll[0] != "vip" {
		t.Errorf("a read-only user changed a segment: %v %v", sg, err)
	}
	if tp, err := b.d.Store.Topic(ctx, "newsletter"); err != nil || tp.Description != "" {
		t.Errorf("a read-only user changed a topic: %v %v", tp, err)
	}
	if _, err := b.d.Store.Suppression(ctx, channels.Email, "c000@example.com"); err == nil {
		t.Error("a read-only user added a suppression")
	}
	if ok, err := b.d.Store.ContactExists(ctx, "c000"); err != nil || !ok {
		t.Errorf("a read-only user erased a contact: %v %v", ok, err)
	}
	if a := b.client(t).signIn("ana", testPassword); a.status != http.StatusSeeOther {
		t.Error("ana's account was changed")
	}
}

func TestLockout(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	c := b.client(t)
	for i := range failedLimit {
		if a := c.signIn("mark", "wrong password!"); a.status != http.StatusUnauthorized || !strings.Contains(a.body, `id="failed"`) {
			t.Fatalf("failure %d: %d", i+1, a.status)
		}
	}
	// Locked now, even with the right password, and the page says so.
	a := c.signIn("mark", testPassword)
	if a.status != http.StatusTooManyRequests || !strings.Contains(a.body, "try again in 15 minutes") {
		t.Fatalf("locked account: %d\n%s", a.status, a.body)
	}
	// The client address is locked too: another account from it waits.
	if a := c.signIn("ana", testPassword); a.status != http.StatusTooManyRequests {
		t.Errorf("another account from the locked address: %d, want 429", a.status)
	}
	// An account that does not exist locks the same way: the answer does
	// not tell whether it exists.
	b2 := setup(t, false)
	c2 := b2.client(t)
	for range failedLimit {
		c2.signIn("nobody", "wrong password!")
	}
	if a2 := c2.signIn("nobody", "wrong password!"); a2.status != a.status || !strings.Contains(a2.body, "try again in 15 minutes") {
		t.Errorf("unknown account: %d, want %d", a2.status, a.status)
	}
}

func TestCookieFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		publicURL string
		secure    bool
	}{{"http://missive.example", false}, {"https://missive.example", true}} {
		b := setup(t, false, func(c *app.Config) { c.PublicURL = tc.publicURL })
		a := b.client(t).get("/console/signin")
		cookie := a.header.Get("Set-Cookie")
		if !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Lax") || strings.Contains(cookie, "Secure") != tc.secure {
			t.Errorf("%s: Set-Cookie %q, want HttpOnly, SameSite=Lax and Secure %v", tc.publicURL, cookie, tc.secure)
		}
	}
}
