package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	apppkg "github.com/missive-dev/missive/dispatcher/app"
)

// keysCommand runs "missive keys rotate": it seals every contact again
// under the active (first) key of MISSIVE_DATA_KEYS, on the Redis that the
// running processes share, then says whether an older key is still used.
func keysCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = `usage:
  missive keys rotate   re-encrypt every contact under the first key of MISSIVE_DATA_KEYS
                        (resumable, safe while Missive runs); then tells whether an old key
                        may be removed`
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	c, err := parseConfig("keys rotate", args[1:], getenv, stderr, nil)
	if err != nil {
		return err
	}
	switch {
	case c.RedisURL == "":
		return errors.New("MISSIVE_REDIS_URL (--redis-url): required: rotation works on the Redis the running processes share")
	case len(c.Secret) < 32:
		return errors.New("MISSIVE_SECRET (--secret): required, 32 bytes or more")
	case c.DataKeys == "":
		return errors.New("MISSIVE_DATA_KEYS (--data-keys): required: the new key first, then the old ones")
	}
	if err := checkLogFormat(c.LogFormat); err != nil {
		return err
	}
	ring, err := parseDataKeys(c.DataKeys)
	if err != nil {
		return err
	}
	log := c.logger(stderr, slog.LevelWarn)
	d, closeD, err := openDispatcher(ctx, c.RedisURL, apppkg.Config{Prefix: c.Prefix, Secret: []byte(c.Secret), DataKeys: ring, Logger: log})
	if err != nil {
		return err
	}
	defer closeD()

	active := ring.Active()
	fmt.Fprintf(stderr, "keys rotate: sealing contacts under key %s\n", active)
	var last time.Time
	rotated, err := d.Store.RotateContacts(ctx, func(done, total int64) {
		if now := time.Now(); now.Sub(last) >= time.Second || done == total {
			last = now
			fmt.Fprintf(stderr, "keys rotate: %d/%d contacts\n", done, total)
		}
	})
	fmt.Fprintf(stdout, "%d contacts re-sealed under key %s\n", rotated, active)
	if errors.Is(err, context.Canceled) {
		return errors.New("stopped: run it again to resume where it stopped")
	}
	if err != nil {
		return err
	}
	perKey, err := d.Store.ContactKeyUsage(ctx)
	if err != nil {
		return err
	}
	var old []string
	for _, id := range slices.Sorted(maps.Keys(perKey)) {
		if id != active {
			old = append(old, fmt.Sprintf("%s: %d", keyName(id), perKey[id]))
		}
	}
	if len(old) > 0 {
		fmt.Fprintf(stdout, "contacts still under other keys (%s): a process that still seals with an old key wrote them; "+
			"give every process the new MISSIVE_DATA_KEYS and run \"missive keys rotate\" again before removing a key\n", strings.Join(old, ", "))
		return errors.New("some contacts still use an old key")
	}
	var unused []string
	for _, id := range ring.IDs() {
		if id != active {
			unused = append(unused, id)
		}
	}
	if len(unused) > 0 {
		fmt.Fprintf(stdout, "every contact (%d) is under key %s: key %s may be removed from MISSIVE_DATA_KEYS\n", perKey[active], active, strings.Join(unused, ", "))
	} else {
		fmt.Fprintf(stdout, "every contact (%d) is under key %s\n", perKey[active], active)
	}
	return nil
}

func keyName(id string) string {
	switch id {
	case "":
		return "not encrypted"
	case "?":
		return "unreadable"
	}
	return "key " + id
}
