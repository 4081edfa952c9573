package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	apppkg "github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/store"
)

// keysCommand runs "missive keys rotate": it seals every contact, the data
// of its enrolments and the webhook endpoints again under the active
// (first) key of MISSIVE_DATA_KEYS, on the Redis that the running
// processes share, then says whether an older key is still used.
func keysCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = `usage:
  missive keys rotate [--force]
                        re-encrypt every contact, enrolment and webhook endpoint under the first key of MISSIVE_DATA_KEYS
                        (resumable, safe while Missive runs); then tells whether an old key
                        may be removed. Refuses while a running process does not seal with
                        that key yet (--force: rotate anyway)`
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return errHelp
	}
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	var force bool
	c, err := parseConfig("keys rotate", args[1:], getenv, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&force, "force", false, "rotate although running processes do not all seal with the new key (their writes stay under an old key)")
	})
	if err != nil {
		return err
	}
	var errs []error
	switch c.RedisURL {
	case "":
		errs = append(errs, errors.New("MISSIVE_REDIS_URL (--redis-url): required: rotation works on the Redis the running processes share"))
	case memoryRedis:
		errs = append(errs, errors.New("MISSIVE_REDIS_URL (--redis-url): memory:// is this process's own Redis: rotation works on the Redis the running processes share"))
	default:
		if err := checkRedisURL(c.RedisURL); err != nil {
			errs = append(errs, err)
		}
	}
	if err := checkLogFormat(c.LogFormat); err != nil {
		errs = append(errs, err)
	}
	if len(c.Secret) < 32 {
		errs = append(errs, errors.New("MISSIVE_SECRET (--secret): required, 32 bytes or more"))
	}
	var ring *store.Keyring
	if c.DataKeys == "" {
		errs = append(errs, errors.New("MISSIVE_DATA_KEYS (--data-keys): required: the new key first, then the old ones"))
	} else if ring, err = parseDataKeys(c.DataKeys); err != nil {
		errs = append(errs, err)
	}
	if err := configError(errs); err != nil {
		return err
	}
	log := c.logger(stderr, slog.LevelWarn)
	d, closeD, err := openDispatcher(ctx, c.RedisURL, apppkg.Config{Prefix: c.Prefix, Secret: []byte(c.Secret), DataKeys: ring, Logger: log})
	if err != nil {
		return err
	}
	defer closeD()
	if err := checkKeyHolders(ctx, d.Store, ring.Active(), force, stderr); err != nil {
		return err
	}

	active := ring.Active()
	fmt.Fprintf(stderr, "keys rotate: sealing contacts, their enrolments' data and the webhook endpoints under key %s\n", active)
	var last time.Time
	rotated, err := d.Store.RotateData(ctx, func(done, total int64) {
		if now := time.Now(); now.Sub(last) >= time.Second || done == total {
			last = now
			fmt.Fprintf(stderr, "keys rotate: %d/%d contacts\n", done, total)
		}
	})
	fmt.Fprintf(stdout, "%d contacts, %d enrolments and %d webhook endpoints re-sealed under key %s\n", rotated.Contacts, rotated.Enrolments, rotated.Webhooks, active)
	if errors.Is(err, context.Canceled) {
		return errors.New("stopped: run it again to resume where it stopped")
	}
	if err != nil {
		return err
	}
	held, err := d.Store.DataKeyUsage(ctx)
	if err != nil {
		return err
	}
	var old []string
	for _, kind := range []struct {
		name  string
		count map[string]int64
	}{{"contacts", held.Contacts}, {"enrolments", held.Enrolments}, {"webhook endpoints", held.Webhooks}} {
		for _, id := range slices.Sorted(maps.Keys(kind.count)) {
			if id != active {
				old = append(old, fmt.Sprintf("%s %s: %d", kind.name, keyName(id), kind.count[id]))
			}
		}
	}
	if len(old) > 0 {
		fmt.Fprintf(stdout, "records still under other keys (%s): a process that still seals with an old key wrote them; "+
			"give every process the new MISSIVE_DATA_KEYS and run \"missive keys rotate\" again before removing a key\n", strings.Join(old, ", "))
		return errors.New("some records still use an old key")
	}
	var unused []string
	for _, id := range ring.IDs() {
		if id != active {
			unused = append(unused, id)
		}
	}
	if len(unused) > 0 {
		fmt.Fprintf(stdout, "every contact (%d) is under key %s: key %s may be removed from MISSIVE_DATA_KEYS "+
			"once the sends and webhook events queued before the rotation are gone (the send retention, and 7 days)\n",
			held.Contacts[active], active, strings.Join(unused, ", "))
	} else {
		fmt.Fprintf(stdout, "every contact (%d) is under key %s\n", held.Contacts[active], active)
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

// checkKeyHolders lists the running processes' announcements of their data
// keys and refuses (unless force) while any of them does not seal with
// key active: what such a process writes during the walk stays under an
// older key, and one without the key cannot read what the walk re-sealed.
func checkKeyHolders(ctx context.Context, st *store.Store, active string, force bool, stderr io.Writer) error {
	holders, err := st.KeyHolders(ctx)
	if err != nil {
		return err
	}
	if len(holders) == 0 {
		fmt.Fprintln(stderr, "keys rotate: no running process announces its data keys (none runs, or none is new enough to say)")
		return nil
	}
	lacking := 0
	tw := tabwriter.NewWriter(stderr, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "process\trole\tseals with\tholds\t")
	for _, h := range holders {
		mark := ""
		if !h.Holds(active) {
			lacking++
			mark = "<- not key " + active
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Process, h.Role, h.Active, strings.Join(h.Keys, ","), mark)
	}
	tw.Flush()
	if lacking == 0 {
		fmt.Fprintf(stderr, "keys rotate: all %d running processes seal with key %s\n", len(holders), active)
		return nil
	}
	if !force {
		return fmt.Errorf("%d of %d running processes do not seal with key %s yet: give every process MISSIVE_DATA_KEYS with key %s first, restart them, and run this again (--force rotates anyway)",
			lacking, len(holders), active, active)
	}
	fmt.Fprintf(stderr, "keys rotate: WARNING: --force: %d of %d running processes do not seal with key %s; "+
		"what they write stays under an older key, and those without key %s cannot read what this rotation re-seals\n",
		lacking, len(holders), active, active)
	return nil
}

// announceKeys has this process announce the ids of the data keys it holds
// while it runs, for "missive keys rotate"; stop withdraws the
// announcement.
func announceKeys(ctx context.Context, a *app, roles role) (stop func(), err error) {
	var names []string
	for _, r := range []struct {
		r    role
		name string
	}{{roleAPI, "api"}, {roleWorker, "worker"}, {roleScheduler, "scheduler"}} {
		if roles&r.r != 0 {
			names = append(names, r.name)
		}
	}
	return a.d.Store.AnnounceKeys(ctx, strings.Join(names, "+"), func(err error) {
		a.log.Warn("the announcement of the data keys this process holds failed; retrying", "err", err)
	})
}
