package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	apppkg "github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle/redistest"
)

// The rotation tests' data keys: a, which the data is sealed under, and
// b, the new one; and their secret.
var (
	keyA = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa}, 32))
	keyB = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xb}, 32))
)

const keysSecret = "keys-secret-keys-secret-keys-secret!"

// rotationEnv is the environment of a process on r that knows b, first,
// and a.
func rotationEnv(r *redistest.Redis) map[string]string {
	return map[string]string{
		"MISSIVE_REDIS_URL": r.URL,
		"MISSIVE_PREFIX":    r.Prefix,
		"MISSIVE_SECRET":    keysSecret,
		"MISSIVE_DATA_KEYS": "b:" + keyB + ",a:" + keyA,
	}
}

func TestKeysRotateReSealsUnderTheFirstKey(t *testing.T) {
	r := redistest.New(t)
	ctx := context.Background()
	d := newDispatcher(t, r, keysSecret, "a:"+keyA)
	var ndjson strings.Builder
	for i := range 1100 {
		fmt.Fprintf(&ndjson, `{"id":"c%04d","email":"c%04d@example.com"}`+"\n", i, i)
	}
	if _, err := d.Store.ImportContacts(ctx, strings.NewReader(ndjson.String()), "Europe/Paris", nil); err != nil {
		t.Fatal(err)
	}

	env := rotationEnv(r)
	var stdout, stderr bytes.Buffer
	if code := Main(ctx, []string{"keys", "rotate"}, func(k string) string { return env[k] }, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"1100 contacts, 0 enrolments and 0 webhook endpoints re-sealed under key b", "key a may be removed"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "1100/1100 contacts") {
		t.Errorf("stderr shows no progress:\n%s", stderr.String())
	}
	for _, secret := range []string{keyA, keyB, "@example.com"} {
		if strings.Contains(stdout.String()+stderr.String(), secret) {
			t.Errorf("output holds a key or an address")
		}
	}

	// Key a removed: every contact still opens.
	if c, err := newDispatcher(t, r, keysSecret, "b:"+keyB).Store.Contact(ctx, "c1099"); err != nil || c.Email != "c1099@example.com" {
		t.Errorf("contact under key b only: %v, %v", c, err)
	}
}

// newDispatcher returns a Dispatcher on r with secret and the data keys
// of MISSIVE_DATA_KEYS dataKeys ("" for none), as the running processes
// would hold.
func newDispatcher(t *testing.T, r *redistest.Redis, secret, dataKeys string) *apppkg.Dispatcher {
	t.Helper()
	cfg := apppkg.Config{Redis: r.Client, Prefix: r.Prefix, Secret: []byte(secret)}
	if dataKeys != "" {
		ring, err := parseDataKeys(dataKeys)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DataKeys = ring
	}
	d, err := apppkg.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestKeysRotateNeedsItsSettings(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"MISSIVE_SECRET": strings.Repeat("s", 32), "MISSIVE_DATA_KEYS": "a:" + key}, "MISSIVE_REDIS_URL"},
		{map[string]string{"MISSIVE_REDIS_URL": "redis://127.0.0.1:1", "MISSIVE_DATA_KEYS": "a:" + key}, "MISSIVE_SECRET"},
		{map[string]string{"MISSIVE_REDIS_URL": "redis://127.0.0.1:1", "MISSIVE_SECRET": strings.Repeat("s", 32)}, "MISSIVE_DATA_KEYS"},
		{map[string]string{"MISSIVE_REDIS_URL": "redis://127.0.0.1:1", "MISSIVE_SECRET": strings.Repeat("s", 32), "MISSIVE_DATA_KEYS": "a:" + key + ",a:" + key}, "used twice"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), []string{"keys", "rotate"}, func(k string) string { return tc.env[k] }, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("want exit 1 naming %s, got %d: %s", tc.want, code, stderr.String())
		}
		if strings.Contains(stderr.String(), key) {
			t.Error("the error shows the key")
		}
	}
}

func TestKeysRotateRefusesWhileAProcessLacksTheNewKey(t *testing.T) {
	r := redistest.New(t)
	ctx := t.Context()
	// Two processes run: one already restarted with key b first, one not.
	stopNew, err := newDispatcher(t, r, keysSecret, "b:"+keyB+",a:"+keyA).Store.AnnounceKeys(ctx, "api", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stopNew()
	stopOld, err := newDispatcher(t, r, keysSecret, "a:"+keyA).Store.AnnounceKeys(ctx, "worker", nil)
	if err != nil {
		t.Fatal(err)
	}
	d := newDispatcher(t, r, keysSecret, "a:"+keyA)
	if _, err := d.Store.ImportContacts(ctx, strings.NewReader(`{"id":"c1","email":"c1@example.com"}`+"\n"), "Europe/Paris", nil); err != nil {
		t.Fatal(err)
	}
	env := rotationEnv(r)
	code, stdout, stderr := run(t, env, "keys", "rotate")
	if code != 1 || !strings.Contains(stderr, "1 of 2 running processes do not seal with key b") || !strings.Contains(stderr, "--force") {
		t.Errorf("rotate with a process on key a: exit %d, stderr %q; want 1, naming how many lack key b", code, stderr)
	}
	if !strings.Contains(stderr, "worker") || !strings.Contains(stderr, "api") {
		t.Errorf("rotate does not list the announcements:\n%s", stderr)
	}
	if strings.Contains(stdout, "re-sealed") {
		t.Error("rotate re-sealed although it refused")
	}
	if usage, err := d.Store.DataKeyUsage(ctx); err != nil || usage.Contacts["a"] != 1 {
		t.Errorf("contacts by key after a refusal: %v, %v; want the contact still under a", usage, err)
	}

	code, stdout, stderr = run(t, env, "keys", "rotate", "--force")
	if code != 0 || !strings.Contains(stderr, "WARNING: --force: 1 of 2 running processes") || !strings.Contains(stdout, "1 contacts, 0 enrolments and 0 webhook endpoints re-sealed under key b") {
		t.Errorf("rotate --force: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}

	// Once the old process is gone, rotate runs without --force.
	stopOld()
	code, _, stderr = run(t, env, "keys", "rotate")
	if code != 0 || !strings.Contains(stderr, "all 1 running processes seal with key b") {
		t.Errorf("rotate with every process on key b: exit %d, stderr %q", code, stderr)
	}
	for _, secret := range []string{keyA, keyB} {
		if strings.Contains(stdout+stderr, secret) {
			t.Error("output holds a key")
		}
	}
}

// A running process announces the ids of its data keys while it runs,
// and withdraws the announcement when it stops.
func TestRunningProcessAnnouncesItsKeys(t *testing.T) {
	r := redistest.New(t)
	env := rotationEnv(r)
	env["MISSIVE_API_KEYS"] = "a:" + strings.Repeat("k", 20)
	env["MISSIVE_OUTBOX_DIR"] = t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	var logs bytes.Buffer
	go func() {
		done <- Main(ctx, []string{"worker"}, func(k string) string { return env[k] }, io.Discard, &logs)
	}()

	st := newDispatcher(t, r, keysSecret, "a:"+keyA).Store
	var holders []store.KeyHolder
	for deadline := time.Now().Add(10 * time.Second); len(holders) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the worker announced nothing in 10 s; its logs:\n%s", logs.String())
		}
		select {
		case code := <-done:
			t.Fatalf("the worker exited %d: %s", code, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		var err error
		if holders, err = st.KeyHolders(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h := holders[0]
	if len(holders) != 1 || h.Role != "worker" || h.Active != "b" || !slices.Equal(h.Keys, []string{"a", "b"}) {
		t.Errorf("announcements %+v, want one worker sealing with b and holding a and b", holders)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("the worker exited %d: %s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop within 30 s")
	}
	if holders, err := st.KeyHolders(t.Context()); err != nil || len(holders) != 0 {
		t.Errorf("after the worker stopped: %+v, %v; want no announcement", holders, err)
	}
}
