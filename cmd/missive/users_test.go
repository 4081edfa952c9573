package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/dispatcher/console"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle/redistest"
)

// TestUsersCommand adds, lists, re-passwords and removes an account, the
// password read from stdin. Not parallel: it sets usersStdin.
func TestUsersCommand(t *testing.T) {
	r := redistest.New(t)
	env := map[string]string{"MISSIVE_REDIS_URL": r.URL, "MISSIVE_PREFIX": r.Prefix}
	run := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		usersStdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	st := store.NewStore(r.Client, r.Prefix, nil, time.Now, 0)
	ctx := context.Background()
	const pw = "a long enough password"
	if code, out, errs := run(pw+"\n", "users", "add", "ana", "-role", "admin", "-timezone", "Europe/Paris"); code != 0 || !strings.Contains(out, "user ana added (admin)") {
		t.Fatalf("add: exit %d\n%s%s", code, out, errs)
	}
	u, err := st.ConsoleUser(ctx, "ana")
	if err != nil {
		t.Fatal(err)
	}
	if u.Role != console.RoleAdmin || u.Timezone != "Europe/Paris" || !console.CheckPassword(u.PasswordHash, pw) || strings.Contains(u.PasswordHash, pw) {
		t.Errorf("stored account: %+v", u)
	}
	if code, _, errs := run(pw+"\n", "users", "add", "ana"); code != 1 || !strings.Contains(errs, `user "ana" exists`) {
		t.Errorf("second add: exit %d, %s", code, errs)
	}
	if code, _, errs := run("short\n", "users", "add", "bob"); code != 1 || !strings.Contains(errs, "password: must be 12 to 256 characters") {
		t.Errorf("short password: exit %d, %s", code, errs)
	}
	if code, _, errs := run("", "users", "add", "bob"); code != 1 || !strings.Contains(errs, "no password on stdin") {
		t.Errorf("no password: exit %d, %s", code, errs)
	}
	if code, _, _ := run("", "users", "add", "bob", "-password", pw); code != 2 {
		t.Errorf("a password flag: exit %d, want 2 (no such flag)", code)
	}
	code, out, _ := run("", "users", "list")
	if code != 0 || !strings.Contains(out, "ana") || !strings.Contains(out, "admin") || strings.Contains(out, "argon2") {
		t.Errorf("list: exit %d\n%s", code, out)
	}
	const pw2 = "another long password"
	if code, _, errs := run(pw2+"\n", "users", "passwd", "ana"); code != 0 {
		t.Fatalf("passwd: exit %d, %s", code, errs)
	}
	if u, _ := st.ConsoleUser(ctx, "ana"); !console.CheckPassword(u.PasswordHash, pw2) {
		t.Error("the new password does not match")
	}
	if code, _, errs := run("", "users", "remove", "ana"); code != 0 {
		t.Fatalf("remove: exit %d, %s", code, errs)
	}
	if code, _, errs := run("", "users", "remove", "ana"); code != 1 || !strings.Contains(errs, "user not found") {
		t.Errorf("second remove: exit %d, %s", code, errs)
	}
}

// The console answers under /console/ on the API's listener, beside the
// API, which keeps every other path.
func TestConsoleMounted(t *testing.T) {
	addr := startHTTP(t, nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{
		"/console":           http.StatusMovedPermanently,
		"/console/":          http.StatusSeeOther, // to the sign-in page
		"/console/signin":    http.StatusOK,
		"/console/campaigns": http.StatusSeeOther,
		"/healthz":           http.StatusOK,
		"/v1/campaigns":      http.StatusUnauthorized,
	} {
		resp, err := noRedirect.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
		if strings.HasPrefix(path, "/console/") && resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: no console headers", path)
		}
	}
}

func TestConsoleSettingsErrors(t *testing.T) {
	for _, tc := range []struct{ env map[string]string }{
		{map[string]string{"MISSIVE_CONSOLE_SESSION_IDLE": "10s"}},
		{map[string]string{"MISSIVE_CONSOLE_SESSION_MAX": "forever"}},
		{map[string]string{"MISSIVE_CONSOLE_SESSION_IDLE": "2h", "MISSIVE_CONSOLE_SESSION_MAX": "1h"}},
	} {
		c, err := parseConfig("serve", nil, func(k string) string { return tc.env[k] }, io.Discard, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.validate(true); err == nil || !strings.Contains(err.Error(), "MISSIVE_CONSOLE_SESSION_") {
			t.Errorf("%v: %v, want an error naming the variable", tc.env, err)
		}
	}
}
