package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// run calls Main as the binary would be called, with env as the whole
// environment.
func run(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	code = Main(t.Context(), args, func(k string) string { return env[k] }, &out, &errs)
	return code, out.String(), errs.String()
}

func TestConfigReportsEverySettingAtOnce(t *testing.T) {
	env := map[string]string{
		"MISSIVE_SECRET":      "short",
		"MISSIVE_CONCURRENCY": "many",
		"MISSIVE_CAPS":        "email:2/eternity",
		"MISSIVE_RATE_SMS":    "fast",
		"MISSIVE_LOG_LEVEL":   "loud",
		// Two of the HTTP server's settings, read together.
		"MISSIVE_HTTP_READ_TIMEOUT": "forever",
		"MISSIVE_HTTP_MAX_CONNS":    "none",
	}
	for _, cmd := range []string{"serve", "api", "worker", "scheduler", "register"} {
		code, _, stderr := run(t, env, cmd)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1", cmd, code)
		}
		want := []string{"MISSIVE_REDIS_URL", "MISSIVE_SECRET", "MISSIVE_API_KEYS", "MISSIVE_DATA_KEYS",
			"MISSIVE_CONCURRENCY", "MISSIVE_CAPS", "MISSIVE_RATE_SMS", "MISSIVE_LOG_LEVEL", "MISSIVE_HTTP_READ_TIMEOUT", "MISSIVE_HTTP_MAX_CONNS"}
		if !strings.Contains(stderr, "10 settings are missing or invalid:\n") {
			t.Errorf("%s: stderr does not count 10 settings at fault:\n%s", cmd, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")[1:]
		var got []string
		for _, l := range lines {
			name, _, _ := strings.Cut(strings.TrimSpace(l), " ")
			got = append(got, strings.TrimSuffix(name, ":"))
		}
		slices.Sort(got)
		slices.Sort(want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: one line per setting at fault (-want +got):\n%s\n%s", cmd, diff, stderr)
		}
	}
}

func TestRedisIsRequiredButForTheDemo(t *testing.T) {
	env := map[string]string{
		"MISSIVE_SECRET":    strings.Repeat("s", 32),
		"MISSIVE_API_KEYS":  "a:" + strings.Repeat("k", 20),
		"MISSIVE_DATA_KEYS": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
	}
	for _, cmd := range []string{"serve", "api", "worker", "scheduler", "register"} {
		code, _, stderr := run(t, env, cmd)
		if code != 1 || !strings.Contains(stderr, "MISSIVE_REDIS_URL (--redis-url): required") || !strings.Contains(stderr, "memory://") {
			t.Errorf("%s without MISSIVE_REDIS_URL: exit %d, stderr %q; want exit 1 naming the setting and memory://", cmd, code, stderr)
		}
	}
	for _, bad := range []string{"http://x", "memory://x", "localhost:6379"} {
		env["MISSIVE_REDIS_URL"] = bad
		if code, _, stderr := run(t, env, "worker"); code != 1 || !strings.Contains(stderr, "MISSIVE_REDIS_URL") {
			t.Errorf("MISSIVE_REDIS_URL=%q: exit %d, stderr %q; want exit 1 naming the setting", bad, code, stderr)
		}
	}

	// memory:// asks for the in-process Redis, and is told it keeps nothing.
	env["MISSIVE_REDIS_URL"] = "memory://"
	code, stdout, stderr := run(t, env, "register")
	if code != 0 || !strings.Contains(stdout, "# ") {
		t.Fatalf("register on memory://: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "in-process Redis that keeps nothing") {
		t.Errorf("memory:// is not said to keep nothing: %q", stderr)
	}
}

func TestHelpNeedsNoSetting(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"help"},
		{"serve", "-h"}, {"api", "-h"}, {"worker", "-h"}, {"scheduler", "-h"}, {"demo", "-h"}, {"bench", "-h"},
		{"register", "-h"}, {"bounce", "-h"}, {"bounce", "inspect", "-h"}, {"import", "-h"},
		{"campaign", "-h"}, {"campaign", "--help"}, {"campaign", "create", "-h"}, {"campaign", "status", "-h"}, {"campaign", "watch", "-h"},
		{"contacts", "-h"}, {"contacts", "import", "-h"}, {"contacts", "erase", "-h"}, {"contacts", "export", "-h"},
		{"keys", "-h"}, {"keys", "rotate", "-h"}, {"health", "-h"}, {"version", "-h"},
	} {
		code, stdout, stderr := run(t, nil, args...)
		if code != 0 || !strings.Contains(strings.ToLower(stdout+stderr), "usage") {
			t.Errorf("missive %s: exit %d, want 0 and a usage\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}

func TestVersionNamesModuleAndRevision(t *testing.T) {
	code, stdout, stderr := run(t, nil, "version")
	if code != 0 || !regexp.MustCompile(`^missive \S+ \S+ \(.*go1\.[^)]*\)\n$`).MatchString(stdout) {
		t.Errorf("version: exit %d, stdout %q, stderr %q; want one line: missive, version, revision, (time, Go version)", code, stdout, stderr)
	}
}

func TestHealthExitsOnTheAnswer(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write([]byte("redis: not reachable\n"))
	}))
	defer srv.Close()

	if code, stdout, stderr := run(t, nil, "health", srv.URL+"/readyz"); code != 0 || !strings.Contains(stdout, "200 OK") {
		t.Errorf("healthy: exit %d, stdout %q, stderr %q; want 0 and the status", code, stdout, stderr)
	}
	status = http.StatusServiceUnavailable
	if code, _, stderr := run(t, nil, "health", srv.URL+"/readyz"); code != 1 || !strings.Contains(stderr, "503 Service Unavailable: redis: not reachable") {
		t.Errorf("not ready: exit %d, stderr %q; want 1, the status and the reason", code, stderr)
	}
	if code, _, stderr := run(t, nil, "health", srv.URL+"/elsewhere"); code != 1 || !strings.Contains(stderr, "404") {
		t.Errorf("404: exit %d, stderr %q; want 1", code, stderr)
	}
	// The default is /readyz on the loopback, at MISSIVE_OPS_ADDR's port.
	status = http.StatusOK
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	if code, stdout, stderr := run(t, map[string]string{"MISSIVE_OPS_ADDR": ":" + port}, "health"); code != 0 || !strings.Contains(stdout, "127.0.0.1:"+port+"/readyz") {
		t.Errorf("default URL: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for addr, want := range map[string]string{
		"":                    "http://127.0.0.1:9090/readyz",
		":9191":               "http://127.0.0.1:9191/readyz",
		"0.0.0.0:9191":        "http://127.0.0.1:9191/readyz",
		"[::]:9191":           "http://127.0.0.1:9191/readyz",
		"10.1.2.3:9191":       "http://10.1.2.3:9191/readyz",
		"[fd00::1]:9191":      "http://[fd00::1]:9191/readyz",
		"ops.internal:9191":   "http://ops.internal:9191/readyz",
		"not an address":      "http://127.0.0.1:9090/readyz",
		"127.0.0.1:0":         "http://127.0.0.1:9090/readyz",
		"localhost:9090":      "http://localhost:9090/readyz",
		"[::1]:9090":          "http://[::1]:9090/readyz",
		"192.168.0.7:9090":    "http://192.168.0.7:9090/readyz",
		"missive-ops:9090":    "http://missive-ops:9090/readyz",
		"0.0.0.0:9090":        "http://127.0.0.1:9090/readyz",
		":9090":               "http://127.0.0.1:9090/readyz",
		"[::ffff:0.0.0.0]:90": "http://127.0.0.1:90/readyz",
	} {
		if got := defaultHealthURL(func(string) string { return addr }); got != want {
			t.Errorf("MISSIVE_OPS_ADDR=%q: default %s, want %s", addr, got, want)
		}
	}
	srv.Close()
	if code, _, stderr := run(t, nil, "health", srv.URL+"/readyz"); code != 1 || !strings.Contains(stderr, "refused") {
		t.Errorf("nothing listening: exit %d, stderr %q; want 1 saying why", code, stderr)
	}
	if code, _, stderr := run(t, nil, "health", "ftp://x/readyz"); code != 1 || !strings.Contains(stderr, "URL") {
		t.Errorf("not an HTTP URL: exit %d, stderr %q", code, stderr)
	}
}

// settingNames are the environment variables named in text as "(NAME)"
// at the end of a flag's help, as -h prints them.
func settingNames(text string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`\(((?:MISSIVE|TWILIO)_[A-Z0-9_]+)\)`).FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Every setting serve knows is in deploy/env.example (so compose's
// env_file reaches it) and in the README's settings table, and nothing
// else is.
func TestEveryServeSettingIsDocumentedAndShipped(t *testing.T) {
	_, stdout, stderr := run(t, nil, "serve", "-h")
	known := settingNames(stdout + stderr)
	if len(known) < 40 {
		t.Fatalf("serve -h names %d settings, want them all:\n%s", len(known), stderr)
	}

	example, err := os.ReadFile("../../deploy/env.example")
	if err != nil {
		t.Fatal(err)
	}
	var shipped []string
	for _, m := range regexp.MustCompile(`(?m)^#? ?((?:MISSIVE|TWILIO)_[A-Z0-9_]+)=`).FindAllStringSubmatch(string(example), -1) {
		shipped = append(shipped, m[1])
	}
	slices.Sort(shipped)
	if diff := cmp.Diff(known, slices.Compact(shipped)); diff != "" {
		t.Errorf("deploy/env.example against serve -h (-serve +env.example):\n%s", diff)
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## Configuration\n")
	section, _, _ = strings.Cut(section, "\n## ")
	var documented []string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range regexp.MustCompile("`((?:MISSIVE|TWILIO)_[A-Z0-9_]+)`").FindAllStringSubmatch(first, -1) {
			documented = append(documented, m[1])
		}
	}
	slices.Sort(documented)
	if diff := cmp.Diff(known, slices.Compact(documented)); diff != "" {
		t.Errorf("README's settings table against serve -h (-serve +README):\n%s", diff)
	}
}
