package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	apppkg "github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/throttle/redistest"
)

func TestKeysRotateReSealsUnderTheFirstKey(t *testing.T) {
	r := redistest.New(t)
	ctx := context.Background()
	ka := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa}, 32))
	kb := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xb}, 32))
	secret := "keys-secret-keys-secret-keys-secret!"
	d := newDispatcher(t, r, secret, "a:"+ka)
	var ndjson strings.Builder
	for i := range 1100 {
		fmt.Fprintf(&ndjson, `{"id":"c%04d","email":"c%04d@example.com"}`+"\n", i, i)
	}
	if _, err := d.Store.ImportContacts(ctx, strings.NewReader(ndjson.String()), "Europe/Paris", nil); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{
		"MISSIVE_REDIS_URL": r.URL,
		"MISSIVE_PREFIX":    r.Prefix,
		"MISSIVE_SECRET":    secret,
		"MISSIVE_DATA_KEYS": "b:" + kb + ",a:" + ka,
	}
	var stdout, stderr bytes.Buffer
	if code := Main(ctx, []string{"keys", "rotate"}, func(k string) string { return env[k] }, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"1100 contacts re-sealed under key b", "key a may be removed"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "1100/1100 contacts") {
		t.Errorf("stderr shows no progress:\n%s", stderr.String())
	}
	for _, secret := range []string{ka, kb, "@example.com"} {
		if strings.Contains(stdout.String()+stderr.String(), secret) {
			t.Errorf("output holds a key or an address")
		}
	}

	// Key a removed: every contact still opens.
	if c, err := newDispatcher(t, r, secret, "b:"+kb).Store.Contact(ctx, "c1099"); err != nil || c.Email != "c1099@example.com" {
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
	ka := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa}, 32))
	kb := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xb}, 32))
	secret := "keys-secret-keys-secret-keys-secret!"
	// Two processes run: one already restarted with key b first, one not.
	stopNew, err := newDispatcher(t, r, secret, "b:"+kb+",a:"+ka).Store.AnnounceKeys(ctx, "api", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stopNew()
	stopOld, err := newDispatcher(t, r, secret, "a:"+ka).Store.AnnounceKeys(ctx, "worker", nil)
	if err != nil {
		t.Fatal(err)
	}
	d := newDispatcher(t, r, secret, "a:"+ka)
	if _, err := d.Store.ImportContacts(ctx, strings.NewReader(`{"id":"c1","email":"c1@example.com"}`+"\n"), "Europe/Paris", nil); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"MISSIVE_REDIS_URL": r.URL,
		"MISSIVE_PREFIX":    r.Prefix,
		"MISSIVE_SECRET":    secret,
		"MISSIVE_DATA_KEYS": "b:" + kb + ",a:" + ka,
	}
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
	if usage, err := d.Store.ContactKeyUsage(ctx); err != nil || usage["a"] != 1 {
		t.Errorf("contacts by key after a refusal: %v, %v; want the contact still under a", usage, err)
	}

	code, stdout, stderr = run(t, env, "keys", "rotate", "--force")
	if code != 0 || !strings.Contains(stderr, "WARNING: --force: 1 of 2 running processes") || !strings.Contains(stdout, "1 contacts re-sealed under key b") {
		t.Errorf("rotate --force: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}

	// Once the old process is gone, rotate runs without --force.
	stopOld()
	code, _, stderr = run(t, env, "keys", "rotate")
	if code != 0 || !strings.Contains(stderr, "all 1 running processes seal with key b") {
		t.Errorf("rotate with every process on key b: exit %d, stderr %q", code, stderr)
	}
	for _, secret := range []string{ka, kb} {
		if strings.Contains(stdout+stderr, secret) {
			t.Error("output holds a key")
		}
	}
}
